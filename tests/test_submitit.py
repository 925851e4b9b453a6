"""Jobs beyond one process, for real: Hydra's submitit launcher (submitit_local runs the code path of
submitit_slurm, each job a separate process with its own folder), and DDP resuming from last.ckpt."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from mri.preprocess import preprocess
from mri.train import train
from mri.utils.config import compose_config
from tests.conftest import TINY
from tests.test_preprocess import N_SONGS, SMALL, store_files

REPO = Path(__file__).resolve().parents[1]
SUBMITIT = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20", "hydra.launcher.cpus_per_task=1"]


def submit(script: str, tmp_path: Path, *overrides: str) -> list[Path]:
    """`python <script> -m ... hydra/launcher=submitit_local`; the job folders of its sweep, in job order."""
    result = subprocess.run([sys.executable, script, "-m", *SUBMITIT, f"paths.log_dir={tmp_path / 'logs'}",
                             *overrides], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs").glob("*/multiruns/*")
    assert len(list((sweep / ".submitit").iterdir())) >= 2  # submitit's own job records: two jobs were submitted
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.mark.slow
def test_preprocessing_shards_as_submitit_jobs_then_the_merge_build_the_one_process_store(tmp_path, data_dir):
    # the one-process build first: it also generates the Melon root both jobs read
    alone = preprocess(compose_config("preprocess", [*SMALL, "workers=0", f"data.cache_dir={tmp_path / 'alone'}"],
                                      tmp_path / "alone-run", data_dir))
    assert alone["songs"] == N_SONGS
    common = [*SMALL, "workers=0", f"paths.data_dir={data_dir}", f"data.cache_dir={tmp_path / 'cache'}"]
    jobs = submit("preprocess.py", tmp_path, "shard=0,1", "num_shards=2", *common)
    assert [p.name for p in jobs] == ["0", "1"]
    # 5 parts: shard 0 does parts 0, 2, 4 and shard 1 parts 1, 3, each in its own job folder
    assert [json.loads((job / "preprocess.json").read_text())["parts"] for job in jobs] == [3, 2]
    assert not list((tmp_path / "cache").glob("*/meta.json"))  # no store before the merge
    merge = subprocess.run([sys.executable, "preprocess.py", "merge=true", f"paths.log_dir={tmp_path / 'logs'}",
                            *common], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert merge.returncode == 0, merge.stderr[-3000:]
    (store,) = (p.parent for p in (tmp_path / "cache").glob("*/meta.json"))
    assert store_files(store) == store_files(Path(alone["store"]))  # byte for byte


@pytest.mark.slow
def test_a_training_sweep_as_submitit_jobs_gives_each_job_its_folder_and_metrics(tmp_path, data_dir):
    jobs = submit("train.py", tmp_path, *TINY["tag_mel"], "model=squeezenet", "model.net.backbone=plain_cnn",
                  "trainer.max_epochs=1", "logger=csv", "extras.print_config=false", "test=false",
                  f"paths.data_dir={data_dir}", "model.optimizer.lr=0.001,0.003")
    assert [p.name for p in jobs] == ["0", "1"]
    for job, lr in zip(jobs, ("0.001", "0.003"), strict=True):
        assert "val/ndcg@10_best" in json.loads((job / "metrics.json").read_text())
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert f"model.optimizer.lr={lr}" in (job / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.slow
def test_ddp_resumed_from_last_ckpt_ends_with_the_metrics_of_an_uninterrupted_run(make_cfg, tmp_path):
    # two CPU processes (gloo); the schedule is fixed at 2 epochs and dropout is off, so that stopping after
    # epoch 1 (max_epochs=1) changes nothing but where the run stops
    common = ["model=squeezenet", "model.net.backbone=plain_cnn", "model.net.dropout=0", "model.scheduler.T_max=2",
              "trainer=ddp_sim", "logger=tensorboard"]

    def run(folder: str, *overrides: str) -> dict:
        cfg = make_cfg("train", "tag_mel", *common, *overrides)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / folder)
        train(cfg)
        return json.loads((tmp_path / folder / "metrics.json").read_text())

    whole = run("whole", "trainer.max_epochs=2")
    run("first", "trainer.max_epochs=1", "test=false")
    resumed = run("resumed", "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    keys = [k for k in whole if k.startswith(("val/", "test/"))]
    assert "test/ndcg@10" in keys and "val/ndcg@10" in keys
    assert {k: resumed[k] for k in keys} == pytest.approx({k: whole[k] for k in keys}, abs=1e-6)
