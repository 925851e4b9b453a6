"""The image feature store: built once, reused, refused or rebuilt when stale, unreadable images skipped and counted."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from mri.data.image_features import (
    ImageFeatures,
    StaleFeatures,
    build_image_features,
    images_fingerprint,
    store_settings,
)
from mri.data.images import ImagePreprocessing

PREPROCESSING = ImagePreprocessing(resize=16, crop=16)
ENCODER = {"name": "conv4", "weights": "seed-0"}


class CountingEncoder:
    """A fixed random 4x4/4 convolution (B, 3, 16, 16) -> (B, 5, 4, 4), counting the images it encodes."""

    def __init__(self):
        self.conv = torch.nn.Conv2d(3, 5, 4, stride=4)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))
        self.images = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.conv(x)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / name)
    return folder, names


def build(photos, encoder, cache, views=1, preprocessing=PREPROCESSING):
    folder, names = photos
    return build_image_features(folder, names, encoder, ENCODER, preprocessing, cache, views=views)


def expected(folder, name, encoder, mirrored=False):
    x = PREPROCESSING(Image.open(folder / name).convert("RGB"))  # (3, 16, 16)
    x = x.flip(-1) if mirrored else x
    with torch.no_grad():
        return encoder.conv(x[None])[0].flatten(1).T  # (16, 5)


def test_built_once_then_reused(photos, tmp_path):
    encoder = CountingEncoder()
    store = build(photos, encoder, tmp_path / "cache", views=2)
    assert encoder.images == 10  # 5 images and their mirror images
    assert store.features.shape == (5, 2, 16, 5) and store.features.dtype == np.float16
    assert store.names == photos[1] and store.report.n_skipped == 0
    for name in photos[1]:
        for mirrored in (False, True):
            torch.testing.assert_close(store.view(name, mirrored), expected(photos[0], name, encoder, mirrored),
                                       atol=2e-3, rtol=2e-3)  # float16 storage
    again = build(photos, encoder, tmp_path / "cache", views=2)
    assert encoder.images == 10 and again.folder == store.folder  # opened, not computed
    assert build(photos, encoder, tmp_path / "cache", views=1).folder == store.folder  # mirrors unused
    assert encoder.images == 10
    assert not list((tmp_path / "cache").glob("*.tmp-*"))
    other = build(photos, encoder, tmp_path / "cache", preprocessing=ImagePreprocessing(16, 16, mean=(0.4,) * 3))
    assert other.folder != store.folder and encoder.images == 15  # other preprocessing: its own store
    with pytest.raises(ValueError, match="no mirrored views"):
        other.view(photos[1][0], mirrored=True)


def test_stale_store_is_refused_then_rebuilt(photos, tmp_path):
    folder, names = photos
    encoder = CountingEncoder()
    store = build(photos, encoder, tmp_path / "cache")
    before = store.view(names[0]).clone()
    Image.new("RGB", (20, 24), (250, 10, 10)).save(folder / names[0])  # the image changed
    os.utime(folder / names[0], ns=(1, 1))  # whatever the clock's resolution
    settings = store_settings(folder, ENCODER, PREPROCESSING)
    with pytest.raises(StaleFeatures, match="stale"):
        ImageFeatures.open(store.folder, settings, images_fingerprint(folder, names))
    with pytest.raises(StaleFeatures, match="other settings"):
        ImageFeatures.open(store.folder, store_settings(folder, {**ENCODER, "weights": "seed-1"}, PREPROCESSING),
                           store.meta["fingerprint"])
    with pytest.raises(StaleFeatures, match="1 view"):  # no mirror images for flips
        ImageFeatures.open(store.folder, settings, store.meta["fingerprint"], views=2)
    rebuilt = build(photos, encoder, tmp_path / "cache")
    assert encoder.images == 10 and rebuilt.folder == store.folder
    assert not torch.allclose(rebuilt.view(names[0]), before)
    torch.testing.assert_close(rebuilt.view(names[0]), expected(folder, names[0], encoder), atol=2e-3, rtol=2e-3)
    (store.folder / "meta.json").unlink()  # an unfinished build
    with pytest.raises(StaleFeatures, match="never finished"):
        ImageFeatures.open(store.folder, settings, images_fingerprint(folder, names))


def test_unreadable_images_are_skipped_and_counted(photos, tmp_path):
    folder, names = photos
    (folder / names[1]).write_bytes((folder / names[1]).read_bytes()[:60])  # truncated
    (folder / names[3]).write_text("<html>404</html>")
    encoder = CountingEncoder()
    store = build((folder, [*names, "gone.png"]), encoder, tmp_path / "cache")
    assert store.names == [names[0], names[2], names[4]] and store.features.shape[0] == 3
    assert store.report.counts["corrupt"] == 1 and store.report.counts["not_image"] == 1
    assert store.report.counts["missing"] == 1 and store.meta["n_requested"] == 6
    assert names[1] not in store and names[2] in store
    torch.testing.assert_close(store.view(names[4]), expected(folder, names[4], encoder), atol=2e-3, rtol=2e-3)


def test_views_must_be_one_or_two(photos, tmp_path):
    with pytest.raises(ValueError, match="views must be 1"):
        build(photos, CountingEncoder(), tmp_path / "cache", views=3)
