"""Safe image reading: any common file -> an RGB PIL image, or BadImage saying why not.

Independent of any dataset: the captioner's data, the recommender and the web page all read photos
through `load_image`. Modes are converted with care (alpha on white, 16-bit scaled, EXIF rotation
applied) and decompression bombs are refused from the header, before any pixel is decoded.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from mri.data.report import SkipReport

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: larger than any camera photo people caption
BAD_IMAGE_REASONS = ("missing", "empty", "not_image", "corrupt", "too_large")
WHITE = (255, 255, 255)
SIGNATURES = {  # PIL format -> how its files begin (offset, bytes): a file that begins so but does not open is corrupt
    "JPEG": ((0, b"\xff\xd8\xff"),), "PNG": ((0, b"\x89PNG\r\n\x1a\n"),), "WEBP": ((0, b"RIFF"), (8, b"WEBP")),
    "GIF": ((0, b"GIF8"),), "TIFF": ((0, b"II*\x00"),),
}


class BadImage(Exception):
    """An image file that cannot be used; `reason` is one of BAD_IMAGE_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image file as RGB, upright as its EXIF orientation says; raise BadImage when it cannot be used.

    max_pixels: images with more pixels are refused (too_large) from their header; PIL's own limit
    (Image.MAX_IMAGE_PIXELS) also applies, its warning and error both become too_large.
    """
    with _opened(Path(path), max_pixels) as im:
        im.load()
        return _to_rgb(ImageOps.exif_transpose(im))


def read_header(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
                formats: Sequence[str] | None = None) -> tuple[str, int, int]:
    """(PIL format name, width, height) from the header alone, no pixel decoded; BadImage as load_image raises it.

    formats: the PIL formats accepted (e.g. ("JPEG", "PNG", "WEBP")); any other file is not_image.
    """
    with _opened(Path(path), max_pixels, formats) as im:
        return im.format, *im.size


@contextmanager
def _opened(path: Path, max_pixels: int, formats: Sequence[str] | None = None) -> Iterator[Image.Image]:
    """The image with its header read; PIL's errors, also those of the caller's decoding, become BadImage."""
    if not path.is_file():
        raise BadImage("missing", str(path))
    if path.stat().st_size == 0:
        raise BadImage("empty", str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=formats) as im:  # reads the header only
                width, height = im.size
                if width * height > max_pixels:
                    raise BadImage("too_large", f"{width}x{height} > {max_pixels} pixels: {path}")
                yield im
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage("too_large", f"{e}: {path}") from None
    except UnidentifiedImageError:
        claimed = _claimed_format(path, formats)
        if claimed:  # a damaged header (a bad PNG checksum, say): PIL tries every format and names none
            raise BadImage("corrupt", f"a {claimed} file whose header cannot be read: {path}") from None
        raise BadImage("not_image", str(path)) from None
    except Exception as e:  # truncated or broken data, garbled EXIF: PIL raises OSError, SyntaxError, struct.error...
        raise BadImage("corrupt", f"{type(e).__name__}: {e}: {path}") from None


def _claimed_format(path: Path, formats: Sequence[str] | None) -> str | None:
    """The format (among formats) whose signature the file begins with, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return None
    for name, parts in SIGNATURES.items():
        if (formats is None or name in formats) and all(head[at:at + len(part)] == part for at, part in parts):
            return name
    return None


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: transparency composited on white, high bit depths scaled to 8 bits."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return Image.fromarray(_to_8bit(np.asarray(im), im.mode), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)), rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGB


def _to_8bit(a: np.ndarray, mode: str) -> np.ndarray:
    """One channel of 16-bit ints ("I;16*"), 32-bit ints ("I") or floats ("F") -> uint8 by its full scale."""
    a = a.astype(np.float64)  # (H, W)
    peak = float(a.max(initial=0.0))
    if mode == "F":
        full = 1.0 if peak <= 1.0 else 255.0
    elif mode.startswith("I;16"):
        full = 65535.0
    else:  # "I": 8-bit, 16-bit (older PIL's PNGs) or wider data in 32-bit ints
        full = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    return np.clip(np.rint(a * (255.0 / full)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ImagePreprocessing:
    """RGB PIL image -> (3, crop, crop) float32: short side to `resize`, centre crop, normalise.

    Plain data (saved in checkpoints as a dict); the defaults are EfficientNet-Lite0's.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = TF.resize(image, self.resize, InterpolationMode(self.interpolation), antialias=True)
        x = TF.to_tensor(TF.center_crop(image, self.crop))  # (3, crop, crop) in [0, 1]
        return TF.normalize(x, self.mean, self.std)

    def to_dict(self) -> dict:
        return asdict(self)


class ImageReport(SkipReport):
    """Image files skipped and why (BAD_IMAGE_REASONS); items are file names."""

    REASONS = BAD_IMAGE_REASONS
