"""Training end to end on tiny generated data: every model config, the run folder, resume, eval, DDP."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from mri.checkpoints import CheckpointError
from mri.data.melon import DataRootError
from mri.eval import evaluate
from mri.train import train
from mri.utils.config import compose_config

REPO = Path(__file__).resolve().parents[1]
MODELS = {"squeezenet": "tag_mel", "squeezenet_early": "tag_mel", "captioner": "captions"}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fast_dev_run_of_every_model_config(make_cfg, model):
    cfg = make_cfg("train", MODELS[model], f"model={model}", "+trainer.fast_dev_run=true")
    metrics, objects = train(cfg)
    assert objects["trainer"].state.finished
    assert any(k.startswith("test/") for k in metrics)


def test_training_leaves_a_complete_run_folder_and_resumes(make_cfg, tmp_path):
    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn")
    metrics, _ = train(cfg)
    run = Path(cfg.paths.output_dir)
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("test/ndcg@10", "test/ndcg", "test/kendall_tau", "test/mse", "test/random/ndcg@10",
                "test/popularity/ndcg@10", "val/ndcg@10_best"):
        assert key in saved, key
    assert saved["test/ndcg@10"] == pytest.approx(metrics["test/ndcg@10"])
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    report = json.loads((run / "mel_report.json").read_text())
    assert sum(report["counts"].values()) > 0  # the generated data carries bad mels; they are listed
    assert (run / "csv").is_dir()

    resumed = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn",
                       "trainer.max_epochs=2", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
    _, objects = train(resumed)
    trainer = objects["trainer"]
    assert trainer.current_epoch == 2
    steps_per_epoch = math.ceil(len(objects["datamodule"].splits["train"]) / 64)  # song batches of 64 (TINY)
    assert trainer.global_step == 2 * steps_per_epoch  # one epoch restored, one trained


def test_baselines_are_scored_once_per_split(make_cfg, monkeypatch):
    import mri.models.tag_mel_module as tag_mel_module
    calls = []

    def counted(ranking):
        def run(target, *args, **kwargs):
            calls.append((ranking.__name__, tuple(target.shape)))
            return ranking(target, *args, **kwargs)
        return run

    for name in ("random_ranking", "popularity_ranking"):
        monkeypatch.setattr(tag_mel_module, name, counted(getattr(tag_mel_module, name)))
    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn", "trainer.max_epochs=3",
                   "+trainer.num_sanity_val_steps=0", "test=false")
    _, objects = train(cfg)
    assert objects["trainer"].current_epoch == 3
    assert [name for name, _ in calls] == ["random_ranking", "popularity_ranking"]  # 3 epochs, one scoring
    assert "val/random/ndcg@10" in objects["trainer"].callback_metrics  # still logged every epoch


def test_eval_scores_a_checkpoint_and_refuses_another_model(make_cfg, tmp_path):
    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn", "test=false")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"

    eval_cfg = make_cfg("eval", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn", f"ckpt_path={ckpt}")
    with open_dict(eval_cfg):
        eval_cfg.paths.output_dir = str(tmp_path / "eval")
    metrics, _ = evaluate(eval_cfg)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["test/ndcg@10"] == pytest.approx(metrics["test/ndcg@10"])

    wrong = make_cfg("eval", "tag_mel", "model=squeezenet_early", f"ckpt_path={ckpt}")
    with pytest.raises(ValueError, match="does not match the configured model"):
        evaluate(wrong)
    missing = make_cfg("eval", "tag_mel", "model=squeezenet", f"ckpt_path={tmp_path / 'nope.ckpt'}")
    with pytest.raises(CheckpointError, match="nope.ckpt does not exist"):
        evaluate(missing)


def test_a_missing_data_root_says_where_and_what_to_do(tmp_path):
    cfg = compose_config("train", ["model=squeezenet", "data=melon", f"data.root={tmp_path / 'no-melon'}",
                                   "logger=csv"], tmp_path / "run", tmp_path / "data")
    with pytest.raises(DataRootError, match="no-melon"):
        train(cfg)


def test_a_config_typo_is_hydras_error_not_a_training_traceback(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "model=squeezenett", f"paths.log_dir={tmp_path}"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Could not find 'model/squeezenett'" in result.stderr
    assert "Available options" in result.stderr and "squeezenet" in result.stderr
    assert "lightning" not in result.stderr


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(make_cfg):
    # Lightning's CSVLogger cannot follow ddp_spawn from fit into test (a fresh process meets the fit's
    # metrics.csv and refuses its columns); TensorBoard can
    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn", "trainer=ddp_sim",
                   "logger=tensorboard")
    metrics, objects = train(cfg)
    assert objects["trainer"].world_size == 2
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert 0 <= saved["test/ndcg@10"] <= 1
