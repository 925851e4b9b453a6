"""W&B without an account: offline files in the run folder, no prompt, closed at the end."""
from __future__ import annotations

from pathlib import Path

import pytest

from mri.train import train
from mri.utils.loggers import wandb_credentials_present


@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def test_credentials_are_found_in_env_or_netrc(no_wandb_account, tmp_path, monkeypatch):
    assert not wandb_credentials_present()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_credentials_present()
    monkeypatch.delenv("NETRC")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_credentials_present()


@pytest.mark.timeout(300)
def test_training_with_wandb_and_csv_runs_offline_and_leaves_files(no_wandb_account, make_cfg):
    import wandb

    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn",
                   "logger=many_loggers", "test=false")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert (run / "csv").is_dir() and (run / "tensorboard").is_dir()
    assert wandb.run is None  # finished by the task wrapper: the next job of a multirun starts a new run
