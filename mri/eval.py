"""evaluate(cfg): test a checkpoint on the test split and write its metrics.json."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from mri.checkpoints import read_checkpoint
from mri.utils.loggers import instantiate_group
from mri.utils.run import apply_extras, task_wrapper, write_metrics

log = logging.getLogger(__name__)


def check_matches(checkpoint: dict, cfg: DictConfig, path: str) -> None:
    """Refuse, with what to pass instead, a checkpoint whose network differs from the configured one."""
    saved = (checkpoint.get("hyper_parameters") or {}).get("net") or {}
    wanted = OmegaConf.to_container(cfg.model.get("net", {}), resolve=True)
    keys = sorted((set(saved) | set(wanted)) - {"pretrained"})  # where the first weights came from is moot
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, config {wanted.get(k)!r}" for k in keys if saved.get(k) != wanted.get(k)]
    if diffs:
        raise ValueError(f"checkpoint {path} does not match the configured model ({'; '.join(diffs)}): "
                         "pass the model=... and model.net.* overrides it was trained with")


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    apply_extras(cfg)
    check_matches(read_checkpoint(cfg.ckpt_path), cfg, cfg.ckpt_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    loggers = instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False)
    trainer.test(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=False)
    metrics = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        write_metrics(metrics, Path(cfg.paths.output_dir) / "metrics.json")
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
