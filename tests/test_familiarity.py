"""Familiarity: photos like a captioner's training photos are told from others by their nearest training photo."""
import pytest
import torch

from mri.models.familiarity import Familiarity, pooled


def cluster(centre: torch.Tensor, n: int, spread: float, seed: int) -> torch.Tensor:
    noise = torch.randn(n, centre.numel(), generator=torch.Generator().manual_seed(seed))
    return centre + spread * noise  # (n, C)


def test_photos_near_the_training_photos_pass_the_threshold_and_others_do_not():
    generated, real = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    familiarity = Familiarity.fit(cluster(generated, 300, 0.05, 1), cluster(generated, 100, 0.05, 2))
    like, unlike = (familiarity.similarity(cluster(c, 50, 0.05, 3)) for c in (generated, real))  # (50,) each
    assert (like >= familiarity.threshold).float().mean() > 0.9
    assert (unlike < familiarity.threshold).all()
    assert familiarity.similarity(cluster(generated, 300, 0.05, 1)[:5]) == pytest.approx(torch.ones(5), abs=1e-3)


def test_at_most_max_reference_training_photos_are_kept_and_they_survive_a_checkpoint():
    train = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
    familiarity = Familiarity.fit(train, train[:20], max_reference=100)
    saved = familiarity.to_dict()
    assert familiarity.reference.shape == (100, 32) and saved["reference"].dtype == torch.float16
    restored = Familiarity.from_dict(saved)
    assert restored.threshold == familiarity.threshold
    assert torch.equal(restored.similarity(train[:50]), familiarity.similarity(train[:50]))
    assert familiarity.threshold <= 1.0 + 1e-3


def test_feature_maps_pool_to_unit_vectors_and_empty_splits_are_refused():
    x = pooled(torch.rand(4, 16, 7, 7))  # (B, C, h, w) -> (B, C)
    assert x.shape == (4, 16) and torch.allclose(x.norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="needs training and validation photos, got 10 and 0"):
        Familiarity.fit(torch.rand(10, 8), torch.rand(0, 8))


def test_summary_names_the_range_and_how_many_pass():
    familiarity = Familiarity(torch.eye(2), threshold=0.7)
    assert familiarity.summary([0.2, 0.7, 0.9]) == ("similarity to the captioner's training photos 0.200-0.900, "
                                                    "threshold 0.700: 2 of 3 photos like them")
