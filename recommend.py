"""Recommend songs for photos: python recommend.py image=photo.jpg (or a folder) [text="비 오는 밤"] [output=json]
[build_index=true]."""
import sys

import hydra
from omegaconf import DictConfig

from mri.recommend.bridge import TextRefused
from mri.recommend.command import quote_text_argument, recommend
from mri.recommend.index import IndexProblem


@hydra.main(version_base="1.3", config_path="configs", config_name="recommend.yaml")
def main(cfg: DictConfig) -> None:
    try:
        status = recommend(cfg)
    except (FileNotFoundError, IndexProblem) as err:  # missing checkpoint, index or photo folder: say what to run
        print(f"recommend: {err}", file=sys.stderr)
        status = 2
    except TextRefused as err:  # text= over the limit
        print(f"recommend: text= refused: {err}", file=sys.stderr)
        status = 2
    sys.exit(status)  # 1: no photo could be answered


if __name__ == "__main__":
    sys.argv = quote_text_argument(sys.argv)
    main()
