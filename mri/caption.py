"""caption(cfg): caption one photo, or every photo of a folder, with a trained captioner checkpoint."""
from __future__ import annotations

import sys

from omegaconf import DictConfig

from mri.data.images import IMAGE_SUFFIXES, BadImage, image_paths
from mri.models.captioner_module import load_captioner
from mri.models.image_stage import CaptionModel, ImageStage


def caption(cfg: DictConfig) -> int:
    """Print `path<TAB>caption` per image (unreadable files: one line on stderr); returns how many failed."""
    stage = ImageStage([CaptionModel(load_captioner(cfg.ckpt_path, map_location=cfg.device), cfg.get("beam_size"))])
    paths = image_paths(cfg.image)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    failed = 0
    for path, result in zip(paths, stage.run(paths, cfg.batch_size), strict=True):
        if isinstance(result, BadImage):
            failed += 1
            print(f"{path}\tcannot caption: {result}", file=sys.stderr, flush=True)
        else:
            print(f"{path}\t{result['caption']}", flush=True)
    return failed
