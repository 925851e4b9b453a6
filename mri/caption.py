"""caption(cfg): caption one photo, or every photo of a folder, with a trained captioner checkpoint."""
from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig

from mri.data.images import BadImage, load_image
from mri.models.captioner_module import CaptionerModule, load_captioner

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_paths(path: str | Path) -> list[Path]:
    """The image files of a folder (by suffix, sorted), or the one path given (checked when read)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def caption_files(captioner: CaptionerModule, paths: Sequence[Path], batch_size: int = 16,
                  beam_size: int | None = None) -> Iterator[tuple[Path, str | BadImage]]:
    """(path, caption) in the order given, or (path, BadImage) for a file that cannot be read."""
    transform = captioner.preprocessing  # exactly what its training images got
    for start in range(0, len(paths), batch_size):
        results: dict[Path, str | BadImage] = {}
        images = {}
        for path in paths[start:start + batch_size]:
            try:
                images[path] = transform(load_image(path))
            except BadImage as err:
                results[path] = err
        if images:
            batch = torch.stack(list(images.values())).to(captioner.device)  # (B, 3, H, W)
            results.update(zip(images, captioner.caption(batch, beam_size)))
        yield from ((path, results[path]) for path in paths[start:start + batch_size])


def caption(cfg: DictConfig) -> int:
    """Print `path<TAB>caption` per image (unreadable files: one line on stderr); returns how many failed."""
    captioner = load_captioner(cfg.ckpt_path, map_location=cfg.device)
    paths = image_paths(cfg.image)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    failed = 0
    for path, result in caption_files(captioner, paths, cfg.batch_size, cfg.get("beam_size")):
        if isinstance(result, BadImage):
            failed += 1
            print(f"{path}\tcannot caption: {result}", file=sys.stderr, flush=True)
        else:
            print(f"{path}\t{result}", flush=True)
    return failed
