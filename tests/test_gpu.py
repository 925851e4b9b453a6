"""The GPU trainer configs on real CUDA devices (skipped on machines without one)."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mri.train import train
from mri.utils.precision import fast_precision
from tests.conftest import TINY, run_if_gpus

REPO = Path(__file__).resolve().parents[1]
MODELS = {"squeezenet": "tag_mel", "squeezenet_early": "tag_mel", "captioner": "captions"}

pytestmark = pytest.mark.gpu


@run_if_gpus(1)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_trainer_gpu_trains_each_model_on_one_gpu_in_mixed_precision(make_cfg, model):
    cfg = make_cfg("train", MODELS[model], f"model={model}", "trainer=gpu")
    metrics, objects = train(cfg)
    trainer = objects["trainer"]
    assert trainer.strategy.root_device.type == "cuda"
    # the captioner takes bf16 where the GPU has it (configs/model/captioner.yaml)
    assert trainer.precision == (fast_precision("gpu") if model == "captioner" else "16-mixed")
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved and all(math.isfinite(v) for v in saved.values())
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


@run_if_gpus(1)
@pytest.mark.slow
def test_trainer_ddp_trains_on_every_gpu_from_the_command_line(tmp_path):
    # the ddp strategy relaunches the command once per extra GPU, so it runs as a user runs it
    overrides = [*TINY["tag_mel"], "model=squeezenet", "trainer=ddp", "trainer.max_epochs=1", "logger=tensorboard",
                 f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run([sys.executable, "train.py", *overrides], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= saved["test/ndcg@10"] <= 1
    world = torch.cuda.device_count()
    assert re.search(rf"MEMBER: 1/{world}\b", result.stdout + result.stderr)  # one process per GPU
