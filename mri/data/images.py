"""Safe image reading and the models' preprocessing: a file, bytes or a PIL image -> RGB -> a model's tensor.

Independent of any dataset: the captioner's data, the recommender and the web page all read photos
through `load_image` and prepare them with an `ImagePreprocessing`. Modes are converted with care
(alpha on white, 16-bit scaled, EXIF rotation applied), decompression bombs are refused from the
header, before any pixel is decoded, and a multi-picture file (MPO, GIF, TIFF) gives its first frame.
"""
from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
from torchvision.transforms.functional import pil_modes_mapping

from mri.data.report import SkipReport

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: larger than any camera photo people caption
BAD_IMAGE_REASONS = ("missing", "empty", "not_image", "corrupt", "too_large")
WHITE = (255, 255, 255)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # what counts as a photo file
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_ASPECT = 4.0  # longer / shorter side beyond which only the pixels under the crop are resampled

ImageSource = str | os.PathLike | bytes | Image.Image  # a file, its bytes, or a PIL image
SIGNATURES = {  # PIL format -> how its files begin (offset, bytes): a file that begins so but does not open is corrupt
    "JPEG": ((0, b"\xff\xd8\xff"),), "PNG": ((0, b"\x89PNG\r\n\x1a\n"),), "WEBP": ((0, b"RIFF"), (8, b"WEBP")),
    "GIF": ((0, b"GIF8"),), "TIFF": ((0, b"II*\x00"),),
}


class BadImage(Exception):
    """An image file that cannot be used; `reason` is one of BAD_IMAGE_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def image_paths(path: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files of a folder (by IMAGE_SUFFIXES, sorted) and its other entries with why each is skipped;
    or the one path given (checked when read) and nothing skipped. FileNotFoundError when path does not exist."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"image={path} does not exist: pass a photo or a folder of photos")
    if not path.is_dir():
        return [path], []
    images, skipped = [], []
    for entry in sorted(path.iterdir()):
        why = _why_skipped(entry)
        if why:
            skipped.append((entry, why))
        else:
            images.append(entry)
    return images, skipped


def _why_skipped(entry: Path) -> str | None:
    """Why a folder's entry is not read as a photo, or None for an image file that can be read."""
    if entry.is_symlink() and not entry.exists():
        return "a link to nothing (dangling symlink)"
    if entry.is_dir():
        return "a folder (folders inside are not searched)"
    if not entry.is_file():
        return "not a regular file"
    if entry.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file name ({', '.join(sorted(IMAGE_SUFFIXES))})"
    if not os.access(entry, os.R_OK):
        return "not readable (no permission)"
    return None


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Read an image (file, bytes or PIL image) as RGB, upright as its EXIF orientation says; BadImage when unusable.

    max_pixels: images with more pixels are refused (too_large) from their header; PIL's own limit
    (Image.MAX_IMAGE_PIXELS) also applies, its warning and error both become too_large.
    min_side: the fewest pixels either side needs (what a preprocessing resizes the short side to): a JPEG at
    least twice as large is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling, both sides staying
    >= min_side (a 4032 x 3024 phone photo: 504 x 378 in 11 ms instead of 215 ms); other formats, and JPEGs
    smaller than that, are decoded whole.
    """
    if isinstance(source, Image.Image):
        _check_size(source.size, max_pixels, "the image in memory")
        with _pil_errors("the image in memory"):
            source.load()
            return _to_rgb(ImageOps.exif_transpose(source))
    with _opened(source, max_pixels) as im:
        if min_side:
            im.draft(None, (min_side, min_side))  # a no-op for formats other than JPEG
        im.load()  # the first frame of a multi-picture file
        return _to_rgb(ImageOps.exif_transpose(im))


def read_header(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                formats: Sequence[str] | None = None) -> tuple[str, int, int]:
    """(PIL format name, width, height) from the header alone, no pixel decoded; BadImage as load_image raises it.

    formats: the PIL formats accepted (e.g. ("JPEG", "PNG", "WEBP")); any other file is not_image. A JPEG's
    variants come as their own format names ("MPO": multi-picture JPEGs of phones and cameras).
    """
    with _opened(source, max_pixels, formats) as im:
        return im.format, *im.size


@contextmanager
def _opened(source: str | os.PathLike | bytes, max_pixels: int,
            formats: Sequence[str] | None = None) -> Iterator[Image.Image]:
    """The image with its header read; PIL's errors, also those of the caller's decoding, become BadImage."""
    if isinstance(source, bytes):
        if not source:
            raise BadImage("empty", "0 bytes")
        file, label = io.BytesIO(source), f"{len(source)} bytes in memory"
    else:
        file = label = Path(source)
        if not file.is_file():
            raise BadImage("missing", str(file))
        if file.stat().st_size == 0:
            raise BadImage("empty", str(file))
    try:
        with _pil_errors(label), Image.open(file, formats=formats) as im:  # reads the header only
            _check_size(im.size, max_pixels, label)
            yield im
    except BadImage as err:
        claimed = _claimed_format(source, formats) if err.reason == "not_image" else None
        if claimed:  # a damaged header (a bad PNG checksum, say): PIL tries every format and names none
            raise BadImage("corrupt", f"a {claimed} file whose header cannot be read: {label}") from None
        raise


def _check_size(size: tuple[int, int], max_pixels: int, label: object) -> None:
    width, height = size
    if width * height > max_pixels:
        raise BadImage("too_large", f"{width}x{height} > {max_pixels} pixels: {label}")


@contextmanager
def _pil_errors(label: object) -> Iterator[None]:
    """PIL's errors (and its decompression bomb warning) inside the block -> BadImage naming label."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage("too_large", f"{e}: {label}") from None
    except UnidentifiedImageError:
        raise BadImage("not_image", str(label)) from None
    except Exception as e:  # truncated or broken data, garbled EXIF: PIL raises OSError, SyntaxError, struct.error...
        raise BadImage("corrupt", f"{type(e).__name__}: {e}: {label}") from None


