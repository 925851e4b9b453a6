"""Recommend songs for photos: python recommend.py image=photo.jpg (or a folder) [text="비 오는 밤"] [output=json]
[build_index=true].

Exit status: 0 some photo answered, 1 no photo answered, 2 bad arguments (a text over the limit among them), a
missing index or an unusable checkpoint.
"""
import sys

import hydra
from omegaconf import DictConfig

from mri.checkpoints import CheckpointError
from mri.recommend.command import quote_text_argument, recommend
from mri.recommend.index import IndexProblem
from mri.utils.run import exit_with, run_entry_point


@hydra.main(version_base="1.3", config_path="configs", config_name="recommend.yaml")
def main(cfg: DictConfig) -> None:
    exit_with("recommend", lambda: recommend(cfg), (CheckpointError, FileNotFoundError, ValueError, IndexProblem))


if __name__ == "__main__":
    sys.argv = quote_text_argument(sys.argv)
    run_entry_point(main)
