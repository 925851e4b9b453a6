"""train(cfg): instantiate data, model, loggers and trainer from the Hydra config, fit, test."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from mri.checkpoints import resume_wandb_run
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
    if "net" in cfg.model:  # saved with the checkpoint so load_from_checkpoint can rebuild the network
        model.hparams["net"] = OmegaConf.to_container(cfg.model.net, resolve=True)
    if cfg.get("ckpt_path"):
        resume_wandb_run(cfg)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict = {}
    if cfg.get("train"):
        # our own checkpoints hold the optimiser partials of the config: not weights-only
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=False)
        metrics.update(trainer.callback_metrics)
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint (checkpointing off or no validation): testing the current weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update(trainer.callback_metrics)
    metrics = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
    if trainer.is_global_zero:
        write_metrics(metrics, Path(cfg.paths.output_dir) / "metrics.json")
        log.info("metrics and checkpoints in %s", cfg.paths.output_dir)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
