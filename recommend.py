"""Recommend songs for photos: python recommend.py image=photo.jpg (or a folder) [output=json] [build_index=true]."""
import sys

import hydra
from omegaconf import DictConfig

from mri.recommend.command import recommend
from mri.recommend.index import IndexProblem


@hydra.main(version_base="1.3", config_path="configs", config_name="recommend.yaml")
def main(cfg: DictConfig) -> None:
    try:
        status = recommend(cfg)
    except (FileNotFoundError, IndexProblem, ValueError) as err:  # missing/bad checkpoint, index, settings
        print(f"recommend: {err}", file=sys.stderr)
        status = 2
    sys.exit(status)  # 1: no photo could be answered


if __name__ == "__main__":
    main()
