"""A song's mel-spectrogram as a small picture: dB -> magma colours (numpy + PIL), low bands at the bottom."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# matplotlib's magma colour map (perceptually uniform, dark = quiet) at 0, 1/8, ..., 1; interpolated linearly.
MAGMA = np.array([
    (0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
    (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191),
], dtype=np.float64)  # (9, 3)
PICTURE_SIZE = (240, 48)  # (width, height) in pixels: about 8 frames a column, one mel band a row


def colourize(values: np.ndarray, colours: np.ndarray = MAGMA) -> np.ndarray:
    """Values in [0, 1] (clipped), any shape S -> uint8 RGB of shape S + (3,)."""
    x = np.clip(values, 0.0, 1.0) * (len(colours) - 1)
    lower = np.minimum(np.floor(x).astype(np.int64), len(colours) - 2)  # index of the anchor below
    t = (x - lower)[..., None]  # S + (1,): position between the two anchors
    return np.rint(colours[lower] * (1 - t) + colours[lower + 1] * t).astype(np.uint8)


def mel_picture(mel: np.ndarray, size: tuple[int, int] = PICTURE_SIZE) -> Image.Image:
    """(N_MELS, T) dB -> RGB picture: time left to right, lowest band at the bottom.

    The colours span the song's own 1st to 99th percentile of dB, so quiet and loud songs both show their shape.
    """
    low, high = np.percentile(mel, [1, 99])
    scaled = (mel[::-1] - low) / max(high - low, 1e-6)  # (N_MELS, T), first row = highest band
    small = Image.fromarray(scaled.astype(np.float32), "F").resize(size, Image.Resampling.BOX)  # mean of each box
    return Image.fromarray(colourize(np.asarray(small)), "RGB")  # (height, width, 3)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
