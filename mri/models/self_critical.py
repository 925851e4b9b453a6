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

from mri.data.vocab import word_ids
from mri.metrics.captioning import CiderD

__all__ = ["SelfCritical"]


class SelfCritical:
    """corpus: the training images' caption ids (a list of (L,) tensors per image)."""

    def __init__(self, corpus: Sequence[Sequence[torch.Tensor]], samples: int = 5, max_len: int = 24):
        if samples < 2:
            raise ValueError(f"self-critical training needs at least 2 captions drawn per image (got {samples}): "
                             "each one's baseline is the others' mean reward")
        self.reward = CiderD([[word_ids(c.tolist()) for c in caps] for caps in corpus])
        self.samples, self.max_len = samples, max_len

    def loss(self, net: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """-> the policy-gradient loss of a training batch and the drawn captions' mean reward."""
        images, captions, _, image_of = batch  # (B, ...), (C, L), (C,), (C,)
        references = [[] for _ in range(len(images))]
        for ids, row in zip(captions.tolist(), image_of.tolist(), strict=True):
            references[row].append(word_ids(ids))
        drawn, log_prob = net.sample(images, self.samples, self.max_len)  # (B*n, T), (B*n,)
        ids, n = drawn.tolist(), self.samples
        reward = torch.tensor([self.reward.scores([word_ids(r) for r in ids[i * n:(i + 1) * n]], refs)
                               for i, refs in enumerate(references)], device=log_prob.device)  # (B, n)
        baseline = (reward.sum(1, keepdim=True) - reward) / (n - 1)  # (B, n) the mean of the other captions
        return -((reward - baseline).flatten() * log_prob).mean(), reward.mean()

