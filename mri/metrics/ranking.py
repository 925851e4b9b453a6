"""Per-query ranking metrics for tag -> song retrieval with graded relevance.

preds and target are (T, N): T query tags scored over the N songs of a split; target is the true
graded relevance in [0, 1]. Every metric is computed per query, then averaged with NaNs skipped.

- nDCG (Jarvelin & Kekalainen, 2002) with linear gain and tie-averaged DCG (McSherry & Najork,
  2008), the same as sklearn.metrics.ndcg_score with ignore_ties=False.
- Kendall tau-b with ties, the same as scipy.stats.kendalltau (Knight, 1966); discordant pairs are
  counted bit by bit of the ranks (a stable radix partition per bit, cumulative sums only, no sort),
  O(N log N) per query.

Queries are scored QUERY_CHUNK at a time, so memory stays a few (QUERY_CHUNK, N) tensors whatever T is
(a full validation split is about 1,000 tags x 70,000 songs).
"""

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

QUERY_CHUNK = 32  # queries scored at once: (32, 70,000) float64 tensors are 18 MB


def _tie_groups(sorted_rows: Tensor) -> Tensor:
    """Id 0, 1, ... of the run of equal values each position of a sorted row belongs to."""
    new = torch.ones_like(sorted_rows, dtype=torch.bool)  # (T, N)
    new[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    return new.cumsum(1) - 1  # (T, N)


def _tied_pairs(sorted_rows: Tensor) -> Tensor:
    """Number of pairs with equal values in each sorted row."""
    pos = torch.arange(sorted_rows.shape[1], device=sorted_rows.device).expand_as(sorted_rows)
    new = torch.ones_like(sorted_rows, dtype=torch.bool)  # (T, N)
    new[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    start = torch.where(new, pos, 0).cummax(1).values  # (T, N) first position of each run
    return (pos - start).sum(1)  # (T,) every element pairs with the equal ones before it


def _dense_rank(x: Tensor) -> tuple[Tensor, Tensor]:
    """Dense ranks 0..N-1 of each row (equal values share a rank) and its number of tied pairs."""
    sorted_x, order = x.sort(1)  # (T, N)
    rank = torch.empty_like(order).scatter_(1, order, _tie_groups(sorted_x))  # (T, N)
    return rank, _tied_pairs(sorted_x)


def _count_inversions(y: Tensor) -> Tensor:
    """Pairs i < j with y[i] > y[j] in each row of an int tensor with values in [0, N).

    From the highest bit down: within each run of equal higher bits, a pair first differs at this bit,
    and is inverted when the 1 comes before the 0; then each run is stably split, its 0s first.
    """
    t, n = y.shape
    pos = torch.arange(n, device=y.device).expand(t, n)
    count = torch.zeros(t, dtype=torch.long, device=y.device)
    for b in reversed(range(max(n - 1, 1).bit_length())):
        high = y >> (b + 1)  # (T, N) runs of equal high bits are contiguous
        bit = (y >> b) & 1
        new = torch.ones_like(bit, dtype=torch.bool)
        new[:, 1:] = high[:, 1:] != high[:, :-1]
        start = torch.where(new, pos, 0).cummax(1).values  # (T, N) first position of the run
        ones_before = bit.cumsum(1) - bit
        ones_before = ones_before - ones_before.gather(1, start)  # 1s earlier in the same run
        count += (ones_before * (1 - bit)).sum(1)
        run = new.cumsum(1) - 1  # (T, N) run number
        zeros_in_run = torch.zeros_like(bit).scatter_add_(1, run, 1 - bit).gather(1, run)
        target = start + torch.where(bit == 0, pos - start - ones_before, zeros_in_run + ones_before)
        y = torch.empty_like(y).scatter_(1, target, y)
    return count  # (T,)


def _discount(n: int, k: int | None, device) -> Tensor:
    """(N,) the DCG discount 1 / log2(position + 2) of the first k positions, 0 after (k None: all N)."""
    full = 1.0 / torch.log2(torch.arange(n, device=device, dtype=torch.double) + 2)
    return full if k is None else torch.where(torch.arange(n, device=device) < k, full, 0.0)


def _ndcgs(preds: Tensor, target: Tensor, ks: tuple[int | None, ...]) -> list[Tensor]:
    """nDCG@k per query (T,) for each k of `ks` (None: the full list), from one sort of each row."""
    preds, target = preds.double(), target.double()
    n = preds.shape[1]
    sorted_preds, order = preds.sort(1, descending=True)  # (T, N)
    gain = target.gather(1, order)  # (T, N) relevance in predicted order
    group = _tie_groups(sorted_preds)  # (T, N)
    group_gain = torch.zeros_like(gain).scatter_add_(1, group, gain)
    group_size = torch.zeros_like(gain).scatter_add_(1, group, torch.ones_like(gain))
    mean_gain = (group_gain / group_size.clamp_min(1)).gather(1, group)  # (T, N)
    ideal_gain = target.sort(1, descending=True).values  # (T, N)
    out = []
    for k in ks:
        discount = _discount(n, k, preds.device)
        dcg, ideal = (mean_gain * discount).sum(1), (ideal_gain * discount).sum(1)  # (T,)
        out.append(torch.where(ideal > 0, dcg / ideal, torch.nan))
    return out


def ndcg(preds: Tensor, target: Tensor, k: int | None = None) -> Tensor:
    """nDCG@k per query (T,); tied predictions share their mean gain; NaN if target is all zero."""
    return _ndcgs(preds, target, (k,))[0]


def kendall_tau_b(preds: Tensor, target: Tensor) -> Tensor:
    """Kendall tau-b per query (T,) as scipy.stats.kendalltau; NaN where a row is constant."""
    n = preds.shape[1]
    rank_x, x_ties = _dense_rank(preds)  # (T, N), (T,)
    rank_y, y_ties = _dense_rank(target)
    joint, order = (rank_x * n + rank_y).sort(1)  # (T, N) lexicographic order of (x, y)
    joint_ties = _tied_pairs(joint)
    discordant = _count_inversions(rank_y.gather(1, order))  # equal x are sorted by y: no inversion
    total = n * (n - 1) // 2
    con_minus_dis = (total - x_ties - y_ties + joint_ties - 2 * discordant).double()
    denom = ((total - x_ties).double() * (total - y_ties).double()).sqrt()
    return torch.where(denom > 0, con_minus_dis / denom, torch.nan)


def mse(preds: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over all (query, song) pairs."""
    return (preds.double() - target.double()).square().mean()


def rank_metrics(preds: Tensor, target: Tensor, k: int = 10) -> dict[str, float]:
    """mse, ndcg@k, full-list ndcg and kendall_tau, per-query values averaged skipping NaNs.

    preds may be a (1, N) row shared by every query (expanded, never copied).
    """
    per_query = {f"ndcg@{k}": [], "ndcg": [], "kendall_tau": []}
    squared_error = 0.0
    for s in range(0, target.shape[0], QUERY_CHUNK):
        p = preds[s:s + QUERY_CHUNK] if preds.shape[0] > 1 else preds
        p, t = torch.broadcast_tensors(p, target[s:s + QUERY_CHUNK])  # (C, N)
        top, whole = _ndcgs(p, t, (k, None))
        per_query[f"ndcg@{k}"].append(top)
        per_query["ndcg"].append(whole)
        per_query["kendall_tau"].append(kendall_tau_b(p, t))
        squared_error += (p.double() - t.double()).square().sum().item()
    out = {"mse": squared_error / target.numel()}
    return out | {name: torch.cat(v).nanmean().item() for name, v in per_query.items()}


def random_ranking(target: Tensor, k: int = 10) -> dict[str, float]:
    """The expected rank_metrics of a uniformly random order of the songs, exactly, without drawing one.

    At every position a random order's expected gain is the row's mean relevance, so E[DCG@k] is that mean times
    the first k discounts and E[nDCG@k] = E[DCG@k] / ideal DCG@k (the ideal is fixed); E[Kendall tau] = 0 (an
    order and its reverse are equally likely, with concordant and discordant pairs swapped). Random scores have
    no scale, so "mse" is instead that of the best constant prediction, the target's mean (i.e. the target's
    variance): the bar any regression of relevance must clear.
    """
    n = target.shape[1]
    per_query = {f"ndcg@{k}": [], "ndcg": []}
    discounts = {f"ndcg@{k}": _discount(n, k, target.device), "ndcg": _discount(n, None, target.device)}
    for s in range(0, target.shape[0], QUERY_CHUNK):
        t = target[s:s + QUERY_CHUNK].double()  # (C, N)
        ideal_gain, mean_gain = t.sort(1, descending=True).values, t.mean(1)
        for name, discount in discounts.items():
            ideal = (ideal_gain * discount).sum(1)  # (C,)
            per_query[name].append(torch.where(ideal > 0, mean_gain * discount.sum() / ideal, torch.nan))
    constant = target.amax(1) == target.amin(1)  # (T,) tau is undefined there, as in kendall_tau_b
    tau = torch.where(constant, torch.nan, 0.0).nanmean().item()
    out = {"mse": mse(target.double().mean().expand_as(target), target).item()}
    return out | {name: torch.cat(v).nanmean().item() for name, v in per_query.items()} | {"kendall_tau": tau}


def popularity_ranking(target: Tensor, popularity: Tensor, k: int = 10) -> dict[str, float]:
    """rank_metrics when every query ranks songs by one popularity vector (N,).

    "mse" uses popularity min-max scaled to [0, 1] as the predicted relevance.
    """
    pop = popularity.double().to(target.device)  # (N,)
    pop = (pop - pop.min()) / (pop.max() - pop.min()).clamp_min(1e-12)
    return rank_metrics(pop.expand_as(target), target, k)  # (T, N) same scores for every query


class TagRankingMetrics(Metric):
    """Accumulates (T, B) score and relevance columns over an epoch; computes rank_metrics.

    Columns are keyed by song index, so shuffled batches and the samples a DistributedSampler
    repeats to pad the last batch are put back in order and counted once.
    """

    is_differentiable = False
    higher_is_better = None  # mse lower, the ranking metrics higher
    full_state_update = False

    def __init__(self, k: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.add_state("preds", default=[], dist_reduce_fx="cat")  # [(B, T)]: songs first for cat
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("song_index", default=[], dist_reduce_fx="cat")  # [(B,)]

    def update(self, preds: Tensor, target: Tensor, song_index: Tensor) -> None:
        """preds, target: (T, B); song_index: (B,) index of each column's song in the split."""
        self.preds.append(preds.detach().T)
        self.target.append(target.detach().T)
        self.song_index.append(song_index.detach().long())

    def _assemble(self) -> tuple[Tensor, Tensor, Tensor]:
        index = dim_zero_cat(self.song_index).long()  # (M,) with repeats
        order = index.argsort(stable=True)
        first = torch.ones_like(order, dtype=torch.bool)
        first[1:] = index[order[1:]] != index[order[:-1]]
        keep = order[first]  # (N,) first column of each song, by song index
        return dim_zero_cat(self.preds)[keep].T, dim_zero_cat(self.target)[keep].T, index[keep]

    def assembled(self) -> tuple[Tensor, Tensor, Tensor]:
        """(preds (T, N), target (T, N), song_index (N,)) gathered over processes, deduplicated."""
        with self.sync_context(should_sync=self._to_sync and not self._is_synced):
            return self._assemble()

    def compute(self) -> dict[str, Tensor]:
        preds, target, _ = self._assemble()
        return {name: torch.tensor(v) for name, v in rank_metrics(preds, target, self.k).items()}
