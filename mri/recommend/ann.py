"""Approximate song search with FAISS: an IVF or HNSW structure over a song index's unit vectors.

The song vectors are unit rows, so the songs of highest inner product with a query are the nearest ones (L2) to
the query scaled to unit length: the structures are built for L2, where HNSW's graph works best. They only
propose candidates: SongIndex re-scores them exactly from its own vectors, so every score shown is the
model's. Settings come from the `index` block of recommend.yaml; the build settings (kind, structure) are recorded
in the index's meta.json and an index built with others is refused, the search settings (nprobe, ef_search,
candidates) may change at every start.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

KINDS = ("exact", "ivf", "hnsw")
STORAGES = {"flat": "Flat", "sq8": "SQ8"}  # FAISS factory names: float32 copies, or one byte per dimension
BUILD_KEYS = {"exact": (), "ivf": ("storage", "nlist", "train_songs"), "hnsw": ("storage", "M", "ef_construction")}
FILE = "ann.faiss"


@dataclass(frozen=True)
class SearchSettings:
    """How songs are searched; see the `index` block of configs/recommend.yaml."""

    kind: str = "exact"           # exact | ivf | hnsw
    storage: str = "flat"         # ivf, hnsw: flat | sq8 (candidates are re-scored from the float vectors anyway)
    candidates: int = 100         # ivf, hnsw: candidates per query re-scored exactly (at least k)
    nlist: int | None = None      # ivf: inverted lists; None: 4 x sqrt(songs)
    nprobe: int = 32              # ivf: lists visited per query
    train_songs: int = 262_144    # ivf: songs (evenly spaced) the coarse k-means is trained on
    M: int = 32                   # hnsw: neighbours per node
    ef_construction: int = 40     # hnsw: candidate list while building
    ef_search: int = 64           # hnsw: candidate list while searching

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"index.kind={self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.storage not in STORAGES:
            raise ValueError(f"index.storage={self.storage!r}; choose one of {', '.join(STORAGES)}")
        for key in ("candidates", "nprobe", "train_songs", "M", "ef_construction", "ef_search"):
            if getattr(self, key) < 1:
                raise ValueError(f"index.{key}={getattr(self, key)} must be at least 1")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError(f"index.nlist={self.nlist} must be at least 1 (or null: 4 x sqrt(songs))")

    @classmethod
    def from_dict(cls, values: dict | None) -> SearchSettings:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown index settings {', '.join(unknown)}; known: "
                             f"{', '.join(f.name for f in fields(cls))}")
        return cls(**values)

    def build_params(self, n_songs: int) -> dict:
        """What the structure is made of (recorded in meta.json, compared when an index is opened)."""
        params = {"kind": self.kind, **{key: getattr(self, key) for key in BUILD_KEYS[self.kind]}}
        if self.kind == "ivf":
            params["nlist"] = self.lists(n_songs)
            params["train_songs"] = min(self.train_songs, n_songs)
        return params

    def lists(self, n_songs: int) -> int:
        """IVF lists: nlist, or 4 x sqrt(songs), never more than one list per song."""
        return max(1, min(n_songs, self.nlist or round(4 * math.sqrt(n_songs))))

    def to_dict(self) -> dict:
        return asdict(self)


def build(vectors: np.ndarray, settings: SearchSettings, path: str | Path, chunk: int = 1 << 18) -> dict:
    """Write the FAISS structure of (N, dim) unit vectors (a memory map is read `chunk` rows at a time) to path;
    returns its build parameters and size for meta.json."""
    import faiss

    n, dim = vectors.shape
    params = settings.build_params(n)
    storage = STORAGES[settings.storage]
    if settings.kind == "ivf":
        index = faiss.index_factory(dim, f"IVF{params['nlist']},{storage}", faiss.METRIC_L2)
        # one sample to train both the coarse quantiser and, for sq8, the byte ranges
        index.train(_float32(vectors[np.linspace(0, n - 1, params["train_songs"]).astype(np.int64)]))
    else:
        index = faiss.index_factory(dim, f"HNSW{settings.M},{storage}", faiss.METRIC_L2)
        index.hnsw.efConstruction = settings.ef_construction
        if not index.is_trained:  # sq8: the byte ranges of each dimension
            index.train(_float32(vectors[np.linspace(0, n - 1, min(n, settings.train_songs)).astype(np.int64)]))
    for s in range(0, n, chunk):
        index.add(_float32(vectors[s:s + chunk]))
    faiss.write_index(index, str(path))
    return {**params, "file": FILE, "bytes": Path(path).stat().st_size}


def load(path: str | Path):
    import faiss

    return faiss.read_index(str(path))


def candidates(index, settings: SearchSettings, queries: np.ndarray, n: int) -> np.ndarray:
    """(Q, dim) float32 queries -> (Q, n) rows proposed by the structure, best first; -1 where it found fewer."""
    import faiss

    if settings.kind == "ivf":
        params = faiss.SearchParametersIVF(nprobe=settings.nprobe)
    else:
        params = faiss.SearchParametersHNSW(efSearch=max(settings.ef_search, n))
    queries = _float32(queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12))  # unit rows
    _, rows = index.search(queries, n, params=params)
    return rows


def _float32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)
