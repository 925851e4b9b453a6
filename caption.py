"""Caption photos: python caption.py ckpt_path=.../best.ckpt image=photo.jpg (or image=folder/)."""
import hydra
from omegaconf import DictConfig

from mri.caption import caption


@hydra.main(version_base="1.3", config_path="configs", config_name="caption.yaml")
def main(cfg: DictConfig) -> None:
    if caption(cfg):
        raise SystemExit(1)  # some files could not be read; the others were captioned


if __name__ == "__main__":
    main()
