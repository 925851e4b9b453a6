"""Shared fixtures: Hydra configs composed as the entry points compose them, on tiny generated data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from mri.data.flickr import find_flickr
from mri.train import train
from mri.utils.config import CONFIGS, compose_config  # noqa: F401 (CONFIGS is used by tests)

# Small enough for seconds per test on 2 CPU cores, large enough that every split has songs/images.
TINY = {
    "tag_mel": [
        "data.generate.n_songs=240", "data.generate.n_playlists=200", "data.num_tags=16",
        "data.pairs_per_epoch=256", "data.batch_size=64", "data.eval_batch_size=128",
        "data.features.basis_songs=100",
    ],
    "captions": [
        "data.generate.n_images=80", "data.preprocessing.resize=64", "data.preprocessing.crop=64",
        "data.batch_size=16", "data.eval_batch_size=16", "data.min_word_count=1",
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Tiny two-tower and captioner checkpoints, and the generated data they were trained on.

    Shared by the whole session: a test that changes a checkpoint works on a copy.
    """
    base = tmp_path_factory.mktemp("recommend")
    data = base / "data"
    ckpts = {}
    for name, model, group in (("tag_mel", "squeezenet", "tag_mel"), ("captioner", "captioner", "captions")):
        cfg = compose_config("train", [*TINY[group], f"model={model}", "trainer.max_epochs=1", "logger=csv",
                                       "test=false"], base / name, data)
        train(cfg)
        ckpts[name] = base / name / "checkpoints" / "best.ckpt"
    flickr = find_flickr(next(data.glob("flickr8k-synth-*")))
    return base, data, ckpts, flickr


def recommend_cfg(trained, tmp_path: Path, *overrides: str, config_name: str = "recommend") -> DictConfig:
    """recommend.yaml (or serve.yaml) on the trained checkpoints, the index in the trained base folder."""
    base, data, ckpts, _ = trained
    return compose_config(config_name, [f"tag_mel_ckpt={ckpts['tag_mel']}", f"captioner_ckpt={ckpts['captioner']}",
                                        f"index_dir={base / 'index'}", *overrides], tmp_path / "run", data)


def run_if_gpus(n: int):
    """Skip unless there are at least n CUDA GPUs."""
    return pytest.mark.skipif(torch.cuda.device_count() < n, reason=f"needs {n} CUDA GPU(s)")
