"""Real Hydra multiruns through train.py: a grid of two jobs and an Optuna study, each job in its own folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]


def multirun(tmp_path: Path, data_dir: Path, *overrides: str) -> list[Path]:
    """Run `python train.py -m ...` on tiny data; the job folders it made, in job order."""
    args = [sys.executable, "train.py", "-m", *TINY["tag_mel"], "model.net.backbone=plain_cnn",
            "trainer.max_epochs=1", "logger=csv", "extras.print_config=false", f"paths.data_dir={data_dir}",
            f"paths.log_dir={tmp_path}", *overrides]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_grid_multirun_gives_each_job_its_own_folder(tmp_path, data_dir):
    jobs = multirun(tmp_path, data_dir, "model=squeezenet,squeezenet_early", "test=false")
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert "val/ndcg@10_best" in metrics
        assert (job / "checkpoints" / "last.ckpt").is_file()
    overrides = [(p / ".hydra" / "overrides.yaml").read_text() for p in jobs]
    assert "model=squeezenet" in overrides[0] and "model=squeezenet_early" in overrides[1]


@pytest.mark.slow
def test_optuna_sweep_optimises_the_best_so_far_metric(tmp_path, data_dir):
    jobs = multirun(tmp_path, data_dir, "hparams_search=squeezenet_optuna", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.sampler.n_startup_trials=2", "test=false")
    assert len(jobs) == 2
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    best = (sweep / "optimization_results.yaml").read_text()
    values = [json.loads((j / "metrics.json").read_text())["val/ndcg@10_best"] for j in jobs]
    assert f"best_value: {max(values)}" in best
