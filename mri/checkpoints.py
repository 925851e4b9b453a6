"""Checkpoints: reading them, what they hold, and the W&B run they belong to."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message is one sentence naming the path and what to do."""


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, or an error that names the path and says what to pass."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass ckpt_path=<run folder>/checkpoints/"
                              "best.ckpt (or last.ckpt) of a run made by `python train.py`")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({err})") from err


def resume_wandb_run(cfg: DictConfig) -> None:
    """Point the W&B logger at the run a resumed checkpoint was logging to, so curves continue in one run."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or wandb_cfg.get("id"):
        return
    run_id = read_checkpoint(cfg.ckpt_path).get("mri", {}).get("wandb_run_id")
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
