"""Every config composes, and what it names can be instantiated."""
from __future__ import annotations

from pathlib import Path

import hydra
import pytest

from tests.conftest import CONFIGS, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (CONFIGS / "hparams_search").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONFIGS / "trainer").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONFIGS / "logger").glob("*.yaml"))
DEBUGS = sorted(p.stem for p in (CONFIGS / "debug").glob("*.yaml"))


def compose(tmp_path: Path, *overrides: str, config: str = "train"):
    return compose_config(config, list(overrides), tmp_path / "run", tmp_path / "data")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_model(tmp_path, experiment):
    cfg = compose(tmp_path, f"experiment={experiment}", "model.net.pretrained=null")  # no downloads here
    model = hydra.utils.instantiate(cfg.model)
    assert model.net is not None
    assert cfg.monitor.metric and cfg.optimized_metric


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_evaluates_with_its_own_data_and_model(tmp_path, experiment):
    train = compose(tmp_path, f"experiment={experiment}")
    evaluate = compose(tmp_path, f"experiment={experiment}", "ckpt_path=x.ckpt", config="eval")
    assert evaluate.data == train.data and evaluate.model == train.model


@pytest.mark.parametrize("search", SEARCHES)
def test_every_sweep_composes(tmp_path, search):
    cfg = compose(tmp_path, f"hparams_search={search}")
    assert cfg.hydra.sweeper.params and cfg.optimized_metric.endswith("_best")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_trainer_composes(tmp_path, trainer):
    cfg = compose(tmp_path, f"trainer={trainer}")
    assert cfg.trainer._target_ == "lightning.pytorch.trainer.Trainer"
    if trainer in ("default", "cpu", "ddp_sim"):  # instantiable here: no GPU needed
        hydra.utils.instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("logger", LOGGERS)
def test_every_logger_instantiates_without_credentials(tmp_path, logger, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    cfg = compose(tmp_path, f"logger={logger}")
    for entry in cfg.logger.values():
        hydra.utils.instantiate(entry)


@pytest.mark.parametrize("debug", DEBUGS)
def test_every_debug_mode_composes(tmp_path, debug):
    cfg = compose(tmp_path, f"debug={debug}")
    assert cfg.trainer.accelerator == "cpu"


def test_the_model_config_picks_its_data_and_an_explicit_data_wins(tmp_path):
    assert compose(tmp_path, "model=squeezenet").data._target_.endswith("TagMelDataModule")
    assert compose(tmp_path, "model=captioner").data._target_.endswith("CaptionDataModule")
    cfg = compose(tmp_path, "model=squeezenet", "data=melon", "data.root=/somewhere")
    assert cfg.data.root == "/somewhere" and cfg.data.generate is None


def test_eval_config_needs_a_checkpoint(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose(tmp_path, config="eval")
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.ckpt_path  # reading the unset value raises
