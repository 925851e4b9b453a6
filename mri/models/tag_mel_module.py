"""TagMelModule: regress the similarity of a query tag to a song from the song's mel features (MRI slides).

The network is injected (EarlyFusionNet: the slides' SqueezeNet with tag planes; TwoTowerNet: late
fusion) and knows nothing of Lightning; this module owns the loss (MSE on pairs), the ranking metrics
of every split and the optimiser. Validation and test score every query tag for every song of the
split, and print beside the model what a random and a popularity ranking score on the same songs (scored
once per split: the songs and their targets do not change from epoch to epoch).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import torch
from torch import nn

from mri.metrics.ranking import TagRankingMetrics, popularity_ranking, random_ranking
from mri.models.base_module import MRIModule

log = logging.getLogger(__name__)


def batch_loss(net: nn.Module, batch) -> torch.Tensor:
    """MSE of a training batch: pairs (tags, mels, targets) or songs (mels, targets of every query tag, positions)."""
    if batch[0].dim() == 1:  # pairs: (B,) tags, (B, 1, 48, k) mels, (B,) targets
        tags, mels, target = batch
        return nn.functional.mse_loss(net(tags, mels), target)
    mels, target, _ = batch  # songs: (B, 1, 48, k), (B, T), (B,)
    tags = torch.arange(target.shape[1], device=mels.device)
    return nn.functional.mse_loss(net.score_matrix(tags, mels), target.T)  # (T, B)


class TagMelModule(MRIModule):
    """net: an nn.Module with forward(tags, mels) -> (B,) and score_matrix(tags, mels) -> (T, N) (TwoTowerNet,
    EarlyFusionNet), or its Hydra config; optimizer, scheduler: Hydra configs (see MRIModule)."""

    def __init__(self, net: nn.Module | Mapping, optimizer, scheduler=None, k: int = 10):
        super().__init__(net, optimizer, scheduler, k=k)
        self.monitor = f"ndcg@{k}"
        self.val_metrics = TagRankingMetrics(k)
        self.test_metrics = TagRankingMetrics(k)
        self.facts: dict = {}  # data facts: from the datamodule, or from a checkpoint (see data_facts)
        self._baselines: dict[str, tuple[str, dict]] = {}  # stage -> (fingerprint of its songs and targets, rows)

    @property
    def query_tags(self) -> list[str] | None:
        return self.facts.get("query_tags")

    def forward(self, tags: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        return self.net(tags, mels)

    loss = staticmethod(batch_loss)

    def facts_of(self, datamodule) -> dict | None:
        if getattr(datamodule, "query_tags", None) is None:
            return None
        hp = datamodule.hparams
        return {"query_tags": list(datamodule.query_tags), "root": str(datamodule.root),
                "generated": hp.get("generate") is not None, "min_tag_count": hp.min_tag_count,
                "similarity_dim": hp.similarity_dim, "features": str(datamodule.store.folder)}

    def data_facts(self) -> dict:
        """query_tags (the model's tag ids, in order), the Melon root and whether it was generated, the tag
        similarity settings (min_tag_count, similarity_dim) and the feature store's folder."""
        return dict(self.facts)

    def adopt_data_facts(self, facts: dict) -> None:
        """Keep the facts of the data and of a checkpoint, refusing other query tags between the two."""
        tags = facts.get("query_tags")
        if self.query_tags is not None and tags is not None and list(self.query_tags) != list(tags):
            raise ValueError(f"the checkpoint was trained on other query tags than the data gives now "
                             f"({len(self.query_tags)} vs {len(tags)} tags, first {self.query_tags[:3]} vs "
                             f"{list(tags)[:3]}): use the data.root and data.num_tags it was trained with")
        self.facts = {**self.facts, **facts}

    def _score_split(self, batch, metrics: TagRankingMetrics) -> None:
        mels, target, index = batch  # (B, 1, 48, k), (B, T), (B,)
        tags = torch.arange(target.shape[1], device=self.device)
        metrics.update(self.net.score_matrix(tags, mels), target.T, index)  # (T, B)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.test_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_best(self._log_split("val", self.val_metrics)[self.monitor])

    def on_test_epoch_end(self) -> None:
        self._log_split("test", self.test_metrics)

    def _log_split(self, stage: str, metrics: TagRankingMetrics) -> dict[str, torch.Tensor]:
        """Log the model's metrics and, beside them, random and popularity rankings of the same songs."""
        values = metrics.compute()
        _, target, index = metrics.assembled()
        rows = {"model": {k: float(v) for k, v in values.items()}, **self._baseline_rows(stage, target, index)}
        for name, row in rows.items():
            prefix = f"{stage}/" if name == "model" else f"{stage}/{name}/"
            self.log_dict({prefix + k: float(v) for k, v in row.items()}, sync_dist=True,
                          prog_bar=name == "model" and stage == "val")
        if not self.trainer.sanity_checking:
            log.info("%s over %d songs x %d tags\n%s", stage, target.shape[1], target.shape[0], format_table(rows))
        return values

    def _baseline_rows(self, stage: str, target: torch.Tensor, index: torch.Tensor) -> dict[str, dict[str, float]]:
        """Random and popularity rankings of these songs (T, N), scored once per split and kept: at the real
        Melon size they cost as much as the model's own metrics."""
        digest = hashlib.blake2b(index.cpu().numpy().tobytes(), digest_size=16)
        digest.update(target.cpu().numpy().tobytes())
        fingerprint = digest.hexdigest()
        if stage in self._baselines and self._baselines[stage][0] == fingerprint:
            return self._baselines[stage][1]
        rows = {"random": random_ranking(target, k=self.hparams.k)}
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "popularity"):
            popularity = torch.as_tensor(datamodule.popularity(stage)).to(index.device)[index]
            rows["popularity"] = popularity_ranking(target, popularity, k=self.hparams.k)
        self._baselines[stage] = (fingerprint, rows)
        return rows


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Rows of metrics as an aligned text table (one row per ranking)."""
    names = list(next(iter(rows.values())))
    lines = [f"{'':12}" + "".join(f"{n:>14}" for n in names)]
    lines += [f"{r:12}" + "".join(f"{v.get(n, float('nan')):14.4f}" for n in names) for r, v in rows.items()]
    return "\n".join(lines)
