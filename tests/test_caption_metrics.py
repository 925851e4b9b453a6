"""BLEU equals nltk's corpus_bleu; CIDEr-D on a hand-checked case; the Metric's collection, in 1 and 2 processes."""

import json
import math
import random
import warnings
from pathlib import Path

import pytest
import torch
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from mri.metrics.captioning import CaptionMetrics, caption_scores, cider_d, corpus_bleu

WORDS = ["a", "dog", "cat", "runs", "on", "the", "beach", "in", "snow", "man", "woman", "red", "blue"]


@pytest.mark.parametrize("seed", range(20))
def test_bleu_equals_nltk_corpus_bleu(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 8)
    # nltk counts at least one n-gram for a hypothesis shorter than n; BLEU does not: keep them >= 4 words
    hyps = [[rng.choice(WORDS) for _ in range(rng.randint(4, 10))] for _ in range(n)]
    refs = [[[rng.choice(WORDS) for _ in range(rng.randint(2, 10))] for _ in range(rng.randint(1, 5))]
            for _ in range(n)]
    ours = corpus_bleu(hyps, refs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns when a precision is 0
        for k in range(1, 5):
            assert ours[f"bleu{k}"] == pytest.approx(nltk_corpus_bleu(refs, hyps, weights=(1 / k,) * k), abs=1e-6)


def test_bleu_identical_is_one():
    refs = [[["a", "dog", "runs", "on", "the", "beach"]], [["snow", "on", "a", "red", "car"]]]
    scores = corpus_bleu([r[0] for r in refs], refs)
    assert all(v == pytest.approx(1.0) for v in scores.values())


def test_cider_d_hand_checked():
    # two images, so idf = log 2 for every n-gram but "a" (in both images' references: idf 0)
    hyps = [["a", "dog", "runs"], ["a", "cat"]]
    refs = [[["a", "dog", "runs"]], [["a", "cat", "sits"]]]
    corpus, per_image = cider_d(hyps, refs)
    # image 1 equals its reference: cosine 1 for n = 1, 2, 3, no 4-gram: 10 * 3/4
    assert per_image[0] == pytest.approx(7.5)
    # image 2: cosine 1/sqrt(2) for n = 1, 2, none for 3, 4; one bigram against two: penalty e^(-1/72)
    assert per_image[1] == pytest.approx(10 * 2 / math.sqrt(2) / 4 * math.exp(-1 / 72))
    assert corpus == pytest.approx((per_image[0] + per_image[1]) / 2)


def test_cider_d_identical_high_unrelated_zero():
    refs = [[["a", "dog", "runs", "on", "the", "beach"], ["a", "dog", "on", "the", "sand"]],
            [["snow", "covers", "a", "red", "car"], ["a", "red", "car", "in", "snow"]],
            [["people", "dance", "at", "a", "party"], ["a", "crowd", "at", "a", "concert"]]]
    same, _ = cider_d([r[0] for r in refs], refs)
    unrelated, _ = cider_d([["purple", "giraffe", "sings", "loudly"]] * 3, refs)
    assert same > 3.0
    assert unrelated == 0.0


def test_caption_metrics_collects_across_batches_and_dedups_by_index():
    hyps = ["a dog runs on the beach", "a red car in snow", "people dance at a party"]
    refs = [["A dog runs on the beach.", "A dog on the sand."], ["Snow covers a red car."],
            ["People dance at a party!", "A crowd at a concert."]]
    tokenize = lambda s: s.lower().replace(".", "").replace("!", "").split()  # noqa: E731
    metric = CaptionMetrics(tokenize=tokenize)
    metric.update(hyps[2:], refs[2:], torch.tensor([2]))  # out of order
    metric.update(hyps[:2], refs[:2], torch.tensor([0, 1]))
    metric.update(hyps[:1], refs[:1], torch.tensor([0]))  # repeated by a DistributedSampler's padding
    values = metric.compute()
    expected = caption_scores([tokenize(h) for h in hyps], [[tokenize(r) for r in rs] for rs in refs])
    assert set(values) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    for key, value in expected.items():
        assert float(values[key]) == pytest.approx(value, abs=1e-6)
    metric.reset()
    assert metric.pairs == {}


HYPS = ["a dog runs on the beach", "a red car in snow", "people dance at a party", "a man in the snow",
        "a cat on a red car"]
REFS = [["a dog runs on the beach", "a dog on the sand"], ["snow covers a red car"],
        ["people dance at a party", "a crowd at a concert"], ["a man walks in the snow"], ["a cat sits on a car"]]


def _score_in_process(rank: int, folder: str) -> None:
    """One of two DDP processes: a DistributedSampler's share of images 0..4, padded by repeating image 0."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        metric = CaptionMetrics()
        shard = [0, 2, 4] if rank == 0 else [1, 3, 0]
        metric.update([HYPS[i] for i in shard], [REFS[i] for i in shard], torch.tensor(shard))
        Path(folder, f"rank{rank}.json").write_text(json.dumps({k: float(v) for k, v in metric.compute().items()}))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_caption_metrics_gather_every_process_and_count_padding_once(tmp_path):
    torch.multiprocessing.spawn(_score_in_process, args=(str(tmp_path),), nprocs=2)
    expected = caption_scores([h.split() for h in HYPS], [[r.split() for r in rs] for rs in REFS])
    one_shard = caption_scores([HYPS[i].split() for i in (0, 2, 4)], [[r.split() for r in REFS[i]] for i in (0, 2, 4)])
    assert one_shard["bleu2"] != pytest.approx(expected["bleu2"])  # a process alone would score differently
    for rank in (0, 1):
        scores = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for key, value in expected.items():
            assert scores[key] == pytest.approx(value, abs=1e-6), (rank, key)
