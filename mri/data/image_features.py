"""Image features of a frozen encoder, computed once per image and memory-mapped (as the mel features are).

A frozen pretrained encoder gives every image the same feature map in every epoch, so the captioner's
training reads them from a store instead of running the encoder (most of a step's cost) again:

    features.npy   (N, V, P, C) float16: V views of each image (itself, and its mirror image when flips
                   are cached), P = h*w positions of the encoder's feature map, C channels
    names.json     the N image names in row order (the index)
    report.json    images that could not be read, counted and listed (mri.data.images.ImageReport)
    meta.json      the encoder, the preprocessing, the views and the fingerprint of the images; written last

A store's folder is named after the image folder, the encoder and the preprocessing; meta.json also
holds a fingerprint of the image files (name, size, modification time). A store whose fingerprint no
longer matches its images is stale: `ImageFeatures.open` refuses it, `build_image_features` rebuilds it.
It is written in a temporary sibling folder and renamed into place, so a half-built store never looks complete.

    store = build_image_features(image_dir, names, encode, encoder_id, preprocessing, cache_dir, views=2)
    store.view("1000268201_693b08cb0e.jpg", mirrored=False)  # (P, C) float32
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mri.data.images import BadImage, ImagePreprocessing, ImageReport
from mri.utils.atomic import write_text_atomically

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ENCODE_BATCH = 32  # images per encoder call


class StaleFeatures(ValueError):
    """A store that does not describe the images (or encoder, or preprocessing) it is asked for."""


def images_fingerprint(image_dir: Path, names: Sequence[str]) -> str:
    """sha1 over (name, size, mtime) of each file in order; a missing file counts as (name, -1, -1)."""
    digest = hashlib.sha1()
    for name in names:
        try:
            stat = (image_dir / name).stat()
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{name}\0-1\0-1\n".encode())
    return digest.hexdigest()


def store_settings(image_dir: Path, encoder_id: dict, preprocessing: ImagePreprocessing) -> dict:
    """What decides a store's folder: the image folder, the encoder and the preprocessing (as JSON reads them)."""
    return json.loads(json.dumps({"version": FORMAT_VERSION, "image_dir": str(image_dir.resolve()),
                                  "encoder": encoder_id, "preprocessing": preprocessing.to_dict()}))


def store_folder(cache_dir: Path, settings: dict) -> Path:
    ident = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"{settings['encoder'].get('name', 'encoder')}-{ident}"


class ImageFeatures:
    """A built store, opened read-only and memory-mapped; `view(name, mirrored)` -> (P, C) float32."""

    def __init__(self, folder: Path, meta: dict):
        self.folder, self.meta = folder, meta
        self.features = np.load(folder / "features.npy", mmap_mode="r")  # (N, V, P, C) float16
        self.names: list[str] = json.loads((folder / "names.json").read_text(encoding="utf-8"))
        self.row = {name: i for i, name in enumerate(self.names)}
        self.report = ImageReport.read(folder / "report.json")

    @classmethod
    def open(cls, folder: str | os.PathLike, settings: dict, fingerprint: str, views: int = 1) -> ImageFeatures:
        """The store in `folder`; StaleFeatures when it is unfinished, describes other images or settings, or
        holds fewer than `views` views."""
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise StaleFeatures(f"{folder} is not a built image feature store (no meta.json: its build never "
                                "finished); training rebuilds it")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("settings") != settings:
            raise StaleFeatures(f"the image features in {folder} were computed with other settings "
                                f"({meta.get('settings')}, not {settings}); training rebuilds them")
        if meta.get("fingerprint") != fingerprint:
            raise StaleFeatures(f"the image features in {folder} are stale: the images in "
                                f"{settings['image_dir']} changed since they were computed; training rebuilds them")
        if meta["views"] < views:
            raise StaleFeatures(f"the image features in {folder} hold {meta['views']} view(s) of each image, not "
                                f"{views} (the mirror images for flips); training rebuilds them")
        return cls(folder, meta)

    @property
    def views(self) -> int:
        return self.features.shape[1]

    def __contains__(self, name: str) -> bool:
        return name in self.row

    def view(self, name: str, mirrored: bool = False) -> torch.Tensor:
        """The encoder's features (P, C) of image `name`, or of its mirror image (needs a store of 2 views)."""
        if mirrored and self.views < 2:
            raise ValueError(f"{self.folder} holds no mirrored views: build it with views=2")
        return torch.from_numpy(self.features[self.row[name], int(mirrored)].astype(np.float32))

    def pooled(self, names: Sequence[str], chunk: int = 256) -> torch.Tensor:
        """The images' features averaged over positions (N, C) float32 (not mirrored), read chunk images at a time."""
        rows = [self.row[name] for name in names]
        parts = [self.features[rows[i:i + chunk], 0].astype(np.float32).mean(axis=1)  # (chunk, C)
                 for i in range(0, len(rows), chunk)]
        return torch.from_numpy(np.concatenate(parts)) if parts else torch.empty(0, self.features.shape[-1])


