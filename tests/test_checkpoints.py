"""Checkpoints hold plain data and are read with weights_only=True: crafted ones are refused unread by every entry
point, old ones are refused with the command that upgrades them, and a checkpoint alone is enough to use it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from mri.caption import caption
from mri.checkpoints import CheckpointError, latest_checkpoint, load_module, not_plain, read_checkpoint, upgrade
from mri.eval import evaluate
from mri.recommend.command import recommend
from mri.serve.command import app_from_config
from mri.train import train
from mri.utils.config import compose_config
from tests.conftest import recommend_cfg

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "tests" / "fixtures" / "legacy"  # saved by MRI at commit fd373d8, before checkpoints were plain


class WritesAFile:
    """Unpickling this creates a file: what a shared checkpoint could do to whoever loads it unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def with_checkpoint(cfg, key: str, path: Path):
    """cfg with cfg[key] = path (one checkpoint swapped for another)."""
    with open_dict(cfg):
        cfg[key] = str(path)
    return cfg


def crafted(ckpt: Path, folder: Path) -> tuple[Path, Path]:
    """A copy of a real checkpoint with one extra object whose unpickling writes `marker`."""
    folder.mkdir(parents=True, exist_ok=True)
    marker, path = folder / "pwned", folder / "crafted.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["payload"] = WritesAFile(marker)
    torch.save(checkpoint, path)
    return path, marker


def test_our_checkpoints_are_plain_data_and_describe_themselves(trained):
    _, _, ckpts, _ = trained
    for name, kind in (("tag_mel", "two_tower"), ("captioner", "captioner")):
        checkpoint = read_checkpoint(ckpts[name])
        assert not_plain(checkpoint) == []
        saved = checkpoint["mri"]
        assert saved["kind"] == kind and saved["datamodule"].startswith("mri.data.")
        assert saved["data"]["generated"] is True and saved["data"]["root"]
        assert checkpoint["hyper_parameters"]["net"]["_target_"].startswith("mri.models.")
        assert checkpoint["hyper_parameters"]["optimizer"]["_target_"] == "torch.optim.AdamW"
    facts = read_checkpoint(ckpts["tag_mel"])["mri"]["data"]
    assert len(facts["query_tags"]) == 16 and facts["similarity_dim"] == 16 and Path(facts["features"]).is_dir()
    assert len(read_checkpoint(ckpts["captioner"])["mri"]["data"]["vocab"]) > 4


def attempt(entry: str, name: str, bad: Path, trained, tmp_path: Path, make_cfg):
    """Run one entry point with the checkpoint `name` ("tag_mel" or "captioner") swapped for `bad`."""
    _, data, _, flickr = trained
    photo = flickr.image_path(flickr.splits["test"][0][0])
    if entry == "eval":
        return evaluate(compose_config("eval", [f"ckpt_path={bad}"], tmp_path / "eval", data))
    if entry == "caption":
        return caption(compose_config("caption", [f"ckpt_path={bad}", f"image={photo}"], tmp_path / "caption", data))
    if entry == "train resume":
        return train(make_cfg("train", "tag_mel", "model=squeezenet", f"ckpt_path={bad}"))
    if entry == "recommend":
        return recommend(with_checkpoint(recommend_cfg(trained, tmp_path, f"image={photo}", "build_index=true"),
                                         f"{name}_ckpt", bad))
    return app_from_config(with_checkpoint(recommend_cfg(trained, tmp_path, "build_index=true", config_name="serve"),
                                           f"{name}_ckpt", bad))


@pytest.mark.parametrize("name, entry", [("tag_mel", e) for e in ("train resume", "eval", "recommend", "serve")]
                         + [("captioner", e) for e in ("eval", "caption", "recommend", "serve")])
def test_a_crafted_checkpoint_is_refused_unread_by_every_entry_point(trained, tmp_path, make_cfg, name, entry):
    bad, marker = crafted(trained[2][name], tmp_path / "craft")
    with pytest.raises(CheckpointError, match="refused unread"):
        attempt(entry, name, bad, trained, tmp_path, make_cfg)
    assert not marker.exists(), f"{entry} ran the checkpoint's code"


