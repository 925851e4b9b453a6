"""Checkpoints: the one place MRI reads, finds and loads them, safely.

A checkpoint MRI writes holds plain data only (dicts, lists, strings, numbers, tensors), so it is read with
`torch.load(weights_only=True)`: one that holds any other object is refused before anything in it runs (an
unpickled object can run code). `checkpoint["mri"]` says what the checkpoint is, nanoGPT-style:

    kind        "two_tower" | "early_fusion" | "captioner"
    datamodule  the DataModule class it was trained with (its arguments: checkpoint["datamodule_hyper_parameters"])
    data        what inference needs from the data (tag-mel: query tags, Melon root, tag-similarity settings,
                feature store; captioner: vocabulary, image size, root, whether the data was generated)
    wandb_run_id

    module = load_module("logs/train/runs/<run>/checkpoints/best.ckpt", kinds=("captioner",))
    ckpt = latest_checkpoint("logs", "two_tower")  # best.ckpt of the newest run of that kind

Checkpoints of MRI before this format hold Hydra and OmegaConf objects; `python -m mri.checkpoints upgrade OLD`
rewrites one (only for files you trust: upgrading unpickles it).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import pickle
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from mri.utils.atomic import write_atomically

log = logging.getLogger(__name__)

# kind -> (LightningModule class, the command that trains one)
KINDS = {
    "two_tower": ("mri.models.tag_mel_module.TagMelModule", "python train.py model=squeezenet"),
    "early_fusion": ("mri.models.tag_mel_module.TagMelModule", "python train.py model=squeezenet_early"),
    "captioner": ("mri.models.captioner_module.CaptionerModule", "python train.py model=captioner"),
}
PLAIN = (str, int, float, bool, type(None), torch.Tensor)
UPGRADE = "python -m mri.checkpoints upgrade"
OLD_FORMAT_MARKS = ("hydra._internal", "omegaconf.")  # objects MRI's checkpoints held before they were plain


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message is one sentence naming the path and what to do."""


def to_plain(value: Any) -> Any:
    """OmegaConf containers -> dicts and lists (resolved), tuples -> lists, recursively; other values as they are."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def not_plain(value: Any, where: str = "checkpoint") -> list[str]:
    """Where value holds something other than plain data, e.g. ["checkpoint/hyper_parameters/optimizer: partial"]."""
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in not_plain(v, f"{where}/{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in not_plain(v, f"{where}[{i}]")]
    return [] if isinstance(value, PLAIN) else [f"{where}: {type(value).__name__}"]


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, read with weights_only=True (tensors memory-mapped), or a CheckpointError saying what
    is wrong with the file and what to pass instead."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint: pass the file, e.g. {path}/checkpoints/best.ckpt")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass ckpt_path=<run folder>/checkpoints/best.ckpt "
                              "(or last.ckpt) of a run made by `python train.py`")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:  # weights_only refused an object: nothing of it ran
        if any(mark in str(err) for mark in OLD_FORMAT_MARKS):
            raise CheckpointError(f"{path} was written by an older MRI and holds Python objects, which are not "
                                  f"read for safety: if you trust the file, convert it once with `{UPGRADE} {path}`"
                                  ) from None
        raise CheckpointError(f"{path} holds Python objects other than plain data, so it was refused unread (loading "
                              "it could run code): MRI's checkpoints hold only dicts, lists, numbers, strings and "
                              "tensors; pass one written by `python train.py`") from None
    except Exception as err:  # truncated, not a zip or pickle, wrong magic number...
        detail = str(err).splitlines()[0] if str(err) else "no detail"
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {detail}): it may "
                              "be cut short or another kind of file; pass a best.ckpt or last.ckpt written by "
                              "`python train.py`") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is a PyTorch file but not a Lightning checkpoint: pass a best.ckpt or last.ckpt "
                              "written by `python train.py`")
    return checkpoint


def checkpoint_kind(checkpoint: dict) -> str | None:
    """The kind MRI stamped on a checkpoint, or None for one that is not MRI's."""
    kind = (checkpoint.get("mri") or {}).get("kind")
    return kind if kind in KINDS else None


def expect_kind(checkpoint: dict, path: str | Path, kinds: Iterable[str]) -> str:
    """The checkpoint's kind when it is one of kinds; else a CheckpointError naming the command that makes one."""
    kinds, kind = tuple(kinds), checkpoint_kind(checkpoint)
    if kind not in kinds:
        what = f"a {kind} model" if kind else "no MRI model"
        raise CheckpointError(f"{path} holds {what}, not {' or '.join(kinds)}: pass a checkpoint written by "
                              f"`{KINDS[kinds[0]][1]}`")
    return kind


def module_class(kind: str) -> type:
    module, _, name = KINDS[kind][0].rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_module(checkpoint: dict, path: str | Path, kinds: Iterable[str] = KINDS, map_location="cpu"):
    """The LightningModule of a checkpoint read by read_checkpoint, in eval mode on map_location."""
    kind = expect_kind(checkpoint, path, kinds)
    hparams = checkpoint.get("hyper_parameters") or {}
    if not hparams.get("net"):
        raise CheckpointError(f"{path} does not say how to build its network (no hyper_parameters.net): "
                              f"retrain it with `{KINDS[kind][1]}`")
    module = module_class(kind)(**hparams)
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}'s weights do not fit the network it describes "
                              f"({str(err).splitlines()[0]}): the file may be damaged; retrain it with "
                              f"`{KINDS[kind][1]}`") from None
    return module.to(map_location).eval()