def build_image_features(image_dir: str | os.PathLike, names: Sequence[str],
                         encode: Callable[[torch.Tensor], torch.Tensor], encoder_id: dict,
                         preprocessing: ImagePreprocessing, cache_dir: str | os.PathLike, views: int = 1,
                         max_pixels: int | None = None) -> ImageFeatures:
    """The store of these images' features under `cache_dir`, opened if it is there and current, else (re)built.

    encode: (B, 3, H, W) preprocessed images -> (B, C, h, w) feature maps (a frozen encoder: the same
    image always gives the same features); encoder_id: plain data naming it and its weights (part of
    the store's key). views: 1, or 2 to also store each image's mirror image (random flips in training);
    a store of 2 views also serves 1. Unreadable images get no row and are counted in the store's report.
    """
    if views not in (1, 2):
        raise ValueError(f"views must be 1 (the images) or 2 (also their mirror images), not {views}")
    image_dir, names = Path(image_dir), list(dict.fromkeys(names))
    settings = store_settings(image_dir, encoder_id, preprocessing)
    folder, fingerprint = store_folder(Path(cache_dir), settings), images_fingerprint(image_dir, names)
    if (folder / "meta.json").is_file():
        try:
            return ImageFeatures.open(folder, settings, fingerprint, views)
        except StaleFeatures as err:
            log.warning("%s", err)
    tmp = folder.with_name(f"{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_store(tmp, image_dir, names, encode, preprocessing, views, settings, fingerprint, max_pixels)
        _replace(folder, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store = ImageFeatures.open(folder, settings, fingerprint, views)
    log.info("image features: %d of %d images, %d view(s), %s in %s; %s", len(store.names), len(names), views,
             tuple(store.features.shape[2:]), folder, store.report.summary())
    return store


def _write_store(tmp: Path, image_dir: Path, names: list[str], encode: Callable, preprocessing: ImagePreprocessing,
                 views: int, settings: dict, fingerprint: str, max_pixels: int | None) -> None:
    """features.npy (filled batch by batch: memory stays one batch's), names.json, report.json, then meta.json."""
    report, kept, store = ImageReport(), [], None
    batch: list[torch.Tensor] = []

    def flush() -> None:
        nonlocal store
        x = torch.stack(batch)  # (B, 3, H, W)
        if views == 2:
            x = torch.stack([x, x.flip(-1)], dim=1).flatten(0, 1)  # (2B, 3, H, W): image, mirror, ...
        with torch.inference_mode():
            fmap = encode(x)  # (V*B, C, h, w)
        fmap = fmap.flatten(2).transpose(1, 2).reshape(len(batch), views, -1, fmap.shape[1])  # (B, V, P, C)
        if store is None:
            store = np.lib.format.open_memmap(tmp / "features.npy", mode="w+", dtype=np.float16,
                                              shape=(len(names), *fmap.shape[1:]))
        start = len(kept) - len(batch)
        store[start:len(kept)] = fmap.to(device="cpu", dtype=torch.float16).numpy()
        batch.clear()

    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    for i, name in enumerate(names):
        if i % 500 == 0:
            log.info("image features: %d of %d images encoded", i, len(names))
        try:
            batch.append(preprocessing.read(image_dir / name, **limit))
        except BadImage as err:
            report.add(name, err.reason, err.detail)
            continue
        kept.append(name)
        if len(batch) == ENCODE_BATCH:
            flush()
    if batch:
        flush()
    if store is None:
        raise BadImage("missing", f"no readable image among the {len(names)} given in {image_dir}: "
                                  f"{report.summary()}")
    store.flush()
    del store
    _shrink(tmp / "features.npy", len(kept))
    write_text_atomically(tmp / "names.json", json.dumps(kept, ensure_ascii=False))
    report.write(tmp / "report.json")
    write_text_atomically(tmp / "meta.json", json.dumps(
        {"settings": settings, "fingerprint": fingerprint, "views": views, "n_images": len(kept),
         "n_requested": len(names),
         "report": report.summary()}, ensure_ascii=False, indent=1))


def _shrink(path: Path, n: int) -> None:
    """Cut an .npy file to its first n rows (the rows of skipped images were never written), chunk by chunk."""
    full = np.load(path, mmap_mode="r")
    if len(full) == n:
        return
    cut = path.with_name(f"cut-{path.name}")
    kept = np.lib.format.open_memmap(cut, mode="w+", dtype=full.dtype, shape=(n, *full.shape[1:]))
    for start in range(0, n, ENCODE_BATCH):
        kept[start:start + ENCODE_BATCH] = full[start:min(start + ENCODE_BATCH, n)]
    kept.flush()
    del full, kept
    os.replace(cut, path)


def _replace(folder: Path, tmp: Path) -> None:
    """Put the finished `tmp` in place of `folder` (a stale store, or none)."""
    for file in tmp.iterdir():  # on disk before the rename makes the store look complete
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    if folder.exists():
        old = folder.with_name(f"{folder.name}.old-{socket.gethostname()}-{os.getpid()}")
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, folder)
