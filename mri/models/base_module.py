"""MRIModule: what every MRI LightningModule shares, so that the models differ only in what they compute.

- the network is injected as an nn.Module or as its Hydra config; a config is saved in hparams.net, so a
  checkpoint rebuilds the network with nothing typed again;
- optimizer and scheduler are Hydra configs (`_partial_: true`), saved as plain data and instantiated in
  `configure_optimizers` over the trainable parameters only;
- training loss logged as train/loss; best-so-far of the monitored validation metric as val/<metric>_best
  (what checkpoints and sweeps optimise); every stage starts from fresh metrics;
- `checkpoint["mri"]`: the kind, the DataModule class and the data facts inference needs (see mri.checkpoints),
  and the whole checkpoint checked to hold plain data only, so that weights_only=True reads it back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import hydra
import torch
from lightning import LightningModule
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from mri.checkpoints import KINDS, CheckpointError, not_plain, partial_config, to_plain, wandb_run_id

# what a saved config may instantiate: a checkpoint is data, and data must not name arbitrary callables
NET_TARGETS = ("mri.models.tag_mel.TwoTowerNet", "mri.models.tag_mel.EarlyFusionNet", "mri.models.captioner.Captioner")
OPTIMIZER_PREFIX, SCHEDULER_PREFIX = "torch.optim.", "torch.optim.lr_scheduler."


def checked_target(config: Mapping, allowed: tuple[str, ...] | str, what: str) -> Mapping:
    """config itself, when its _target_ (and every nested one) is among the allowed names or prefixes."""
    targets = [config.get("_target_")] + [v.get("_target_") for v in config.values() if isinstance(v, Mapping)]
    for target in filter(None, targets):
        ok = target in allowed if isinstance(allowed, tuple) else target.startswith(allowed)
        if not ok:
            raise CheckpointError(f"the {what} config names {target!r}, which MRI does not build from a config "
                                  f"(allowed: {', '.join(allowed) if isinstance(allowed, tuple) else allowed + '*'})")
    return config


class MRIModule(LightningModule):
    """Subclasses set `monitor` (the validation metric, e.g. "bleu4"), `loss` and `val_metrics` / `test_metrics`
    (reset when their stage starts), and implement `facts_of`, `data_facts` and `adopt_data_facts`."""

    monitor: str
    loss: Callable[[nn.Module, Any], torch.Tensor]  # (net, training batch) -> loss: a staticmethod of the subclass

    def __init__(self, net: nn.Module | Mapping, optimizer: Any, scheduler: Any = None, **hparams):
        super().__init__()
        net_config = to_plain(net) if isinstance(net, Mapping) else None
        self.save_hyperparameters({"net": net_config, "optimizer": partial_config(optimizer),
                                   "scheduler": partial_config(scheduler), **hparams}, logger=False)
        self.net = hydra.utils.instantiate(checked_target(net_config, NET_TARGETS, "network")) if net_config else net
        self.train_loss = MeanMetric()
        self.val_best = MaxMetric()  # best-so-far of val/<monitor>
        self.resumed_best: float | None = None  # val_best of the checkpoint training resumes from

    @property
    def kind(self) -> str:
        return self.net.kind

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        facts = self.facts_of(datamodule) if datamodule is not None else None
        if facts:
            self.adopt_data_facts(facts)

    def facts_of(self, datamodule) -> dict | None:
        """The data facts a datamodule gives (None when it is not one this model trains on)."""
        raise NotImplementedError

    def data_facts(self) -> dict:
        """What inference needs from the training data, as plain data (saved in checkpoint["mri"]["data"])."""
        raise NotImplementedError

    def adopt_data_facts(self, facts: dict) -> None:
        """Take the data facts of a checkpoint, refusing a mismatch with those of the data in use."""
        raise NotImplementedError

    def on_train_start(self) -> None:
        self.val_best.reset()  # forget the sanity check's value
        if self.resumed_best is not None:  # a resumed run's best so far includes the epochs before it
            self.val_best.update(torch.tensor(self.resumed_best, device=self.device))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.net, batch)
        self.train_loss(loss)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()  # a second trainer.test of the same module scores afresh

    def log_best(self, value: torch.Tensor) -> None:
        """Track and log the best-so-far validation value of the monitored metric."""
        self.val_best(value)
        self.log(f"val/{self.monitor}_best", self.val_best.compute(), sync_dist=True, prog_bar=True)

    def configure_optimizers(self):
        optimizer_cfg = checked_target(self.hparams.optimizer, OPTIMIZER_PREFIX, "optimizer")
        optimizer = hydra.utils.instantiate(optimizer_cfg)(
            params=[p for p in self.trainer.model.parameters() if p.requires_grad])
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = hydra.utils.instantiate(checked_target(self.hparams.scheduler, SCHEDULER_PREFIX, "scheduler"))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler(optimizer=optimizer),
                                                         "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = to_plain(dict(checkpoint[key]))
        checkpoint["mri"] = {
            "kind": self.kind,
            "datamodule": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}" if datamodule else None,
            "data": self.data_facts(),
            "precision": str(self.trainer.precision),  # eval.py scores it the same way
            "wandb_run_id": wandb_run_id(self),
            "val_best": float(self.val_best.max_value) if self.val_best.update_called else None,
        }
        if problems := not_plain(checkpoint):
            raise TypeError(f"a checkpoint must hold plain data only, to be read back with weights_only=True: "
                            f"{'; '.join(problems[:5])}")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("mri") or {}
        if saved.get("kind") != self.kind:
            found = saved.get("kind") or saved.get("module") or "no MRI model"
            raise CheckpointError(f"this checkpoint holds {found}, not a {self.kind} model: pass one written by "
                                  f"`{KINDS[self.kind][1]}`")
        self.adopt_data_facts(saved.get("data") or {})
        self.resumed_best = saved.get("val_best")
