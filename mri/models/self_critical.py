"""Self-critical sequence training of the captioner: the caption metric itself as the reward.

Rennie et al. 2017 ("Self-Critical Sequence Training for Image Captioning"): REINFORCE on captions drawn
from the decoder, rewarded by their CIDEr-D against the image's references. The baseline is Luo 2020's
("A Better Variant of Self-Critical Sequence Training"): each image gets `samples` captions, and each
caption's baseline is the mean reward of the image's other captions, so no greedy decoding is needed.
Document frequencies come from the training captions, as in the paper.

    critic = SelfCritical(training_captions, samples=5, max_len=24)
    loss, reward = critic.loss(net, batch)  # a training batch of CaptionDataModule
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mri.data.vocab import BOS_ID, EOS_ID, PAD_ID
from mri.metrics.captioning import CiderD

__all__ = ["SelfCritical"]

SPECIAL_IDS = frozenset({PAD_ID, BOS_ID, EOS_ID})


def words(ids: Sequence[int]) -> tuple[int, ...]:
    """A caption's word ids, without BOS, EOS and PAD."""
    return tuple(i for i in ids if i not in SPECIAL_IDS)


class SelfCritical:
    """corpus: the training images' caption ids (a list of (L,) tensors or id lists per image)."""

    def __init__(self, corpus: Sequence[Sequence[Sequence[int] | torch.Tensor]], samples: int = 5, max_len: int = 24):
        if samples < 2:
            raise ValueError(f"self-critical training needs at least 2 captions drawn per image (got {samples}): "
                             "each one's baseline is the others' mean reward")
        self.reward = CiderD([[words(_ids(c)) for c in caps] for caps in corpus])
        self.samples, self.max_len = samples, max_len

    def loss(self, net: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """-> the policy-gradient loss of a training batch and the drawn captions' mean reward."""
        images, captions, _, image_of = batch  # (B, ...), (C, L), (C,), (C,)
        references = [[] for _ in range(len(images))]
        for ids, row in zip(captions.tolist(), image_of.tolist(), strict=True):
            references[row].append(words(ids))
        drawn, log_prob = net.sample(images, self.samples, self.max_len)  # (B*n, T), (B*n,)
        ids = drawn.tolist()
        n = self.samples
        reward = torch.tensor([score for i, refs in enumerate(references)
                               for score in self.reward.scores([words(r) for r in ids[i * n:(i + 1) * n]], refs)],
                              device=log_prob.device).view(-1, n)  # (B, n)
        baseline = (reward.sum(1, keepdim=True) - reward) / (n - 1)  # (B, n) the mean of the other captions
        return -((reward - baseline).flatten() * log_prob).mean(), reward.mean()


def _ids(caption: Sequence[int] | torch.Tensor) -> list[int]:
    return caption.tolist() if isinstance(caption, torch.Tensor) else list(caption)
