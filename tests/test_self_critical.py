"""Self-critical training: rewards are CIDEr-D against each image's references, and the loss raises them."""
import pytest
import torch

from mri.data.vocab import BOS_ID, EOS_ID, PAD_ID, word_ids
from mri.metrics.captioning import cider_d
from mri.models.captioner import Captioner
from mri.models.self_critical import SelfCritical

REFERENCES = [[[5, 6, 7, 8], [5, 6, 7, 9], [5, 6, 8]], [[10, 11, 12], [10, 11, 13, 12], [10, 12]]]  # 2 images


def batch(images: torch.Tensor):
    """A CaptionDataModule training batch of the two images with their references (BOS ... EOS, PAD-padded)."""
    rows = [[BOS_ID, *ref, EOS_ID] for refs in REFERENCES for ref in refs]
    captions = torch.full((len(rows), max(map(len, rows))), PAD_ID)
    for i, row in enumerate(rows):
        captions[i, :len(row)] = torch.tensor(row)
    image_of = torch.tensor([i for i, refs in enumerate(REFERENCES) for _ in refs])
    return images, captions, torch.tensor(list(map(len, rows))), image_of


def test_word_ids_drop_the_special_ids():
    assert word_ids([BOS_ID, 5, 6, EOS_ID, PAD_ID]) == [5, 6]


def test_fewer_than_two_samples_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        SelfCritical(REFERENCES, samples=1)


def test_rewards_are_cider_d_and_their_mean_rises_with_training():
    torch.manual_seed(0)
    net = Captioner(16, encoder="plain_cnn", embed_dim=8, hidden_dim=16, dropout=0.0)
    net.restrict_output(14)
    critic = SelfCritical([[torch.tensor(r) for r in refs] for refs in REFERENCES], samples=4, max_len=6)
    one_doc = critic.reward.scores([(5, 6, 7, 8)], [tuple(r) for r in REFERENCES[0]])[0]
    assert one_doc == pytest.approx(cider_d([[5, 6, 7, 8], [10, 11, 12]], [[tuple(r) for r in refs]
                                                                           for refs in REFERENCES])[1][0])
    images = torch.randn(2, 3, 32, 32)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.03)
    rewards = []
    for _ in range(100):
        loss, reward = critic.loss(net, batch(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rewards.append(float(reward))
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > 2 * first  # the drawn captions come to look like the references
