"""How much a photo looks like a captioner's training photos, in its frozen encoder's feature space.

A captioner trained only on generated scenes describes generated scenes well and real photographs badly, and
it cannot tell which it is looking at. Its frozen ImageNet encoder can: a photo's pooled feature map (unit
length) has a cosine similarity to the nearest training photo's of 0.71-0.93 for the generated validation and
test photos and 0.20-0.57 for real photographs (measured: experiments/real_photos/). Training keeps the training
photos' pooled features (2,048 at most, float16) and a threshold (the validation photos' 1st percentile) in the
checkpoint; inference compares each photo with them, on the feature maps the encoder computes anyway.

    familiarity = Familiarity.fit(train, val)       # pooled features (N, C) of the training and validation photos
    familiarity.similarity(pooled(fmap))            # (B,) similarity to the nearest training photo
    familiarity.similarity(x) >= familiarity.threshold   # the photo is like the training photos
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

MAX_REFERENCE = 2048  # training photos kept: 5 MB of float16 at 1,280 channels
THRESHOLD_QUANTILE = 0.01  # of the validation photos' similarities: 99 in 100 photos like them pass


def pooled(fmap: torch.Tensor) -> torch.Tensor:
    """Feature maps (B, C, h, w) -> unit-length mean features (B, C)."""
    return F.normalize(fmap.float().flatten(2).mean(2), dim=1)


@dataclass(frozen=True)
class Familiarity:
    """reference: unit-length pooled features of training photos (N, C); threshold: the similarity from which a
    photo counts as like them."""

    reference: torch.Tensor
    threshold: float

    @classmethod
    def fit(cls, train: torch.Tensor, val: torch.Tensor, max_reference: int = MAX_REFERENCE,
            quantile: float = THRESHOLD_QUANTILE, seed: int = 0) -> Familiarity:
        """From the pooled features (N, C) of the training photos (max_reference of them kept, drawn with seed)
        and of the validation photos (the threshold: their similarities' quantile)."""
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"familiarity needs training and validation photos, got {len(train)} and {len(val)}")
        if len(train) > max_reference:
            keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:max_reference]
            train = train[keep.sort().values]
        unfit = cls(F.normalize(train.float(), dim=1).half().float(), 0.0)  # as a checkpoint keeps it
        return cls(unfit.reference, float(unfit.similarity(val).quantile(quantile)))

    def similarity(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, C) -> (B,) cosine similarity to the nearest training photo."""
        features = F.normalize(features.float(), dim=1)
        return (features @ self.reference.T).amax(dim=1)

    def summary(self, similarities: Sequence[float]) -> str:
        """One line on photos' similarities (what `similarity` gave them): their range and how many pass."""
        passed = sum(s >= self.threshold for s in similarities)
        return (f"similarity to the captioner's training photos {min(similarities):.3f}-{max(similarities):.3f}, "
                f"threshold {self.threshold:.3f}: {passed} of {len(similarities)} photos like them")

    def to_dict(self) -> dict:
        return {"reference": self.reference.half(), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, saved: dict) -> Familiarity:
        return cls(saved["reference"].float(), float(saved["threshold"]))
