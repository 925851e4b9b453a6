"""caption(cfg): caption one photo, or every photo of a folder, with a trained captioner checkpoint."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig

from mri.data.caption_datamodule import image_transform
from mri.data.images import BadImage, load_image
from mri.models.captioner_module import CaptionerModule, load_captioner
from mri.utils.names import printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_paths(path: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files of a folder (by suffix, sorted) and its other entries with why each is skipped;
    or the one path given (checked when read) and nothing skipped."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"image={printable(str(path))} does not exist: pass a photo or a folder of photos")
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


def report_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    """One line on stderr for every entry of the folder that is not read."""
    for entry, why in skipped:
        print(f"{printable(str(entry))}: skipped: {why}", file=sys.stderr, flush=True)


def caption_files(captioner: CaptionerModule, paths: Sequence[Path], batch_size: int = 16,
                  beam_size: int | None = None) -> Iterator[tuple[Path, str | BadImage]]:
    """(path, caption) in the order given, or (path, BadImage) for a file that cannot be read."""
    transform = image_transform(captioner.image_size)
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
    """Print `path<TAB>caption` per image (unreadable files and skipped entries: one line on stderr);
    returns the exit status: 0 when some photo was captioned, 1 when none was."""
    paths, skipped = image_paths(cfg.image)
    report_skipped(skipped)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    captioner = load_captioner(cfg.ckpt_path, map_location=cfg.device)
    captioned = 0
    for path, result in caption_files(captioner, paths, cfg.batch_size, cfg.get("beam_size")):
        if isinstance(result, BadImage):
            print(f"{printable(str(path))}\tcannot caption: {printable(str(result))}", file=sys.stderr, flush=True)
        else:
            captioned += 1
            print(f"{printable(str(path))}\t{result}", flush=True)
    return 0 if captioned else 1
