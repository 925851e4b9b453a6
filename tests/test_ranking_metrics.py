import math

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from sklearn.metrics import ndcg_score

from mri.metrics.ranking import (
    TagRankingMetrics,
    kendall_tau_b,
    mse,
    ndcg,
    popularity_ranking,
    random_ranking,
    rank_metrics,
)


def graded(gen: torch.Generator, t: int, n: int, levels: int = 4, zeros: float = 0.6):
    """(T, N) relevance on a few levels in [0, 1], mostly zero: many ties, like tag similarity."""
    rel = torch.randint(1, levels + 1, (t, n), generator=gen).double() / levels
    return torch.where(torch.rand(t, n, generator=gen, dtype=torch.double) < zeros, 0.0, rel)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [None, 1, 5, 10])
@pytest.mark.parametrize("tied_preds", [False, True])
def test_ndcg_matches_sklearn(seed, k, tied_preds):
    gen = torch.Generator().manual_seed(seed)
    target = graded(gen, 12, 40)
    preds = torch.rand(12, 40, generator=gen)
    if tied_preds:
        preds = (preds * 3).floor()  # 3 distinct scores: large tie groups straddling k
    target[0] = 0.0  # an all-zero query
    ours = ndcg(preds, target, k)
    assert math.isnan(ours[0])
    for i in range(1, 12):
        ref = ndcg_score(target[i : i + 1].numpy(), preds[i : i + 1].numpy(), k=k)
        assert ours[i].item() == pytest.approx(ref, abs=1e-12)


def test_ndcg_constant_prediction_is_the_expected_value():
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    discount = 1 / np.log2(np.arange(4) + 2)
    assert ndcg(torch.zeros(1, 4), target).item() == pytest.approx(discount.mean())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [2, 3, 17, 300])
def test_kendall_tau_b_matches_scipy(seed, n):
    gen = torch.Generator().manual_seed(seed)
    preds = torch.randint(0, 4, (10, n), generator=gen).float()  # heavy ties in both
    target = graded(gen, 10, n)
    ours = kendall_tau_b(preds, target)
    for i in range(10):
        x, y = preds[i].numpy(), target[i].numpy()
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(ours[i])
        else:
            assert ours[i].item() == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_kendall_tau_b_continuous_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    preds, target = torch.rand(5, 1000, generator=gen), graded(gen, 5, 1000)
    ref = [kendalltau(p.numpy(), t.numpy()).statistic for p, t in zip(preds, target, strict=True)]
    np.testing.assert_allclose(kendall_tau_b(preds, target).numpy(), ref, atol=1e-12)


def test_perfect_reversed_and_degenerate_queries():
    gen = torch.Generator().manual_seed(0)
    target = graded(gen, 4, 50)
    target[2] = 0.0  # all-zero relevance: NaN for ndcg and tau
    preds = target.clone()
    preds[3] = 0.5  # constant prediction: NaN for tau only
    expected = torch.tensor([1.0, 1.0, torch.nan, 1.0], dtype=torch.double)
    assert torch.allclose(ndcg(target, target), expected, equal_nan=True)
    tau = kendall_tau_b(preds, target)
    assert tau[:2].tolist() == pytest.approx([1.0, 1.0]) and tau[2:].isnan().all()
    assert kendall_tau_b(-target[:2], target[:2]).tolist() == pytest.approx([-1.0, -1.0])

    out = rank_metrics(preds, target)  # NaN queries are skipped, not averaged in
    assert out["kendall_tau"] == pytest.approx(1.0)
    assert out["ndcg"] == pytest.approx(ndcg(preds, target)[[0, 1, 3]].mean().item())
    assert set(out) == {"mse", "ndcg@10", "ndcg", "kendall_tau"}
    assert out["mse"] == pytest.approx(mse(preds, target).item())


def test_metric_matches_rank_metrics_with_shuffled_duplicated_batches():
    gen = torch.Generator().manual_seed(0)
    t, n = 6, 53
    preds, target = torch.rand(t, n, generator=gen), graded(gen, t, n)
    repeats = torch.tensor([3, 17, 3])  # as a DistributedSampler pads
    index = torch.cat([torch.randperm(n, generator=gen), repeats])
    metric = TagRankingMetrics(k=5)
    for batch in index.split(8):
        metric.update(preds[:, batch], target[:, batch], batch)

    got_preds, got_target, got_index = metric.assembled()
    assert torch.equal(got_index, torch.arange(n))
    assert torch.equal(got_preds, preds) and torch.equal(got_target, target)
    expected = rank_metrics(preds, target, k=5)
    got = metric.compute()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].item() == pytest.approx(value)

    metric.reset()
    metric.update(preds[:, :10], target[:, :10], torch.arange(10))
    assert metric.assembled()[0].shape == (t, 10)
    expected = rank_metrics(preds[:, :10], target[:, :10])["ndcg"]
    assert metric.compute()["ndcg"].item() == pytest.approx(expected)


def test_baselines():
    gen = torch.Generator().manual_seed(0)
    target = graded(gen, 30, 400, zeros=0.2)  # dense graded relevance
    rand = random_ranking(target)
    perfect = rank_metrics(target, target)
    # With dense graded relevance a random order already gets a high full-list nDCG: the reason
    # baselines are always printed beside a model's numbers.
    assert rand["ndcg"] > 0.8
    assert rand["ndcg@10"] < perfect["ndcg@10"] - 0.2
    assert rand["kendall_tau"] == 0 < perfect["kendall_tau"]
    assert rand["mse"] == pytest.approx(target.var(unbiased=False).item())  # mean as prediction
    # the expectation, exactly: the mean over many random orders comes to it
    draws = [rank_metrics(torch.rand(target.shape, generator=gen), target) for _ in range(300)]
    for name in ("ndcg@10", "ndcg", "kendall_tau"):
        assert np.mean([d[name] for d in draws]) == pytest.approx(rand[name], abs=0.003), name
    with_constant = target.clone()
    with_constant[3] = 0.5  # a constant row: tau undefined there and skipped, nDCG defined
    assert random_ranking(with_constant)["kendall_tau"] == 0

    # songs relevant to many queries are the "popular" ones: popularity beats random
    popularity = (target > 0).sum(0).double()  # (N,)
    pop = popularity_ranking(target, popularity)
    assert pop["ndcg@10"] > rand["ndcg@10"] and pop["kendall_tau"] > rand["kendall_tau"]
    scaled = (popularity - popularity.min()) / (popularity.max() - popularity.min())
    assert pop["mse"] == pytest.approx(mse(scaled.expand_as(target), target).item())