def _claimed_format(source: str | os.PathLike | bytes, formats: Sequence[str] | None) -> str | None:
    """The format (among formats) whose signature the file or bytes begin with, or None."""
    try:
        if isinstance(source, bytes):
            head = source[:16]
        else:
            with open(source, "rb") as f:
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

    Plain data (saved in checkpoints as a dict); the defaults are EfficientNet-Lite0's. An image longer
    than MAX_ASPECT times its width (a 20000 x 1 PNG) resamples only the source pixels under the crop,
    so that it costs what the crop costs, not what resizing all of it would.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"

    def __post_init__(self):
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"image preprocessing: crop={self.crop} must lie in 1..resize={self.resize}")
        object.__setattr__(self, "mean", tuple(self.mean))  # hashable also when read back from a checkpoint
        object.__setattr__(self, "std", tuple(self.std))

    def example(self) -> torch.Tensor:
        """A (1, 3, crop, crop) batch of fixed uniform noise as this preprocessing would give it, channels-last."""
        noise = torch.rand(1, 3, self.crop, self.crop, generator=torch.Generator().manual_seed(0))
        mean, std = torch.tensor(self.mean).view(1, 3, 1, 1), torch.tensor(self.std).view(1, 3, 1, 1)
        return ((noise - mean) / std).contiguous(memory_format=torch.channels_last)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        width, height = image.size
        if max(width, height) > MAX_ASPECT * min(width, height):
            image = self._resample_crop(image)
        else:
            image = TF.resize(image, self.resize, InterpolationMode(self.interpolation), antialias=True)
            image = TF.center_crop(image, self.crop)
        return self._normalised(image if image.mode == "RGB" else image.convert("RGB"))

    def _normalised(self, image: Image.Image) -> torch.Tensor:
        """(3, crop, crop) float32 in numpy, bit for bit torchvision's to_tensor + normalize, but on one thread:
        torch's intra-op threads cost up to 50 x more on a busy machine, in every request thread at once."""
        x = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1), dtype=np.float32)  # (3, crop, crop)
        x /= np.float32(255)
        x -= np.asarray(self.mean, np.float32)[:, None, None]
        x /= np.asarray(self.std, np.float32)[:, None, None]
        return torch.from_numpy(x)

    def _resample_crop(self, image: Image.Image) -> Image.Image:
        """The centre crop of the resized image, computed from the source pixels under it alone (PIL's box)."""
        width, height = image.size
        short, long = sorted((width, height))
        new_long = int(self.resize * long / short)  # torchvision's rounding
        new_w, new_h = (self.resize, new_long) if width <= height else (new_long, self.resize)
        left, top = round((new_w - self.crop) / 2), round((new_h - self.crop) / 2)
        sx, sy = width / new_w, height / new_h  # source pixels per resized pixel
        box = (left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy)
        return image.resize((self.crop, self.crop), pil_modes_mapping[InterpolationMode(self.interpolation)], box=box)

    def read(self, source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
        """An image file, its bytes or a PIL image -> (3, crop, crop): load_image decoding no more than resize needs."""
        return self(load_image(source, max_pixels, self.resize))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: Mapping) -> ImagePreprocessing:
        """From plain data (a config, a checkpoint's dict; lists are taken for tuples)."""
        return cls(**fields)


def captioner_preprocessing(image_size: int) -> ImagePreprocessing:
    """The captioner's input: short side to image_size, centre crop image_size x image_size, ImageNet mean and std."""
    return ImagePreprocessing(image_size, image_size, IMAGENET_MEAN, IMAGENET_STD, "bilinear")


class ImageReport(SkipReport):
    """Image files skipped and why (BAD_IMAGE_REASONS); items are file names."""

    REASONS = BAD_IMAGE_REASONS