def test_a_crafted_run_planted_under_logs_is_skipped(trained, tmp_path, caplog):
    _, _, ckpts, _ = trained
    logs = tmp_path / "logs"
    good = logs / "train" / "runs" / "2026-01-01_00-00-00" / "checkpoints"
    good.mkdir(parents=True)
    shutil.copy(ckpts["tag_mel"], good / "best.ckpt")
    planted = logs / "train" / "runs" / "2099-01-01_00-00-00" / "checkpoints"  # the newest: picked first
    bad, marker = crafted(ckpts["tag_mel"], tmp_path / "craft")
    planted.mkdir(parents=True)
    bad.rename(planted / "best.ckpt")
    assert latest_checkpoint(logs, "two_tower") == good / "best.ckpt"
    assert not marker.exists() and "refused unread" in caplog.text
    with pytest.raises(CheckpointError, match="no captioner checkpoint .* `python train.py model=captioner`"):
        latest_checkpoint(logs, "captioner")


def test_a_config_naming_another_callable_is_refused(trained, tmp_path):
    _, _, ckpts, _ = trained
    checkpoint = torch.load(ckpts["tag_mel"], map_location="cpu", weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["net"] = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    path = tmp_path / "plain-but-hostile.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="'builtins.open', which MRI does not build"):
        load_module(path)
    assert not marker.exists()


@pytest.mark.parametrize("bad, message", [
    ("missing", "does not exist"), ("folder", "is a folder"), ("truncated", "not a readable PyTorch checkpoint"),
    ("tensor", "not a Lightning checkpoint"), ("wrong kind", "holds a two_tower model, not captioner"),
])
def test_unusable_checkpoints_get_one_sentence(trained, tmp_path, bad, message):
    _, _, ckpts, _ = trained
    path = tmp_path / "x.ckpt"
    if bad == "folder":
        path.mkdir()
    elif bad == "truncated":
        path.write_bytes(ckpts["tag_mel"].read_bytes()[:5000])
    elif bad == "tensor":
        torch.save(torch.zeros(3), path)
    elif bad == "wrong kind":
        path = ckpts["tag_mel"]
    with pytest.raises(CheckpointError, match=message) as err:
        load_module(path, ("captioner",))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["two_tower", "early_fusion", "captioner"])
def test_old_checkpoints_are_refused_then_upgraded(kind, tmp_path):
    old = LEGACY / f"{kind}.ckpt"
    with pytest.raises(CheckpointError, match=f"python -m mri.checkpoints upgrade {old}"):
        load_module(old)
    new = tmp_path / "new.ckpt"
    done = subprocess.run([sys.executable, "-m", "mri.checkpoints", "upgrade", str(old), str(new)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    module = load_module(new)
    assert module.kind == kind
    trusted = torch.load(old, map_location="cpu", weights_only=False)  # our own fixture
    assert trusted["hyper_parameters"]["net"] == module.hparams.net
    for name, tensor in trusted["state_dict"].items():
        assert torch.equal(module.state_dict()[name], tensor), name
    if kind == "captioner":
        assert module.vocab.to_list() == trusted["mri"]["vocab"] and module.image_size == 128
        assert len(module.caption(torch.zeros(1, 3, 64, 64), beam_size=1)) == 1
    else:
        assert module.query_tags == trusted["mri"]["query_tags"]
    assert upgrade(trusted, old)["mri"]["kind"] == kind


@pytest.mark.parametrize("model, data", [("squeezenet", "tag_mel"), ("squeezenet_early", "tag_mel"),
                                         ("captioner", "captions")])
def test_eval_of_a_checkpoint_alone_reproduces_its_runs_test_metrics(make_cfg, tmp_path, data_dir, model, data):
    cfg = make_cfg("train", data, f"model={model}", *(["model.net.backbone=plain_cnn"] if data == "tag_mel" else []))
    train(cfg)
    run = Path(cfg.paths.output_dir)
    eval_cfg = compose_config("eval", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=csv"],
                              tmp_path / "eval", data_dir)
    metrics, _ = evaluate(eval_cfg)
    trained_metrics = json.loads((run / "metrics.json").read_text())
    tests = {k: v for k, v in trained_metrics.items() if k.startswith("test/")}
    assert tests and {k: metrics[k] for k in tests} == tests


def test_a_second_test_of_one_module_scores_afresh(make_cfg):
    cfg = make_cfg("train", "tag_mel", "model=squeezenet", "model.net.backbone=plain_cnn")
    _, objects = train(cfg)
    trainer, model, datamodule = objects["trainer"], objects["model"], objects["datamodule"]
    first = trainer.test(model, datamodule=datamodule)[0]
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(torch.randn_like(p))
    second = trainer.test(model, datamodule=datamodule)[0]
    assert second["test/ndcg@10"] != first["test/ndcg@10"]
