"""CaptionerModule: train a CNN-LSTM captioner (Show and Tell; Show, Attend and Tell) and score its captions.

The network (`mri.models.captioner.Captioner`) is injected and knows nothing of Lightning; this module
owns the loss (cross-entropy of the next word, PAD ignored), the decoding used for validation and
test (beam search), the caption metrics (BLEU-1..4, CIDEr-D) and the optimiser. The vocabulary comes
from the datamodule and is saved in every checkpoint, so `load_captioner(path)` captions photos with
nothing but the checkpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import hydra
import torch
from lightning import LightningModule
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from mri.data.caption_datamodule import image_preprocessing
from mri.data.images import ImagePreprocessing
from mri.data.vocab import PAD_ID, Vocabulary, tokenize
from mri.metrics.captioning import CaptionMetrics
from mri.checkpoints import read_checkpoint, wandb_run_id

log = logging.getLogger(__name__)

KIND = "captioner"
LEGACY_MEAN, LEGACY_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, of checkpoints before


def batch_loss(net: nn.Module, batch) -> torch.Tensor:
    """Teacher-forced cross-entropy of a training batch (the module's loss; also timed by experiments/)."""
    images, captions, _, image_of = batch  # (B, 3, H, W), (C, L), (C,), (C,)
    logits = net(images, captions, image_of)  # (C, L-1, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), captions[:, 1:].flatten(), ignore_index=PAD_ID)


class CaptionerModule(LightningModule):
    """net: a Captioner, or its Hydra config (how `load_from_checkpoint` rebuilds it from hparams.net).

    beam_size: beams of validation, test and `caption` (1: greedy); max_len: most words + EOS a
    caption gets; length_penalty: beam scores are divided by length**length_penalty;
    num_samples: images per validation with predicted and reference captions in a W&B table.
    """

    def __init__(self, net: nn.Module | Mapping, optimizer: Callable, scheduler: Callable | None = None,
                 beam_size: int = 3, max_len: int = 24, length_penalty: float = 0.0, num_samples: int = 8):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = hydra.utils.instantiate(net) if isinstance(net, Mapping) else net
        self.train_loss = MeanMetric()
        self.val_metrics = CaptionMetrics(tokenize)
        self.test_metrics = CaptionMetrics(tokenize)
        self.val_best = MaxMetric()  # best-so-far val/bleu4: what checkpoints and sweeps optimise
        self.vocab: Vocabulary | None = None  # from the datamodule or a checkpoint
        self.preprocessing: ImagePreprocessing | None = None  # the datamodule's, for captioning new photos
        self._samples: list[tuple[torch.Tensor, str, list[str]]] = []  # this validation's W&B table rows

    def forward(self, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        return self.net(images, captions)  # (B, L-1, V)

    @torch.no_grad()
    def caption(self, images: torch.Tensor, beam_size: int | None = None) -> list[str]:
        """One caption per image of (B, 3, H, W) normalised like the training data (call .eval() first)."""
        beam_size = beam_size or self.hparams.beam_size
        if beam_size == 1:
            ids = self.net.greedy(images, self.hparams.max_len)
        else:
            ids = self.net.beam_search(images, beam_size, self.hparams.max_len, self.hparams.length_penalty)
        return [self.vocab.decode(row) for row in ids.tolist()]

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(datamodule, "vocab", None) is not None:
            self._adopt_vocab(datamodule.vocab.to_list())
            self.preprocessing = datamodule.preprocessing
            if self.net.encoder.backbone.frozen and stage in ("fit", "validate", "test"):
                # the frozen encoder gives every image the same features in every epoch: computed once, cached
                self.net.encoder.to(self.trainer.strategy.root_device)
                datamodule.use_features(self.net.encoder.feature_maps, self.net.encoder.cache_id())

    def _adopt_vocab(self, words: list[str]) -> None:
        """Keep the vocabulary of the data and of a checkpoint, refusing a mismatch between the two."""
        if self.vocab is not None and self.vocab.to_list() != list(words):
            raise ValueError(f"the checkpoint was trained with another vocabulary than the data gives now "
                             f"({len(self.vocab)} vs {len(words)} words): use the data config it was trained with")
        if len(words) > self.net.decoder.head.out_features:
            raise ValueError(f"the vocabulary has {len(words)} words, the network's output only "
                             f"{self.net.decoder.head.out_features}: raise model.net.vocab_size")
        self.vocab = Vocabulary.from_list(words)
        self.net.restrict_output(len(words))

    def on_train_start(self) -> None:
        self.val_best.reset()  # forget the sanity check's value

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = batch_loss(self.net, batch)
        self.train_loss(loss)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _score_split(self, batch, metrics: CaptionMetrics) -> list[str]:
        images, references, index = batch  # (B, 3, H, W), B lists of raw captions, (B,)
        hypotheses = self.caption(images)
        metrics.update(hypotheses, references, index)
        return hypotheses

    def validation_step(self, batch, batch_idx: int) -> None:
        hypotheses = self._score_split(batch, self.val_metrics)
        if self._wandb() is not None and len(self._samples) < self.hparams.num_samples:
            images, references, _ = batch
            room = self.hparams.num_samples - len(self._samples)
            self._samples += list(zip(images[:room].cpu(), hypotheses, references))

    def test_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.test_metrics)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()
        self._samples = []

    def on_validation_epoch_end(self) -> None:
        values = self._log_split("val", self.val_metrics)
        self.val_best(values["bleu4"])
        self.log("val/bleu4_best", self.val_best.compute(), sync_dist=True, prog_bar=True)
        self._log_samples()

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self._log_split("test", self.test_metrics)

    def _log_split(self, stage: str, metrics: CaptionMetrics) -> dict[str, torch.Tensor]:
        values = metrics.compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")
        if not self.trainer.sanity_checking:
            log.info("%s captions: %s", stage, ", ".join(f"{k} {float(v):.4f}" for k, v in values.items()))
        return values

    def _wandb(self) -> WandbLogger | None:
        return next((lg for lg in self.loggers if isinstance(lg, WandbLogger)), None)

    def _log_samples(self) -> None:
        """A W&B table of a few validation images with their predicted and reference captions."""
        logger = self._wandb()
        if logger is None or not self._samples or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        import wandb

        mean = torch.tensor(self.preprocessing.mean)[:, None, None]  # (3, 1, 1)
        std = torch.tensor(self.preprocessing.std)[:, None, None]
        rows = [[_picture(image, mean, std, wandb), hyp, "\n".join(refs)] for image, hyp, refs in self._samples]
        logger.log_table("val/samples", columns=["image", "prediction", "references"], data=rows, step=self.global_step)

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=[p for p in self.trainer.model.parameters() if p.requires_grad])
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.hparams.scheduler(optimizer=optimizer),
                                                         "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mri"] = {"module": KIND, "vocab": self.vocab.to_list() if self.vocab else None,
                             "image_preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
                             "wandb_run_id": wandb_run_id(self)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = check_kind(checkpoint)
        if saved.get("vocab"):
            self._adopt_vocab(saved["vocab"])
        if saved.get("image_preprocessing"):
            self.preprocessing = image_preprocessing(saved["image_preprocessing"])
        elif saved.get("image_size"):  # written before checkpoints held the preprocessing: ImageNet-normalised
            size = saved["image_size"]
            self.preprocessing = ImagePreprocessing(size, size, LEGACY_MEAN, LEGACY_STD, "bilinear")


def _picture(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, wandb):
    """A preprocessed image (3, S, S) as a W&B picture; None for cached encoder features (P, C)."""
    if image.dim() != 3 or image.shape[0] != 3:
        return None
    return wandb.Image((image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy())


def check_kind(checkpoint: dict) -> dict:
    """The checkpoint's "mri" entry; an error saying what to pass when it is not a captioner's."""
    saved = checkpoint.get("mri", {})
    if saved.get("module") != KIND:
        raise ValueError(f"this checkpoint holds a {saved.get('module', 'non-MRI')!r} model, not a captioner: "
                         "pass a checkpoint written by `python train.py model=captioner`")
    return saved


def load_captioner(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> CaptionerModule:
    """A trained captioner for inference alone, in eval mode: network, vocabulary, preprocessing from the checkpoint."""
    check_kind(read_checkpoint(ckpt_path))
    module = CaptionerModule.load_from_checkpoint(ckpt_path, map_location=map_location, weights_only=False)
    return module.eval()
