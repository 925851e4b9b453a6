"""The web page: python serve.py [port=8000], then open http://127.0.0.1:8000 and drop a photo."""
import sys

import hydra
from omegaconf import DictConfig

from mri.recommend.index import IndexProblem
from mri.serve.command import serve


@hydra.main(version_base="1.3", config_path="configs", config_name="serve.yaml")
def main(cfg: DictConfig) -> None:
    try:
        serve(cfg)
    except (FileNotFoundError, IndexProblem, ValueError) as err:  # missing or bad checkpoint, index or settings
        print(f"serve: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
