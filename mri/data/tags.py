"""Melon tags: normalisation, the tag vocabulary, and tag–tag similarity learned from playlists.

Two tags are similar when the same playlists carry them and when their playlists hold the same
songs: similarity = mean of the cosine over playlists and the cosine over songs (1 on the diagonal).
With `dim`, the tag vectors are first reduced to their main `dim` axes by a truncated SVD (latent
semantic analysis), which smooths away the noise of sparse playlists.
On real Melon data this gives 여름 -> 바다, 휴가; 크리스마스 -> 캐롤, 겨울.

    python -m mri.data.tags data/melon-synth 여름 드라이브      # a tag's nearest tags
"""
from __future__ import annotations

import argparse
import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from sklearn.utils.extmath import randomized_svd

from mri.data.melon import Playlist, read_playlists
from mri.utils.atomic import read_arrays, write_arrays

EXACT_SVD_NONZEROS = 2_000_000  # tag vectors up to this size get an exact SVD (the generated default: ~0.3M)
GRAM_MAX_TAGS = 12_000  # larger: the Gram matrix, V x V float32, would pass 0.6 GB
SIMILARITY_CACHE_VERSION = 1  # of TagSimilarity.cached's files


def normalize_tag(tag: str) -> str:
    """Fold the free-text variants that mean the same tag: Unicode form, case, whitespace (' Summer ' == 'summer')."""
    return "".join(unicodedata.normalize("NFKC", tag).casefold().split())


@dataclass(frozen=True)
class TagVocabulary:
    """Normalised tags, most frequent first (ties by name), with their playlist counts."""

    tags: tuple[str, ...]
    counts: tuple[int, ...]

    @classmethod
    def from_playlists(cls, playlists: Iterable[Playlist], min_count: int = 1) -> TagVocabulary:
        counts = Counter(t for p in playlists for t in {normalize_tag(t) for t in p.tags} if t)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(tuple(ranked), tuple(counts[t] for t in ranked))

    def __len__(self) -> int:
        return len(self.tags)

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}

    def encode(self, tags: Iterable[str]) -> list[int]:
        """Vocabulary ids of the tags it knows, after normalisation."""
        index = self.index
        return [index[n] for n in map(normalize_tag, tags) if n in index]


class PlaylistTags:
    """The playlists' songs and vocabulary tags as flat arrays (a 115,071-playlist train.json in ~100 MB).

    Playlist p holds songs[ptr[p]:ptr[p+1]]; (playlist[a], tag[a]) is each distinct vocabulary tag of each playlist.
    """

    def __init__(self, playlists: Sequence[Playlist], vocab: TagVocabulary):
        self.vocab, self.n_playlists = vocab, len(playlists)
        lengths = np.fromiter((len(p.songs) for p in playlists), np.int64, len(playlists))
        self.ptr = np.concatenate([[0], np.cumsum(lengths)])  # (P + 1,)
        self.songs = np.fromiter((s for p in playlists for s in p.songs), np.int64, int(self.ptr[-1]))  # (L,)
        index, known = vocab.index, {}
        pairs = [(p_i, t) for p_i, p in enumerate(playlists)
                 for t in {_tag_id(raw, index, known) for raw in p.tags} - {-1}]
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.playlist, self.tag = pairs[:, 0], pairs[:, 1]  # (A,), (A,)

    def song_tag_counts(self, n_songs: int | None = None) -> sp.csr_matrix:
        """(n_songs, V) float32 CSR, sorted: how many playlists hold song s with tag t (songs >= n_songs dropped)."""
        lengths = self.ptr[self.playlist + 1] - self.ptr[self.playlist]  # (A,) songs per assignment
        starts = np.repeat(self.ptr[self.playlist] - np.cumsum(lengths) + lengths, lengths)  # (M,)
        songs = self.songs[starts + np.arange(int(lengths.sum()))]  # (M,) song of each (song, tag) occurrence
        tags = np.repeat(self.tag, lengths)
        if n_songs is None:
            n_songs = int(self.songs.max(initial=-1)) + 1
        keep = (songs >= 0) & (songs < n_songs)
        counts = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (songs[keep], tags[keep])),
                               shape=(n_songs, len(self.vocab)))
        counts.sum_duplicates()
        return counts


def _tag_id(raw: str, index: dict[str, int], known: dict[str, int]) -> int:
    """Vocabulary id of a raw tag (-1: not in the vocabulary), each distinct spelling normalised once."""
    if raw not in known:
        known[raw] = index.get(normalize_tag(raw), -1)
    return known[raw]


