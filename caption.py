"""Caption photos: python caption.py ckpt_path=.../best.ckpt image=photo.jpg (or image=folder/).

Exit status: 0 some photo captioned, 1 no photo captioned, 2 bad arguments or an unusable checkpoint.
"""
import hydra
from omegaconf import DictConfig

from mri.caption import caption
from mri.checkpoints import CheckpointError
from mri.utils.run import exit_with, run_entry_point


@hydra.main(version_base="1.3", config_path="configs", config_name="caption.yaml")
def main(cfg: DictConfig) -> None:
    exit_with("caption", lambda: caption(cfg), (CheckpointError, FileNotFoundError, ValueError))


if __name__ == "__main__":
    run_entry_point(main)
