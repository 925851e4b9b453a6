"""train(cfg): instantiate data, model, loggers and trainer from the Hydra config, fit, test."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from mri.checkpoints import expect_kind, read_checkpoint, resume_wandb_run
from mri.utils.loggers import instantiate_group
from mri.utils.run import apply_extras, task_wrapper, write_metrics

log = logging.getLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Fit (optionally resuming from cfg.ckpt_path) and test with the best checkpoint.

    Returns the final metrics and the objects made; writes metrics.json into the run folder.
    """
    apply_extras(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    if cfg.get("ckpt_path"):  # refused here, unread, when it holds anything but plain data
        resume = read_checkpoint(cfg.ckpt_path)
        expect_kind(resume, cfg.ckpt_path, [model.kind])
        resume_wandb_run(cfg, resume)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict = {}
    if cfg.get("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        metrics.update(trainer.callback_metrics)
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint (checkpointing off or no validation): testing the current weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(trainer.callback_metrics)
    metrics = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
    if trainer.is_global_zero:
        write_metrics(metrics, Path(cfg.paths.output_dir) / "metrics.json")
        log.info("metrics and checkpoints in %s", cfg.paths.output_dir)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
