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

from mri.data.melon import Playlist
from mri.data.tags import TagVocabulary, normalize_tag


@dataclass(frozen=True)
class SongTags:
    """Weighted tags of every song in CSR form: song s has tags ids[ptr[s]:ptr[s+1]] with weights w[...]."""

    ptr: np.ndarray  # (n_songs + 1,) int64
    ids: np.ndarray  # (nnz,) int64, vocabulary ids
    weights: np.ndarray  # (nnz,) float32 in (0, 1]
    popularity: np.ndarray  # (n_songs,) int64, training playlists holding the song

    @classmethod
    def from_playlists(cls, playlists: Sequence[Playlist], vocab: TagVocabulary, n_songs: int) -> SongTags:
        index = vocab.index
        song_idx, tag_idx = [], []
        popularity = np.zeros(n_songs, dtype=np.int64)
        for p in playlists:
            songs = [s for s in p.songs if 0 <= s < n_songs]
            np.add.at(popularity, songs, 1)
            for t in {index[n] for n in map(normalize_tag, p.tags) if n in index}:
                song_idx.extend(songs)
                tag_idx.extend([t] * len(songs))
        key = np.asarray(song_idx, dtype=np.int64) * len(vocab) + np.asarray(tag_idx, dtype=np.int64)
        pairs, counts = np.unique(key, return_counts=True)  # sorted by song, then tag
        songs, ids = np.divmod(pairs, len(vocab))
        ptr = np.zeros(n_songs + 1, dtype=np.int64)
        np.add.at(ptr, songs + 1, 1)
        ptr = np.cumsum(ptr)
        carried = np.diff(ptr) > 0
        strongest = np.ones(n_songs)  # count of each song's most frequent tag
        strongest[carried] = np.maximum.reduceat(counts, ptr[:-1][carried])
        return cls(ptr, ids, (counts / strongest[songs]).astype(np.float32), popularity)

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
