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

import torch
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, SequentialLR

from mri.checkpoints import load_module, to_plain
from mri.data.images import ImagePreprocessing, captioner_preprocessing
from mri.data.vocab import PAD_ID, Vocabulary, tokenize
from mri.metrics.captioning import CaptionMetrics
from mri.models.base_module import MRIModule
from mri.models.familiarity import Familiarity
from mri.models.self_critical import SelfCritical

log = logging.getLogger(__name__)


def batch_loss(net: nn.Module, batch) -> torch.Tensor:
    """Teacher-forced cross-entropy of a training batch (the module's loss; also timed by experiments/)."""
    images, captions, _, image_of = batch  # (B, 3, H, W), (C, L), (C,), (C,)
    logits = net(images, captions, image_of)  # (C, L-1, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), captions[:, 1:].flatten(), ignore_index=PAD_ID)


class CaptionerModule(MRIModule):
    """net: a Captioner, or its Hydra config; optimizer, scheduler: Hydra configs (see MRIModule).

    beam_size: beams of validation, test and `caption` (1: greedy); max_len: most words + EOS a
    caption gets; length_penalty: beam scores are divided by length**length_penalty;
    num_samples: images per validation with predicted and reference captions in a W&B table;
    self_critical: {start_epoch, samples, lr}: from start_epoch on, training is self-critical
    (mri.models.self_critical: samples captions drawn per image, rewarded by CIDEr-D) at the constant
    learning rate lr, the scheduler's epochs being the ones before; None: cross-entropy throughout.
    """

    monitor = "bleu4"

    def __init__(self, net: nn.Module | Mapping, optimizer, scheduler=None, beam_size: int = 3, max_len: int = 24,
                 length_penalty: float = 0.0, num_samples: int = 8, self_critical: Mapping | None = None):
        super().__init__(net, optimizer, scheduler, beam_size=beam_size, max_len=max_len,
                         length_penalty=length_penalty, num_samples=num_samples,
                         self_critical=to_plain(self_critical) if self_critical else None)
        self.critic: SelfCritical | None = None  # built from the training captions when fitting
        self.val_metrics = CaptionMetrics(tokenize)
        self.test_metrics = CaptionMetrics(tokenize)
        self.vocab: Vocabulary | None = None  # from the datamodule or a checkpoint
        self.preprocessing: ImagePreprocessing | None = None  # the datamodule's, for captioning new photos
        self.facts: dict = {}  # where the data came from: root, generated (see data_facts)
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

    loss = staticmethod(batch_loss)

    def facts_of(self, datamodule) -> dict | None:
        if getattr(datamodule, "vocab", None) is None:
            return None
        return {"vocab": datamodule.vocab.to_list(), "image_preprocessing": datamodule.preprocessing.to_dict(),
                "root": str(datamodule.root), "generated": datamodule.hparams.get("generate") is not None}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self.facts_of(datamodule):
            return
        if stage == "fit" and self.hparams.self_critical:
            self.critic = SelfCritical(datamodule.datasets["train"].captions, self.hparams.self_critical["samples"],
                                       self.hparams.max_len)
        if self.net.encoder.backbone.frozen and stage in ("fit", "validate", "test"):
            # the frozen encoder gives every image the same features in every epoch: computed once, cached
            encoder = self.net.encoder.to(self.trainer.strategy.root_device)
            folded = encoder.folded_copy(datamodule.preprocessing.example())
            store = datamodule.use_features(folded.feature_maps, encoder.cache_id())
            train, val = (store.pooled(datamodule.image_names[split]) for split in ("train", "val"))
            if len(val):  # how much a new photo looks like these (mri.models.familiarity), saved in checkpoints
                self.facts["familiarity"] = Familiarity.fit(train, val).to_dict()

    def data_facts(self) -> dict:
        """vocab (the words, in id order), image_preprocessing (ImagePreprocessing.to_dict() of the training
        images: what a new photo gets), the Flickr root and whether it was generated (a captioner that has only
        seen generated scenes is weak on real photos), and with a frozen encoder its training photos' features
        (familiarity: Familiarity.to_dict(), to tell photos like them from others)."""
        preprocessing = self.preprocessing.to_dict() if self.preprocessing else None
        return {**self.facts, "vocab": self.vocab.to_list() if self.vocab else None,
                "image_preprocessing": to_plain(preprocessing)}

    def adopt_data_facts(self, facts: dict) -> None:
        """Keep the vocabulary of the data and of a checkpoint, refusing a mismatch between the two."""
        words = facts.get("vocab")
        if words:
            if self.vocab is not None and self.vocab.to_list() != list(words):
                raise ValueError(f"the checkpoint was trained with another vocabulary than the data gives now "
                                 f"({len(self.vocab)} vs {len(words)} words): use the data config it was trained with")
            if len(words) > self.net.decoder.head.out_features:
                raise ValueError(f"the vocabulary has {len(words)} words, the network's output only "
                                 f"{self.net.decoder.head.out_features}: raise model.net.vocab_size")
            self.vocab = Vocabulary.from_list(words)
            self.net.restrict_output(len(words))
        if facts.get("image_preprocessing"):
            self.preprocessing = ImagePreprocessing.from_dict(facts["image_preprocessing"])
        elif facts.get("image_size"):  # saved before checkpoints held the preprocessing: plain_cnn's
            self.preprocessing = captioner_preprocessing(facts["image_size"])
        own = ("vocab", "image_preprocessing", "image_size")
        self.facts = {**self.facts, **{k: v for k, v in facts.items() if k not in own}}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.critic is None or self.current_epoch < self.hparams.self_critical["start_epoch"]:
            return super().training_step(batch, batch_idx)
        loss, reward = self.critic.loss(self.net, batch)
        self.log("train/reward", reward, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def on_train_epoch_start(self) -> None:
        if self.critic is not None and self.current_epoch == self.hparams.self_critical["start_epoch"]:
            # Adam's moments start afresh: with the cross-entropy's, the first self-critical epoch lowered validation
            # BLEU-4 by 0.02-0.04 in two of three runs (experiments/captioner_quality)
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()

    def configure_optimizers(self):
        """The configured optimiser and scheduler; with self_critical, the scheduler until its start_epoch, then
        its constant learning rate."""
        config = super().configure_optimizers()
        if not self.hparams.self_critical:
            return config
        optimizer, critical = config["optimizer"], self.hparams.self_critical
        before = config["lr_scheduler"]["scheduler"] if "lr_scheduler" in config else LambdaLR(optimizer, lambda _: 1.0)
        constant = LambdaLR(optimizer, [lambda _, base=group["initial_lr"]: critical["lr"] / base
                                        for group in optimizer.param_groups])
        scheduler = SequentialLR(optimizer, [before, constant], milestones=[critical["start_epoch"]])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

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
            self._samples += list(zip(images[:room].cpu(), hypotheses[:room], references[:room], strict=True))

    def test_step(self, batch, batch_idx: int) -> None:
        self._score_split(batch, self.test_metrics)

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._samples = []

    def on_validation_epoch_end(self) -> None:
        self.log_best(self._log_split("val", self.val_metrics)["bleu4"])
        self._log_samples()

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


def _picture(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, wandb):
    """A preprocessed image (3, S, S) as a W&B picture; None for cached encoder features (P, C)."""
    if image.dim() != 3 or image.shape[0] != 3:
        return None
    return wandb.Image((image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy())


def load_captioner(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> CaptionerModule:
    """A trained captioner for inference alone, in eval mode: network, vocabulary, preprocessing from the checkpoint."""
    return load_module(ckpt_path, ("captioner",), map_location)
