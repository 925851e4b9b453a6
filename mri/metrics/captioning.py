"""Caption metrics over a corpus: BLEU-1..4 and CIDEr-D, and a torchmetrics Metric collecting them.

- BLEU (Papineni et al. 2002, "BLEU: a method for automatic evaluation of machine translation"):
  corpus-level clipped n-gram precisions, uniform weights, brevity penalty against the closest
  reference length (ties to the shorter one), no smoothing; computed by torchmetrics' BLEU and equal
  to nltk's `corpus_bleu` on the same tokens.
- CIDEr-D (Vedantam et al. 2015, "CIDEr: Consensus-based Image Description Evaluation"), as the
  coco-caption reference computes it: tf-idf vectors of 1..4-grams with document frequencies counted
  over the images of the reference corpus, hypothesis tf-idf clipped by the reference's, a Gaussian
  penalty (sigma 6) on the length difference, the mean over n and references, times 10.

Captions are token lists here; `CaptionMetrics` takes strings and a tokenizer.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.text import bleu_score

Tokens = Sequence[str]
TfIdf = tuple[list[dict], list[float], int]  # per-n tf-idf vectors, their norms, the length CIDEr-D compares


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]],
                max_n: int = 4) -> dict[str, float]:
    """{"bleu1": ..., "bleu<max_n>": ...} of tokenised hypotheses against their references."""
    preds = [" ".join(h) for h in hypotheses]
    # torchmetrics takes the first reference of the closest length: sorted, that is the shorter one on a tie
    target = [[" ".join(r) for r in sorted(refs, key=len)] for refs in references]
    return {f"bleu{n}": float(bleu_score(preds, target, n_gram=n)) for n in range(1, max_n + 1)}


def _ngrams(tokens: Tokens, max_n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1))


class CiderD:
    """CIDEr-D scores against reference sets, idf from a corpus of reference sets (one document per image).

    The corpus metric counts document frequencies over the references it scores; self-critical training over
    the training captions (`mri.models.self_critical`). Tokens may be words or ids.
    """

    def __init__(self, corpus: Sequence[Sequence[Tokens]], max_n: int = 4, sigma: float = 6.0):
        self.max_n, self.sigma = max_n, sigma
        self.doc_freq = Counter(g for refs in corpus for g in set().union(*(_ngrams(r, max_n) for r in refs)))
        self.log_num_docs = math.log(max(1, len(corpus)))

    def scores(self, hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> list[float]:
        """The score of each hypothesis against one image's references (their tf-idf computed once)."""
        refs = [self._tfidf(_ngrams(r, self.max_n)) for r in references]
        return [self._score(self._tfidf(_ngrams(h, self.max_n)), refs) for h in hypotheses]

    def _tfidf(self, counts: Counter) -> TfIdf:
        """Per-n tf-idf vectors and their norms, and the length CIDEr-D compares (the bigram count, as coco-caption)."""
        vec = [{} for _ in range(self.max_n)]
        for ngram, tf in counts.items():
            vec[len(ngram) - 1][ngram] = tf * (self.log_num_docs - math.log(max(1.0, self.doc_freq[ngram])))
        norms = [math.sqrt(sum(v * v for v in vn.values())) for vn in vec]
        length = sum(tf for ngram, tf in counts.items() if len(ngram) == 2)
        return vec, norms, length

    def _score(self, hyp: TfIdf, refs: list[TfIdf]) -> float:
        vec, norm, length = hyp
        total = 0.0
        for rvec, rnorm, rlength in refs:
            penalty = math.exp(-((length - rlength) ** 2) / (2 * self.sigma**2))
            for n in range(self.max_n):
                dot = sum(min(v, rvec[n].get(g, 0.0)) * rvec[n].get(g, 0.0) for g, v in vec[n].items())
                if norm[n] and rnorm[n]:
                    dot /= norm[n] * rnorm[n]
                total += dot * penalty
        return 10.0 * total / self.max_n / max(1, len(refs))


def cider_d(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4,
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """Corpus CIDEr-D and the score of every image; idf from this corpus's references."""
    scorer = CiderD(references, max_n, sigma)
    scores = [scorer.scores([hyp], refs)[0] for hyp, refs in zip(hypotheses, references, strict=True)]
    return (sum(scores) / len(scores) if scores else 0.0), scores


def caption_scores(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D ("cider") of a corpus."""
    return {**corpus_bleu(hypotheses, references), "cider": cider_d(hypotheses, references)[0]}


class CaptionMetrics(Metric):
    """Collects (hypothesis, references) strings keyed by image index; computes `caption_scores`.

    Keys make the result independent of batch order and count once the images a DistributedSampler
    repeats to pad its last batch. Under DDP, compute gathers every process's pairs as Python objects
    (`all_gather_object`), so strings never need a tensor encoding.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tokenize: Callable[[str], list[str]] = str.split, **kwargs):
        super().__init__(**kwargs)
        self.tokenize = tokenize
        self.pairs: dict[int, tuple[str, list[str]]] = {}

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]],
               index: Tensor | Sequence[int]) -> None:
        """hypotheses: one caption per image; references: the raw captions of each; index: image ids."""
        for key, hyp, refs in zip(torch.as_tensor(index).tolist(), hypotheses, references, strict=True):
            self.pairs[key] = (hyp, list(refs))

    def gathered(self) -> dict[int, tuple[str, list[str]]]:
        """Every process's pairs (only this process's outside DDP)."""
        if not (self._to_sync and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return dict(self.pairs)
        parts = [None] * torch.distributed.get_world_size(self.process_group)
        torch.distributed.all_gather_object(parts, self.pairs, group=self.process_group)
        return {key: pair for part in parts for key, pair in part.items()}

    def compute(self) -> dict[str, Tensor]:
        pairs = [pair for _, pair in sorted(self.gathered().items())]
        hypotheses = [self.tokenize(h) for h, _ in pairs]
        references = [[self.tokenize(r) for r in refs] for _, refs in pairs]
        return {k: torch.tensor(v) for k, v in caption_scores(hypotheses, references).items()}

    def reset(self) -> None:
        super().reset()
        self.pairs = {}
