"""Both tag-mel fusions on every backbone: shapes, score_matrix = per-pair forward, gradients."""

import pytest
import torch

from mri.models.backbones import list_backbones
from mri.models.tag_mel import EarlyFusionNet, TwoTowerNet

NUM_TAGS = 7


def _net(fusion: str, backbone: str, **kwargs):
    if fusion == "early":
        return EarlyFusionNet(NUM_TAGS, backbone=backbone, chunk_size=5, **kwargs)
    return TwoTowerNet(NUM_TAGS, backbone=backbone, **kwargs)


@pytest.mark.parametrize("fusion", ["early", "late"])
@pytest.mark.parametrize("backbone", list_backbones())
def test_tag_mel_net(fusion, backbone):
    torch.manual_seed(0)
    net = _net(fusion, backbone)
    tags, mels = torch.tensor([0, 3, 6]), torch.randn(4, 1, 48, 20)  # T=3, N=4

    net.train()
    scores = net(tags.repeat(2)[:4], mels)
    assert scores.shape == (4,)
    ((scores - torch.rand(4)) ** 2).mean().backward()
    assert net.tag_embedding.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())

    net.eval()
    with torch.no_grad():
        matrix = net.score_matrix(tags, mels)
        pairs = net(tags.repeat_interleave(4), mels.repeat(3, 1, 1, 1)).view(3, 4)
        single = net(tags[1:2], mels[2:3])
    assert matrix.shape == (3, 4)
    assert torch.isfinite(matrix).all()
    assert torch.allclose(matrix, pairs, atol=1e-5)
    assert torch.allclose(matrix[1, 2], single[0], atol=1e-5)


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_input_size_upsamples(fusion):
    net = _net(fusion, "plain_cnn", input_size=(96, 40)).eval()
    with torch.no_grad():
        assert net.score_matrix(torch.arange(2), torch.randn(3, 1, 48, 20)).shape == (2, 3)


def test_two_tower_encoders_are_unit_vectors():
    net = TwoTowerNet(NUM_TAGS, backbone="plain_cnn", dim=16).eval()
    with torch.no_grad():
        songs, tags = net.encode_songs(torch.randn(5, 1, 48, 20)), net.encode_tags(torch.arange(3))
    assert songs.shape == (5, 16) and tags.shape == (3, 16)
    assert torch.allclose(songs.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(tags.norm(dim=1), torch.ones(3), atol=1e-5)


def test_frozen_backbone_still_trains_head_and_embedding():
    net = EarlyFusionNet(NUM_TAGS, backbone="plain_cnn", trainable_backbone=False)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("backbone.") for n in trainable)
    assert "tag_embedding.weight" in trainable
