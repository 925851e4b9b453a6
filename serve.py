"""The web page: python serve.py [port=8000], then open http://127.0.0.1:8000 and drop a photo.

Exit status: 0 after Ctrl+C, 2 bad arguments, a missing index or an unusable checkpoint.
"""
import hydra
from omegaconf import DictConfig

from mri.checkpoints import CheckpointError
from mri.recommend.index import IndexProblem
from mri.serve.command import serve
from mri.utils.run import exit_with, run_entry_point


@hydra.main(version_base="1.3", config_path="configs", config_name="serve.yaml")
def main(cfg: DictConfig) -> None:
    exit_with("serve", lambda: serve(cfg) or 0, (CheckpointError, FileNotFoundError, ValueError, IndexProblem))


if __name__ == "__main__":
    run_entry_point(main)
