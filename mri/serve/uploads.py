"""Receiving a photo upload: byte and pixel limits checked before any pixel is decoded.

The photo is kept in memory as bytes (at most upload.max_bytes) and its header read from there; nothing
the user sent or named reaches the file system. Starlette spools the form's file part in memory, or above
1 MB in an unnamed file of the system's temporary folder, deleted when the form closes.
"""
from __future__ import annotations

import re
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
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

    def __init__(self, reason: str, message: str, status: int, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.reason, self.message, self.status, self.headers = reason, message, status, headers


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
    form = await read_form(request)
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


class FormCutShort(MultiPartException):
    pass


class PhotoFormParser(MultiPartParser):
    """Starlette's multipart parser, which also takes a file part named by `filename*=` alone (RFC 5987, as
    some clients write a name that is not ASCII) and notes whether the form's closing boundary came."""

    complete = False

    async def parse(self) -> FormData:
        form = await super().parse()
        if not self.complete:  # the body ended inside the form: a Content-Length shorter than the body
            for file in self._files_to_close_on_error:  # the unfinished part's spooled file too
                file.close()
            raise FormCutShort("the body ends before the form's closing boundary")
        return form

    def on_header_end(self) -> None:
        if self._current_partial_header_name.lower() == b"content-disposition":
            self._current_partial_header_value = with_plain_filename(self._current_partial_header_value)
        super().on_header_end()

    def on_end(self) -> None:
        self.complete = True


async def read_form(request: Request) -> FormData:
    """The request's multipart form (one file, at most one text field); UploadRefused for any other body."""
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UploadRefused("bad_form", f"The upload is not a form (multipart/form-data): send one photo as the form "
                                        f"field {FIELD!r}.", 415)
    try:
        async with aclosing(request.stream()) as stream:
            return await PhotoFormParser(request.headers, stream, max_files=1, max_fields=1).parse()
    except FormCutShort:
        raise UploadRefused("cut_short", "The upload ends before its form does (its Content-Length is shorter than "
                                         "the form): send the photo again from the page's form.", 400,
                            {"connection": "close"}) from None  # what followed the declared length is not read
    except MultiPartException as err:  # more than one file, other fields, no boundary
        raise UploadRefused("bad_form", f"The upload form was not understood ({err.message}): send one photo as the "
                                        f"form field {FIELD!r}.", 400) from None


FILENAME = re.compile(rb"(^|;)\s*filename\s*=", re.IGNORECASE)
EXTENDED_FILENAME = re.compile(rb"(?:^|;)\s*filename\*\s*=\s*([^;]*)", re.IGNORECASE)


def with_plain_filename(disposition: bytes) -> bytes:
    """A Content-Disposition with only `filename*=charset'language'percent-encoded` gets the `filename=` it means."""
    extended = EXTENDED_FILENAME.search(disposition)
    if extended is None or FILENAME.search(disposition):
        return disposition
    charset, _, rest = extended.group(1).strip().strip(b'"').partition(b"'")
    encoded = rest.partition(b"'")[2]
    try:
        name = unquote_to_bytes(encoded).decode(charset.decode("ascii") or "utf-8")
    except (LookupError, UnicodeDecodeError):  # an unknown charset, or bytes not in it
        name = unquote_to_bytes(encoded).decode("utf-8", "replace")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return disposition + b'; filename="' + quoted.encode("utf-8") + b'"'


def _too_many_bytes(size: int, limits: UploadLimits) -> UploadRefused:
    return UploadRefused("too_large", f"The file is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:g} MB: "
                                      "send a smaller photo.", 413)
