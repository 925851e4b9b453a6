"""(query tag, song) pairs and their targets, as in the slides' "Input Data".

A song's tags are the tags of the training playlists that hold it, each weighted by how strongly the
song carries it: w_B(t) = (playlists of B tagged t) / (count of B's most frequent tag). The target of
tag A for song B is A's similarity to B's tags:

    target(A, B) = max_t  sim(A, t) * w_B(t)

so a song's own strongest tags have target 1 (the slides' "100% similarity"), and a tag that came
from one stray playlist among twenty does not count as much as the song's real tags.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mri.data.melon import Playlist
from mri.data.tags import PlaylistTags, TagVocabulary


@dataclass(frozen=True)
class SongTags:
    """Weighted tags of every song in CSR form: song s has tags ids[ptr[s]:ptr[s+1]] with weights w[...]."""

    ptr: np.ndarray  # (n_songs + 1,) int64
    ids: np.ndarray  # (nnz,) int64, vocabulary ids
    weights: np.ndarray  # (nnz,) float32 in (0, 1]
    popularity: np.ndarray  # (n_songs,) int64, training playlists holding the song

    @classmethod
    def from_playlists(cls, playlists: Sequence[Playlist] | PlaylistTags, vocab: TagVocabulary, n_songs: int,
                       song_counts: sp.csr_matrix | None = None) -> SongTags:
        """song_counts: PlaylistTags.song_tag_counts(n_songs), when already computed."""
        flat = playlists if isinstance(playlists, PlaylistTags) else PlaylistTags(playlists, vocab)
        counts = flat.song_tag_counts(n_songs) if song_counts is None else song_counts  # (n_songs, V), sorted
        songs = flat.songs[(flat.songs >= 0) & (flat.songs < n_songs)]
        popularity = np.bincount(songs, minlength=n_songs).astype(np.int64)
        ptr, ids, n = counts.indptr.astype(np.int64), counts.indices.astype(np.int64), counts.data
        carried = np.diff(ptr) > 0
        strongest = np.ones(n_songs, dtype=np.float32)  # count of each song's most frequent tag
        strongest[carried] = np.maximum.reduceat(n, ptr[:-1][carried])
        weights = n / np.repeat(strongest, np.diff(ptr))
        return cls(ptr, ids, weights.astype(np.float32), popularity)

    def tagged(self, songs: np.ndarray) -> np.ndarray:
        """The songs (of those given) that carry at least one vocabulary tag."""
        return songs[self.ptr[songs + 1] > self.ptr[songs]]

    def own_tags(self, song: int) -> np.ndarray:
        return self.ids[self.ptr[song]:self.ptr[song + 1]]

    def targets(self, sim: np.ndarray, song: int) -> np.ndarray:
        """Target of every query tag for one song: sim (T, V) -> (T,) float32."""
        lo, hi = self.ptr[song], self.ptr[song + 1]
        return (sim[:, self.ids[lo:hi]] * self.weights[lo:hi]).max(axis=1, initial=0.0)


def split_songs(songs: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """A song-disjoint train/val/test split (seeded): val and test songs are never seen in training."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"split fractions val={val}, test={test} must be in [0, 1) and sum below 1")
    order = np.random.default_rng(seed).permutation(np.sort(songs))
    n_val, n_test = round(len(order) * val), round(len(order) * test)
    return {
        "train": np.sort(order[n_val + n_test:]),
        "val": np.sort(order[:n_val]),
        "test": np.sort(order[n_val:n_val + n_test]),
    }
