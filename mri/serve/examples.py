"""Example photos one click away: a generated scene of each theme, rendered when the page starts."""
from __future__ import annotations

import io

import numpy as np

from mri.data.synthetic.flickr import JPEG_QUALITY
from mri.data.synthetic.scenes import plan_scene, render_scene
from mri.data.synthetic.themes import THEME_NAMES


def example_photos(size: tuple[int, int] = (320, 240), seed: int = 0) -> dict[str, bytes]:
    """Theme name -> JPEG bytes of one generated scene of that theme, (width, height) = size."""
    rng = np.random.default_rng(seed)
    photos = {}
    for theme in THEME_NAMES:
        buffer = io.BytesIO()
        render_scene(plan_scene(theme, rng), tuple(size)).save(buffer, "JPEG", quality=JPEG_QUALITY)
        photos[theme] = buffer.getvalue()
    return photos
