"""caption(cfg): caption one photo, or every photo of a folder, with a trained captioner checkpoint."""
from __future__ import annotations

import sys

from omegaconf import DictConfig

from mri.data.images import IMAGE_SUFFIXES, BadImage, image_paths
from mri.models.captioner_module import load_captioner
from mri.models.image_stage import CaptionModel, ImageStage
from mri.utils.names import printable, report_skipped


def caption(cfg: DictConfig) -> int:
    """Print `path<TAB>caption` per image (unreadable files and skipped entries: one line on stderr);
    returns the exit status: 0 when some photo was captioned, 1 when none was."""
    paths, skipped = image_paths(cfg.image)
    report_skipped(skipped)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    stage = ImageStage([CaptionModel(load_captioner(cfg.ckpt_path, map_location=cfg.device), cfg.get("beam_size"))])
    captioned = 0
    for path, result in zip(paths, stage.run(paths, cfg.batch_size), strict=True):
        if isinstance(result, BadImage):
            print(f"{printable(str(path))}\tcannot caption: {printable(str(result))}", file=sys.stderr, flush=True)
        else:
            captioned += 1
            print(f"{printable(str(path))}\t{result['caption']}", flush=True)
    return 0 if captioned else 1
