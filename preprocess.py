"""Mel files -> feature store.

    python preprocess.py [data=melon data.root=...] [workers=N] [shard=i num_shards=K | merge=true]
"""
import sys

import hydra
from omegaconf import DictConfig

from mri.data.features import IncompleteBuild
from mri.data.melon import DataRootError
from mri.preprocess import preprocess


@hydra.main(version_base="1.3", config_path="configs", config_name="preprocess.yaml")
def main(cfg: DictConfig) -> None:
    try:
        preprocess(cfg)
    except (DataRootError, IncompleteBuild, OSError, ValueError) as err:  # say what is wrong and what to do
        print(f"preprocess: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
