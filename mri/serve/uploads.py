"""Receiving a photo upload: byte and pixel limits checked before any pixel is decoded.

The photo is kept in memory as bytes (at most upload.max_bytes) and its header read from there; nothing
the user sent or named reaches the file system. Starlette spools the form's file part in memory, or above
1 MB in an unnamed file of the system's temporary folder, deleted when the form closes.
"""
from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mri.data.images import DEFAULT_MAX_PIXELS, BadImage, read_header

FORMATS = ("JPEG", "PNG", "WEBP")  # the PIL formats answered; JPEG's variants (MPO: multi-picture) with it
FORM_OVERHEAD = 64 * 1024  # bytes of a multipart form beyond its file: boundaries and part headers
FIELD = "photo"  # the form field that carries the file
TEXT_FIELD = "text"  # the optional form field with the user's words


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20_000_000
    max_pixels: int = 25_000_000

    def __post_init__(self):
        if not 0 < self.max_pixels <= DEFAULT_MAX_PIXELS:
            raise ValueError(f"upload.max_pixels={self.max_pixels}: must lie in 1..{DEFAULT_MAX_PIXELS}, the most "
                             "pixels the recommender reads")


class UploadRefused(Exception):
    """An upload the page cannot use: `message` in plain words for the user, `status` the HTTP status."""

    def __init__(self, reason: str, message: str, status: int):
        super().__init__(message)
        self.reason, self.message, self.status = reason, message, status


def refusal(err: BadImage, limits: UploadLimits) -> UploadRefused:
    """A BadImage of an uploaded file in plain words."""
    plain = {
        "empty": ("The file is empty: choose a photo.", 422),
        "not_image": ("This file is not a JPEG, PNG or WebP image: choose a photo in one of these formats.", 415),
        "corrupt": ("The image is damaged or cut short and cannot be read: try another copy of it.", 422),
        "too_large": (f"The photo has more than {limits.max_pixels / 1e6:g} megapixels: send a smaller one.", 413),
        "missing": ("The upload was lost on the server: send it again.", 500),
    }
    message, status = plain[err.reason]
    return UploadRefused(err.reason, message, status)


async def receive_photo(request: Request, limits: UploadLimits) -> tuple[bytes, str, str]:
    """The form's photo as bytes, the name the user gave it, and the user's text ("" when none).

    Raises UploadRefused for a request without a photo or over the limits, and for a file that is not a
    JPEG, PNG or WebP image; the byte limit is checked from Content-Length before the body is read.
    """
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise UploadRefused("no_length", "The upload did not say its size: send the photo from the page's form.", 411)
    if int(length) > limits.max_bytes + FORM_OVERHEAD:
        raise _too_many_bytes(int(length), limits)
    try:
        form = await request.form(max_files=1, max_fields=1)
    except HTTPException as err:  # more than one file, or other fields
        raise UploadRefused("bad_form", f"The upload form was not understood ({err.detail}): send one photo as the "
                                        f"form field {FIELD!r}.", 400) from None
    try:
        unknown = sorted(set(form.keys()) - {FIELD, TEXT_FIELD})
        if unknown:
            raise UploadRefused("bad_form", f"The upload form was not understood (unknown field {unknown[0]!r}): send "
                                            f"one photo as the form field {FIELD!r} and your words as {TEXT_FIELD!r}.",
                                400)
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            raise UploadRefused("no_photo", f"No photo came with the request: send one as the form field {FIELD!r}.",
                                400)
        if upload.size is not None and upload.size > limits.max_bytes:
            raise _too_many_bytes(upload.size, limits)
        photo = await upload.read()
        name = upload.filename or "photo"
        text = form.get(TEXT_FIELD) or ""
        if not isinstance(text, str):
            raise UploadRefused("bad_form", f"The form field {TEXT_FIELD!r} must be text, not a file.", 400)
    finally:
        await form.close()  # the spooled part is deleted
    try:
        read_header(photo, limits.max_pixels, FORMATS)
    except BadImage as err:
        raise refusal(err, limits) from None
    return photo, name, text


def _too_many_bytes(size: int, limits: UploadLimits) -> UploadRefused:
    return UploadRefused("too_large", f"The file is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:g} MB: "
                                      "send a smaller photo.", 413)
