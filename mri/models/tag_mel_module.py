"""TagMelModule: regress the similarity of a query tag to a song from the song's mel features (MRI slides).

The network is injected (EarlyFusionNet: the slides' SqueezeNet with tag planes; TwoTowerNet: late
fusion) and knows nothing of Lightning; this module owns the loss (MSE on pairs), the ranking metrics
of every split and the optimiser. Validation and test score every query tag for every song of the
split, and print beside the model what a random and a popularity ranking score on the same songs.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Callable

import hydra
import torch
from lightning import LightningModule
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from mri.checkpoints import wandb_run_id
from mri.metrics.ranking import TagRankingMetrics, popularity_ranking, random_ranking

log = logging.getLogger(__name__)


def batch_loss(net: nn.Module, batch) -> torch.Tensor:
    """MSE of a training batch: pairs (tags, mels, targets) or songs (mels, targets of every query tag, positions)."""
    if batch[0].dim() == 1:  # pairs: (B,) tags, (B, 1, 48, k) mels, (B,) targets
        tags, mels, target = batch
        return nn.functional.mse_loss(net(tags, mels), target)
    mels, target, _ = batch  # songs: (B, 1, 48, k), (B, T), (B,)
    tags = torch.arange(target.shape[1], device=mels.device)
    return nn.functional.mse_loss(net.score_matrix(tags, mels), target.T)  # (T, B)


class TagMelModule(LightningModule):
    """net: an nn.Module with forward(tags, mels) -> (B,) and score_matrix(tags, mels) -> (T, N),
    or its Hydra config (how `load_from_checkpoint` rebuilds it: the config is saved as hparams.net)."""

    def __init__(self, net: nn.Module | Mapping, optimizer: Callable, scheduler: Callable | None = None, k: int = 10):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = hydra.utils.instantiate(net) if isinstance(net, Mapping) else net
        self.train_loss = MeanMetric()
        self.val_metrics = TagRankingMetrics(k)
        self.test_metrics = TagRankingMetrics(k)
        self.val_best = MaxMetric()  # best-so-far val/ndcg@k: what checkpoints and sweeps optimise
        self.query_tags: list[str] | None = None  # filled from the datamodule, saved in checkpoints

    def forward(self, tags: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        return self.net(tags, mels)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self._adopt_query_tags(getattr(datamodule, "query_tags", None))

    def _adopt_query_tags(self, tags) -> None:
        """Keep the query tags of the data and of a checkpoint, refusing a mismatch between the two."""
        if tags is None:
            return
        if self.query_tags is not None and list(self.query_tags) != list(tags):
            raise ValueError(f"the checkpoint was trained on other query tags than the data gives now "
                             f"({len(self.query_tags)} vs {len(tags)} tags, first {self.query_tags[:3]} vs "
                             f"{list(tags)[:3]}): use the data.root and data.num_tags it was trained with")
        self.query_tags = list(tags)

    def on_train_start(self) -> None:
        self.val_best.reset()  # forget the sanity check's value

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = batch_loss(self.net, batch)
        self.train_loss(loss)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _score_split(self, batch, metrics: TagRankingMetrics) -> None:
        mels, target, index = batch  # (B, 1, 48, k), (B, T), (B,)
        tags = torch.arange(target.shape[1], device=self.device)
        metrics.update(self.net.score_matrix(tags, mels), target.T, index)  # (T, B)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.test_metrics)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        values = self._log_split("val", self.val_metrics)
        self.val_best(values[f"ndcg@{self.hparams.k}"])
        self.log(f"val/ndcg@{self.hparams.k}_best", self.val_best.compute(), sync_dist=True, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_split("test", self.test_metrics)

    def _log_split(self, stage: str, metrics: TagRankingMetrics) -> dict[str, torch.Tensor]:
        """Log the model's metrics and, beside them, random and popularity rankings of the same songs."""
        values = metrics.compute()
        preds, target, index = metrics.assembled()
        rows = {"model": {k: float(v) for k, v in values.items()}, "random": random_ranking(target, k=self.hparams.k)}
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "popularity"):
            popularity = torch.as_tensor(datamodule.popularity(stage)).to(index.device)[index]
            rows["popularity"] = popularity_ranking(target, popularity, k=self.hparams.k)
        for name, row in rows.items():
            prefix = f"{stage}/" if name == "model" else f"{stage}/{name}/"
            self.log_dict({prefix + k: float(v) for k, v in row.items()}, sync_dist=True,
                          prog_bar=name == "model" and stage == "val")
        if not self.trainer.sanity_checking:
            log.info("%s over %d songs x %d tags\n%s", stage, target.shape[1], target.shape[0], format_table(rows))
        return values

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=self.trainer.model.parameters())
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.hparams.scheduler(optimizer=optimizer),
                                                         "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mri"] = {"module": "tag_mel", "query_tags": self.query_tags, "wandb_run_id": wandb_run_id(self)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("mri", {})
        if saved.get("module") != "tag_mel":
            raise ValueError(f"this checkpoint holds a {saved.get('module', 'non-MRI')!r} model, not a tag-mel "
                             "model: pass a checkpoint written by `python train.py model=squeezenet` (or another "
                             "tag-mel model config)")
        self._adopt_query_tags(saved.get("query_tags"))


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Rows of metrics as an aligned text table (one row per ranking)."""
    names = list(next(iter(rows.values())))
    lines = [f"{'':12}" + "".join(f"{n:>14}" for n in names)]
    lines += [f"{r:12}" + "".join(f"{v.get(n, float('nan')):14.4f}" for n in names) for r, v in rows.items()]
    return "\n".join(lines)