def load_module(path: str | Path, kinds: Iterable[str] = KINDS, map_location="cpu"):
    """A trained model for inference, built from its checkpoint alone (read once, weights_only)."""
    return build_module(read_checkpoint(path), path, kinds, map_location)


def latest_checkpoint(log_dir: str | Path, kind: str) -> Path:
    """best.ckpt of the newest training run of this kind under log_dir/train/runs; a CheckpointError naming the
    command that trains one when there is none. Files that cannot be read safely are skipped with a warning."""
    runs = Path(log_dir) / "train" / "runs"
    for ckpt in sorted(runs.glob("*/checkpoints/best.ckpt"), reverse=True):  # run folders are named by start time
        try:
            if checkpoint_kind(read_checkpoint(ckpt)) == kind:
                return ckpt
        except CheckpointError as err:
            log.warning("skipped %s", err)
    raise CheckpointError(f"no {kind} checkpoint under {runs}: train one with `{KINDS[kind][1]}` or pass its path")


def resume_wandb_run(cfg: DictConfig, checkpoint: dict) -> None:
    """Point the W&B logger at the run a resumed checkpoint was logging to, so curves continue in one run."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or wandb_cfg.get("id"):
        return
    run_id = (checkpoint.get("mri") or {}).get("wandb_run_id")
    if run_id:
        log.info("resuming W&B run %s", run_id)
        with open_dict(cfg):
            wandb_cfg.id = run_id
            wandb_cfg.resume = "allow"


def wandb_run_id(module) -> str | None:
    """The id of the W&B run a LightningModule is logging to, to be saved in its checkpoints."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in module.loggers:
        if isinstance(logger, WandbLogger):
            return logger.version
    return None


def partial_config(value: Any) -> Any:
    """An optimiser or scheduler given as a functools.partial (the old format's) or a config -> its config as
    plain data."""
    if isinstance(value, functools.partial):
        return {"_target_": f"{value.func.__module__}.{value.func.__qualname__}", "_partial_": True,
                **to_plain(value.keywords)}
    return to_plain(value)


def upgrade(old: dict, path: Path) -> dict:
    """A checkpoint of MRI's old format (read with weights_only=False from path) -> the plain-data format of today;
    the feature store of a tag-mel model comes from its run's data.json, when the run folder has one."""
    new = dict(old)
    new["hyper_parameters"] = {k: partial_config(v) for k, v in (old.get("hyper_parameters") or {}).items()}
    new["datamodule_hyper_parameters"] = to_plain(old.get("datamodule_hyper_parameters") or {})
    saved = dict(old.get("mri") or {})
    module, net = saved.pop("module", None), new["hyper_parameters"].get("net") or {}
    if module == "captioner":
        saved["kind"] = "captioner"
        saved["datamodule"] = "mri.data.caption_datamodule.CaptionDataModule"
    elif module == "tag_mel":
        saved["kind"] = "two_tower" if str(net.get("_target_", "")).endswith("TwoTowerNet") else "early_fusion"
        saved["datamodule"] = "mri.data.tag_mel_datamodule.TagMelDataModule"
    else:
        raise CheckpointError(f"this checkpoint was not written by MRI (its 'mri' entry says {module!r})")
    new["mri"] = {**saved, "data": old_data_facts(saved, new["datamodule_hyper_parameters"]), "precision": None}
    data_json = path.resolve().parents[1] / "data.json"
    if saved["kind"] != "captioner" and data_json.is_file():
        new["mri"]["data"]["features"] = json.loads(data_json.read_text(encoding="utf-8")).get("features")
    if problems := not_plain(new):
        raise CheckpointError(f"the upgraded checkpoint still holds objects ({'; '.join(problems[:3])})")
    return new


def old_data_facts(saved: dict, data: dict) -> dict:
    """The inference facts of an old checkpoint, from its 'mri' entry and its datamodule's arguments."""
    facts = {"root": data.get("root"), "generated": data.get("generate") is not None}
    if saved["kind"] == "captioner":
        return {**facts, "vocab": saved.pop("vocab", None), "image_size": saved.pop("image_size", None)}
    return {**facts, "query_tags": saved.pop("query_tags", None), "min_tag_count": data.get("min_tag_count", 1),
            "similarity_dim": data.get("similarity_dim", 16), "features": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mri.checkpoints", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="rewrite a checkpoint of an older MRI as plain data (trusted files only)")
    up.add_argument("old", type=Path)
    up.add_argument("new", type=Path, nargs="?", help="default: OLD with .plain.ckpt (OLD is kept)")
    args = parser.parse_args(argv)
    new_path = args.new or args.old.with_suffix(".plain.ckpt")
    try:
        new = upgrade(torch.load(args.old, map_location="cpu", weights_only=False), args.old)  # the user vouches for it
    except (OSError, RuntimeError, pickle.UnpicklingError, KeyError, CheckpointError) as err:
        print(f"cannot upgrade {args.old}: {err}", file=sys.stderr)
        return 2
    write_atomically(new_path, lambda f: torch.save(new, f))
    print(f"{new_path}: {new['mri']['kind']} checkpoint in the plain-data format")
    return 0


if __name__ == "__main__":
    sys.exit(main())
