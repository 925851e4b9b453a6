"""Loggers: W&B that goes offline by itself when there are no credentials, and Hydra -> logger helpers."""
from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import hydra
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def wandb_credentials_present() -> bool:
    """True when W&B could authenticate without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def wandb_offline(offline: bool, save_dir: str | Path) -> bool:
    """Whether W&B must run offline (asked to, or no credentials); then it never prompts or waits on the network."""
    if not offline and os.environ.get("WANDB_MODE") != "online" and not wandb_credentials_present():
        log.warning("W&B: no credentials (WANDB_API_KEY or `wandb login`), logging offline under %s/wandb; "
                    "upload later with `wandb sync %s/wandb/offline-run-*`", save_dir, save_dir)
        offline = True
    if offline:
        os.environ["WANDB_MODE"] = "offline"  # spawned DDP workers inherit it
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return offline


def wandb_logger(offline: bool = False, **kwargs) -> WandbLogger:
    """A WandbLogger that never prompts: offline (files under save_dir, `wandb sync` later) without credentials."""
    return WandbLogger(offline=wandb_offline(offline, kwargs.get("save_dir", ".")), **kwargs)


def instantiate_group(cfg: DictConfig | None) -> list:
    """Every `_target_` entry of a config group such as `logger` or `callbacks`, instantiated."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def close_loggers() -> None:
    """Finish the W&B run, if any, so the jobs of one multirun never merge into one run.

    Only a run that imported wandb can have one, so runs without W&B never pay for importing it.
    """
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
