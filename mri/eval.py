"""evaluate(cfg): test a checkpoint on the test split and write its metrics.json.

The checkpoint says what it is: its network, its DataModule and that DataModule's arguments, so
`python eval.py ckpt_path=...` needs nothing else. `model=...` / `experiment=...` are checked against it;
`data=...` replaces its data (e.g. the same dataset in another place).
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

import hydra
import torch
from lightning import LightningDataModule
from omegaconf import DictConfig, OmegaConf, open_dict

from mri.checkpoints import CheckpointError, build_module, read_checkpoint
from mri.utils.loggers import instantiate_group
from mri.utils.run import apply_extras, task_wrapper, write_metrics

log = logging.getLogger(__name__)

DATAMODULES = ("mri.data.tag_mel_datamodule.TagMelDataModule", "mri.data.caption_datamodule.CaptionDataModule")


def check_matches(checkpoint: dict, cfg: DictConfig, path: str) -> None:
    """Refuse, with what to pass instead, a checkpoint whose network differs from the configured one."""
    saved = (checkpoint.get("hyper_parameters") or {}).get("net") or {}
    wanted = OmegaConf.to_container(cfg.model.get("net", {}), resolve=True)
    keys = sorted((set(saved) | set(wanted)) - {"pretrained"})  # where the first weights came from is moot
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, config {wanted.get(k)!r}"
             for k in keys if saved.get(k) != wanted.get(k)]
    if diffs:
        raise ValueError(f"checkpoint {path} does not match the configured model ({'; '.join(diffs)}): "
                         "pass the model=... and model.net.* overrides it was trained with, or no model= at all")


def saved_datamodule(checkpoint: dict, cfg: DictConfig, path: str) -> LightningDataModule:
    """The checkpoint's DataModule with the arguments it was trained with; generated data is (re)made under this
    run's paths.data_dir, and the data reports go into this run's folder."""
    target = (checkpoint.get("mri") or {}).get("datamodule")
    if target not in DATAMODULES:
        raise CheckpointError(f"{path} does not name its DataModule ({target!r}): pass data=... as it was trained")
    args = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    if args.get("generate") is not None:
        args["root"] = str(Path(cfg.paths.data_dir) / Path(args["root"]).name)
    if args.get("cache_dir") is not None:  # the same cache folder (features, image_features) under this data_dir
        args["cache_dir"] = str(Path(cfg.paths.data_dir) / "cache" / Path(args["cache_dir"]).name)
    args["report_dir"] = cfg.paths.output_dir
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)(**args)


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    apply_extras(cfg)
    checkpoint = read_checkpoint(cfg.ckpt_path)
    if cfg.get("model"):
        check_matches(checkpoint, cfg, cfg.ckpt_path)
    model = build_module(checkpoint, cfg.ckpt_path)
    datamodule = hydra.utils.instantiate(cfg.data) if cfg.get("data") else saved_datamodule(checkpoint, cfg,
                                                                                             cfg.ckpt_path)
    precision = (checkpoint.get("mri") or {}).get("precision")
    if precision and not cfg.get("model"):  # the checkpoint's own run: score it as it was scored
        with open_dict(cfg):
            cfg.trainer.precision = precision
    loggers = instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False)
    trainer.test(model, datamodule=datamodule)
    metrics = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        write_metrics(metrics, Path(cfg.paths.output_dir) / "metrics.json")
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
