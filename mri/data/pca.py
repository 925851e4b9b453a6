"""PCA over the time axis of a mel: (48 bands, T frames) -> (48, k) as in the MRI slides (48x1892 -> 48x20).

Two modes:
- per_song: each song's 48 band rows are projected on that song's own top-k time components
  (what the slides' 48 x k shape suggests); explained variance is per song.
- global: one time basis (T, k) fitted on the rows of many songs and shared by all, so a feature
  column means the same thing for every song.
"""
from __future__ import annotations

import numpy as np


def per_song_pca(mels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Project each mel's band rows on its own top-k time components.

    mels (B, 48, T) -> features (B, 48, k), explained variance ratio (B,).
    Computed through the (48, 48) Gram matrix, so the cost is linear in T.
    Signs are fixed (largest |score| of each component positive) so equal inputs give equal features.
    """
    x = mels.astype(np.float32, copy=False)
    x = x - x.mean(axis=1, keepdims=True)  # centre each frame over the bands: (B, 48, T)
    gram = (x @ x.transpose(0, 2, 1)).astype(np.float64)  # (B, 48, 48); float32 products, ample for float16 output
    eigval, eigvec = np.linalg.eigh(gram)  # ascending
    eigval, eigvec = eigval[:, ::-1].clip(min=0), eigvec[:, :, ::-1]
    scores = eigvec[:, :, :k] * np.sqrt(eigval[:, None, :k])  # (B, 48, k) = U S
    peak = np.take_along_axis(scores, np.abs(scores).argmax(axis=1, keepdims=True), axis=1)
    scores *= np.where(peak < 0, -1.0, 1.0)
    total = eigval.sum(axis=1)
    explained = np.divide(eigval[:, :k].sum(axis=1), total, out=np.ones_like(total), where=total > 0)
    return scores.astype(np.float32), explained


class GlobalTimeBasis:
    """A shared time basis (T, k), fitted incrementally from running sums of the rows' moments."""

    def __init__(self, n_frames: int):
        self.n_rows = 0
        self.row_sum = np.zeros(n_frames)  # (T,)
        self.gram = np.zeros((n_frames, n_frames))  # (T, T) sum of row outer products
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (T, k)
        self.explained_variance_ratio: float | None = None

    def partial_fit(self, mels: np.ndarray) -> None:
        rows = mels.reshape(-1, mels.shape[-1]).astype(np.float32, copy=False)  # (B * 48, T)
        self.n_rows += len(rows)
        self.row_sum += rows.sum(axis=0, dtype=np.float64)
        self.gram += rows.T @ rows  # (T, T): a batch's products in float32 (2x faster), the running sums in float64

    def add(self, other: GlobalTimeBasis) -> GlobalTimeBasis:
        """Sum another basis's moments into this one (moments fitted apart, e.g. in worker processes)."""
        self.n_rows += other.n_rows
        self.row_sum += other.row_sum
        self.gram += other.gram
        return self

    def finish(self, k: int) -> GlobalTimeBasis:
        if self.n_rows < 2:
            raise ValueError("the global PCA basis needs at least one readable mel to fit on")
        self.mean = self.row_sum / self.n_rows
        cov = self.gram / self.n_rows - np.outer(self.mean, self.mean)
        eigval, eigvec = np.linalg.eigh(cov)
        eigval, eigvec = eigval[::-1].clip(min=0), eigvec[:, ::-1]
        self.components = eigvec[:, :k].copy()
        self.explained_variance_ratio = float(eigval[:k].sum() / eigval.sum())
        self.row_sum = self.gram = None  # (T, T) moments dropped once the basis is fixed: it travels to workers
        return self

    def transform(self, mels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mels (B, 48, T) -> features (B, 48, k), explained variance ratio per song (B,)."""
        x = mels.astype(np.float32, copy=False) - self.mean.astype(np.float32)  # (B, 48, T)
        scores = x @ self.components.astype(np.float32)  # (B, 48, k); float32: ample for float16 output
        total = np.einsum("bft,bft->b", x, x).astype(np.float64)  # float32 sums: a statistic, not a feature
        kept = np.einsum("bfk,bfk->b", scores, scores).astype(np.float64)
        explained = np.divide(kept, total, out=np.ones_like(total), where=total > 0)
        return scores.astype(np.float32), explained

    def save(self, path) -> None:
        np.savez(path, mean=self.mean, components=self.components, explained=self.explained_variance_ratio)

    @classmethod
    def load(cls, path) -> GlobalTimeBasis:
        with np.load(path) as z:
            basis = cls(len(z["mean"]))
            basis.mean, basis.components = z["mean"], z["components"]
            basis.row_sum = basis.gram = None
            basis.explained_variance_ratio = float(z["explained"])
        return basis