class TagSimilarity:
    """Tag–tag similarity from playlists, as normalised tag vectors whose dot product is the similarity."""

    def __init__(self, vocab: TagVocabulary, playlists: Sequence[Playlist] | PlaylistTags, dim: int | None = None,
                 song_counts: sp.csr_matrix | None = None):
        """song_counts: PlaylistTags.song_tag_counts() if already computed (it is the costly part at full size)."""
        self.vocab = vocab
        flat = playlists if isinstance(playlists, PlaylistTags) else PlaylistTags(playlists, vocab)
        by_playlist = sp.csr_matrix((np.ones(len(flat.tag)), (flat.tag, flat.playlist)),
                                    shape=(len(vocab), flat.n_playlists))
        by_song = (flat.song_tag_counts() if song_counts is None else song_counts).T.tocsr()  # (V, songs)
        # each half unit-normalised, scaled by sqrt(1/2): the dot product is the mean of the two cosines
        vectors = sp.hstack([_unit_rows(by_playlist), _unit_rows(by_song)]).tocsr() * np.sqrt(0.5)
        if dim is not None and dim < min(vectors.shape) - 1:  # latent semantic smoothing: keep the main axes
            u, s = _top_singular(vectors, dim)
            vectors = sp.csr_matrix(_unit_rows(sp.csr_matrix(u * s)))
        self.vectors = vectors

    @classmethod
    def cached(cls, vocab: TagVocabulary, playlists: Sequence[Playlist] | PlaylistTags, dim: int | None,
               cache_dir: str | Path | None, source: str | Path, song_counts: sp.csr_matrix | None = None
               ) -> TagSimilarity:
        """TagSimilarity(vocab, playlists, dim, song_counts), its vectors kept under cache_dir (None: not kept) in a
        file named by the digest of the playlists' file `source` and the settings, so that training and the
        recommender compute it once between them: at the real Melon size it takes 26 s."""
        if cache_dir is None:
            return cls(vocab, playlists, dim, song_counts)
        digest = hashlib.sha256(Path(source).read_bytes())
        digest.update(json.dumps([SIMILARITY_CACHE_VERSION, dim, vocab.tags], ensure_ascii=False).encode())
        key = digest.hexdigest()[:20]
        path = Path(cache_dir) / f"tag-similarity-{key}.npz"
        if (cached := read_arrays(path, key)) is not None:
            return cls.from_arrays(vocab, cached)
        similarity = cls(vocab, playlists, dim, song_counts)
        write_arrays(path, key, similarity.to_arrays())
        return similarity

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tag vectors as plain arrays (CSR parts), for a cache file; from_arrays reads them back."""
        v = self.vectors
        return {"data": v.data, "indices": v.indices, "indptr": v.indptr, "shape": np.array(v.shape)}

    @classmethod
    def from_arrays(cls, vocab: TagVocabulary, arrays: dict[str, np.ndarray]) -> TagSimilarity:
        similarity = cls.__new__(cls)
        similarity.vocab = vocab
        similarity.vectors = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                           shape=tuple(arrays["shape"]))
        return similarity

    def matrix(self, rows: Sequence[int] | None = None, columns: Sequence[int] | None = None) -> np.ndarray:
        """Similarity of the tags `rows` to the tags `columns` (default: every vocabulary tag, both):
        (len(rows), len(columns)) float32."""
        left = self.vectors if rows is None else self.vectors[list(rows)]
        right = self.vectors if columns is None else self.vectors[list(columns)]
        return np.asarray((left @ right.T).todense(), dtype=np.float32).clip(0.0, 1.0)

    def nearest(self, tag: str, k: int = 10) -> list[tuple[str, float]]:
        """The k tags most similar to `tag` (itself excluded); KeyError with advice when unknown."""
        t = self.vocab.index.get(normalize_tag(tag))
        if t is None:
            raise KeyError(f"tag {tag!r} is not in the vocabulary of {len(self.vocab)} tags; "
                           f"the most frequent are: {', '.join(self.vocab.tags[:10])}")
        sims = self.matrix([t])[0]
        order = [i for i in np.argsort(-sims, kind="stable") if i != t][:k]
        return [(self.vocab.tags[i], float(sims[i])) for i in order]


def _top_singular(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-k left singular vectors and values of m (V tags x D playlists and songs, V << D).

    While small, ARPACK's svds. At the real size (5,807 tags x 823,060 playlists and songs, 14M nonzeros, k=64)
    svds took 9 minutes, so there the left singular vectors are the top eigenvectors of the V x V Gram matrix
    m m^T, in float32 (15 s on 2 cores against 23 s in float64, the similarities within 2e-5 of ARPACK's); only a
    vocabulary too large for a dense Gram matrix takes a randomized SVD (Halko et al., 2011). Measured in
    experiments/full_scale/.
    """
    if m.nnz <= EXACT_SVD_NONZEROS:
        u, s, _ = svds(m, k=k, random_state=0)
        return u, s
    if m.shape[0] <= GRAM_MAX_TAGS:
        m = m.astype(np.float32)
        gram = (m @ m.T.tocsr()).toarray()  # (V, V)
        eigenvalues, u = scipy.linalg.eigh(gram, subset_by_index=[len(gram) - k, len(gram) - 1])
        return u, np.sqrt(eigenvalues.clip(0.0))
    u, s, _ = randomized_svd(m, k, n_oversamples=2 * k, n_iter=6, random_state=0)
    return u, s


def _unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the nearest tags of Melon tags, from train.json playlists.")
    parser.add_argument("root", help="Melon root folder (holds train.json)")
    parser.add_argument("tags", nargs="+", help="tags to look up")
    parser.add_argument("-k", type=int, default=10, help="neighbours per tag")
    parser.add_argument("--min-count", type=int, default=1, help="ignore tags on fewer playlists")
    args = parser.parse_args(argv)
    playlists = read_playlists(args.root, "train")
    sim = TagSimilarity(TagVocabulary.from_playlists(playlists, args.min_count), playlists)
    for tag in args.tags:
        print(f"{tag}: " + ", ".join(f"{t} {s:.2f}" for t, s in sim.nearest(tag, args.k)))


if __name__ == "__main__":
    main()
