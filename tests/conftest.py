"""Shared fixtures: Hydra configs composed as the entry points compose them, on tiny generated data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from mri.utils.config import CONFIGS, compose_config  # noqa: F401 (CONFIGS is used by tests)

# Small enough for seconds per test on 2 CPU cores, large enough that every split has songs/images.
TINY = {
    "tag_mel": [
        "data.generate.n_songs=240", "data.generate.n_playlists=200", "data.num_tags=16",
        "data.pairs_per_epoch=256", "data.batch_size=64", "data.eval_batch_size=128",
        "data.features.basis_songs=100",
    ],
    "captions": [
        "data.generate.n_images=80", "data.image_size=64", "data.batch_size=16", "data.eval_batch_size=16",
        "data.min_word_count=1",
    ],
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Generated datasets and feature caches, shared by every test of the session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """make_cfg(config_name, data, *overrides): a composed config on tiny data, writing under tmp_path."""

    def make(config_name: str, data: str, *overrides: str) -> DictConfig:
        return compose_config(config_name, [*TINY[data], "trainer.max_epochs=1", "logger=csv", *overrides],
                              tmp_path / "run", data_dir)

    return make


def run_if_gpus(n: int):
    """Skip unless there are at least n CUDA GPUs."""
    return pytest.mark.skipif(torch.cuda.device_count() < n, reason=f"needs {n} CUDA GPU(s)")
