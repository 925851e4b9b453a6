"""SongIndex: the two-tower model's song vectors for a whole catalogue, memory-mapped, with exact top-k search.

A built index is a folder:

    vectors.npy     (N, dim) float32 or float16, unit rows: the song tower's output for every song with features
    song_ids.npy    (N,) int64, the feature store's order
    tags.npy        (T, dim) float32: the tag tower's vectors of the model's query tags, times the model's scale
    catalogue.jsonl, catalogue_offsets.npy   the songs' titles, artists and genre names in row order, so that
                    opening a recommender need not read song_meta.json (mri.recommend.catalogue)
    ann.faiss       index.kind=ivf|hnsw only: the FAISS structure over the vectors (mri.recommend.ann)
    meta.json       what produced it (checkpoint path, sha256, mtime; feature store; net config; the Melon files
                    the catalogue was read from; search kind and its build parameters); written last

A query is a weight vector over the query tags; its score for a song is the weighted mean of the model's
scores, sum_t w_t * (scale * cos(tag_t, song) + bias), i.e. a (Q, dim) query vector against the song vectors.
The exact kind computes that (Q, dim) x (dim, N) product over chunks of songs, so that memory stays bounded
whatever N is; ivf and hnsw let FAISS propose candidates and score those exactly.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mri.data.features import MelFeatures
from mri.models.backbones import for_inference
from mri.recommend import ann
from mri.recommend.ann import SearchSettings
from mri.recommend.catalogue import write_catalogue

FORMAT_VERSION = 1
DTYPES = ("float32", "float16")


def rebuild_command(ckpt_path: str | Path, settings: SearchSettings | None = None) -> str:
    kind = f" index.kind={settings.kind}" if settings and settings.kind != "exact" else ""
    return f"python recommend.py build_index=true tag_mel_ckpt={ckpt_path}{kind}"


class IndexProblem(RuntimeError):
    """An index that is missing or was built from other inputs; the message names the command that rebuilds it."""


class MissingIndex(IndexProblem):
    pass


class StaleIndex(IndexProblem):
    pass


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(ckpt_path: str | Path, store: MelFeatures) -> dict:
    """What an index depends on: the checkpoint's bytes and the feature store's identity."""
    ckpt = Path(ckpt_path).resolve()
    return {
        "checkpoint": {"path": str(ckpt), "sha256": file_digest(ckpt), "mtime_ns": ckpt.stat().st_mtime_ns},
        "features": {"folder": str(store.folder.resolve()), "meta_sha256": file_digest(store.folder / "meta.json"),
                     "n_songs": len(store)},
    }


class SongIndex:
    """A built index, opened read-only; vectors memory-mapped.

    settings: the search settings (kind, nprobe, ...); None: the kind it was built with, default search settings.
    """

    def __init__(self, folder: str | Path, settings: SearchSettings | None = None):
        self.folder = Path(folder)
        if not (self.folder / "meta.json").is_file():
            raise MissingIndex(f"no song index in {self.folder}")
        self.meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        # copy-on-write mapping: torch may wrap it without copying, nothing is ever written back
        self.vectors = np.load(self.folder / "vectors.npy", mmap_mode="c")  # (N, dim)
        self.song_ids = np.load(self.folder / "song_ids.npy")  # (N,)
        self.tag_vectors = torch.from_numpy(np.load(self.folder / "tags.npy"))  # (T, dim), scale folded in
        self.query_tags: list[str] = self.meta["query_tags"]
        self.bias = float(self.meta["bias"])
        self.built = self.meta.get("search", {"kind": "exact"})  # build parameters of its search structure
        self.settings = settings or SearchSettings(kind=self.built["kind"])
        self.ann = ann.load(self.folder / self.built["file"]) if self.built["kind"] != "exact" else None

    def __len__(self) -> int:
        return len(self.song_ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @classmethod
    def open(cls, folder: str | Path, ckpt_path: str | Path, settings: SearchSettings | None = None) -> SongIndex:
        """Open an index and refuse it (MissingIndex, StaleIndex: naming the command that rebuilds it) unless
        it was built from this checkpoint, its feature store is unchanged and (settings given) it was built
        with the search kind and structure they ask for."""
        try:
            index = cls(folder, settings)
        except MissingIndex as err:
            raise MissingIndex(f"{err}; build it with `{rebuild_command(ckpt_path, settings)}`") from None
        index.check(ckpt_path)
        return index

    def check(self, ckpt_path: str | Path) -> None:
        built, problems = self.meta["provenance"], []
        wanted = self.settings.build_params(len(self))
        if any(self.built.get(key) != value for key, value in wanted.items()):
            problems.append(f"it was built for search {_params(self.built)}, not {_params(wanted)}")
        if self.meta.get("version") != FORMAT_VERSION:
            problems.append(f"index format {self.meta.get('version')} (this code reads {FORMAT_VERSION})")
        ckpt, digest = Path(ckpt_path).resolve(), file_digest(ckpt_path)
        if built["checkpoint"]["sha256"] != digest:
            problems.append(f"it was built from checkpoint {built['checkpoint']['path']} (sha256 "
                            f"{built['checkpoint']['sha256'][:12]}), not from {ckpt} (sha256 {digest[:12]})")
        store_meta = Path(built["features"]["folder"]) / "meta.json"
        if not store_meta.is_file():
            problems.append(f"its feature store {store_meta.parent} no longer exists")
        elif built["features"]["meta_sha256"] != file_digest(store_meta):
            problems.append(f"its feature store {store_meta.parent} has changed since")
        if problems:
            raise StaleIndex(f"song index {self.folder} is stale: " + "; ".join(problems)
                             + f". Rebuild it with `{rebuild_command(ckpt_path, self.settings)}`")

    def features(self) -> MelFeatures:
        """The feature store the index was built from (its meta names the Melon root)."""
        return MelFeatures(self.meta["provenance"]["features"]["folder"])

    @classmethod
    def build(cls, folder: str | Path, net: torch.nn.Module, store: MelFeatures, query_tags: Sequence[str],
              ckpt_path: str | Path, config: dict | None = None, dtype: str = "float32",
              batch_size: int = 256, settings: SearchSettings | None = None,
              keep: Callable[[Path], None] | None = None) -> SongIndex:
        """Encode every song of the store with `net` (a TwoTowerNet, set for inference: eval, channels-last)
        and write the index, replacing any old one; settings: the search kind to build (exact by default);
        keep: writes what else the index keeps into its folder (the bridge's tag side) before it is complete.

        Built in a temporary sibling folder and renamed into place: a half-built index never looks complete.
        """
        if dtype not in DTYPES:
            raise ValueError(f"index dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        if not hasattr(net, "encode_songs"):
            raise TypeError(f"{type(net).__name__} has no song tower: the index needs a two-tower checkpoint "
                            "(python train.py model=squeezenet)")
        folder = Path(folder)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        net = for_inference(net)
        with torch.inference_mode():
            tags = net.encode_tags(torch.arange(len(query_tags))) * net.scale  # (T, dim)
            dim = tags.shape[1]
            vectors = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.dtype(dtype), (len(store), dim))
            for s in range(0, len(store), batch_size):
                mels = torch.from_numpy(store.standardized(slice(s, s + batch_size))).unsqueeze(1)  # (B, 1, 48, k)
                mels = mels.contiguous(memory_format=torch.channels_last)
                vectors[s:s + len(mels)] = net.encode_songs(mels).numpy()  # (B, dim)
            vectors.flush()
            bias = float(net.bias)
        del vectors
        np.save(tmp / "song_ids.npy", store.song_ids)
        np.save(tmp / "tags.npy", tags.numpy().astype(np.float32))
        root = store.meta.get("root")  # every store built from a Melon root names it; a benchmark's may not
        catalogue = write_catalogue(tmp, root, store.song_ids) if root else None
        if keep is not None:
            keep(tmp)
        meta = {"version": FORMAT_VERSION, "n_songs": len(store), "dim": dim, "dtype": dtype,
                "query_tags": list(query_tags), "bias": bias, "provenance": provenance(ckpt_path, store),
                "config": config or {}, "catalogue": catalogue,
                "search": _write_search(tmp, settings or SearchSettings()),
                "build_seconds": time.perf_counter() - start, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write_meta(tmp, meta)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return cls(folder, settings)

    def rebuild_search(self, settings: SearchSettings) -> SongIndex:
        """Replace the search structure by one built with settings, keeping the song vectors (no re-encoding)."""
        (self.folder / "meta.json").unlink()  # until the new meta is written, the folder is no index
        (self.folder / ann.FILE).unlink(missing_ok=True)
        _write_meta(self.folder, {**self.meta, "search": _write_search(self.folder, settings)})
        return SongIndex(self.folder, settings)

    def queries(self, weights: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(Q, T) weights over the query tags -> (Q, dim) query vectors (scale folded in)."""
        return torch.as_tensor(weights, dtype=torch.float32) @ self.tag_vectors

    def search(self, weights: np.ndarray | torch.Tensor, k: int = 10,
               chunk: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k songs for each weighted tag query: (Q, k) scores and (Q, k) rows of the index.

        Scores are the weighted mean of the model's tag-song scores when the weights sum to 1.
        """
        weights = torch.as_tensor(weights, dtype=torch.float32)  # (Q, T)
        scores, rows = self.top_k(self.queries(weights), k, chunk)
        return scores + self.bias * weights.sum(1, keepdim=True), rows

    def top_k(self, queries: torch.Tensor, k: int, chunk: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k by dot product of (Q, dim) queries with the song vectors: exact, or the exact scores of the
        FAISS structure's candidates. A query it finds fewer than k candidates for is answered exactly."""
        if self.ann is None:
            return self.exact_top_k(queries, k, chunk)
        k = min(k, len(self))
        rows = torch.from_numpy(ann.candidates(self.ann, self.settings, queries.numpy(),
                                               min(len(self), max(k, self.settings.candidates))))  # (Q, C)
        vectors = torch.from_numpy(np.asarray(self.vectors[rows.clamp(min=0).numpy()], dtype=np.float32))  # (Q, C, dim)
        scores = torch.einsum("qd,qcd->qc", queries, vectors).masked_fill(rows < 0, float("-inf"))  # (Q, C)
        best_scores, order = torch.topk(scores, k, dim=1)
        best_rows = rows.gather(1, order)
        short = torch.nonzero(best_rows[:, -1] < 0).flatten()  # queries with fewer than k candidates
        if len(short):
            best_scores[short], best_rows[short] = self.exact_top_k(queries[short], k, chunk)
        return best_scores, best_rows

    def exact_top_k(self, queries: torch.Tensor, k: int, chunk: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k by dot product of (Q, dim) queries with every song vector, `chunk` songs at a time."""
        k = min(k, len(self))
        best_scores = torch.full((len(queries), 0), float("-inf"))
        best_rows = torch.zeros((len(queries), 0), dtype=torch.long)
        for s in range(0, len(self), chunk):
            block = torch.from_numpy(self.vectors[s:s + chunk])  # (C, dim), a view of the mapped file
            if block.dtype != torch.float32:
                block = block.float()
            scores, rows = torch.topk(queries @ block.T, min(k, len(block)), dim=1)  # (Q, <=k)
            merged = torch.cat([best_scores, scores], 1)  # (Q, <=2k): best so far and this chunk's best
            best_scores, order = torch.topk(merged, min(k, merged.shape[1]), dim=1)
            best_rows = torch.cat([best_rows, rows + s], 1).gather(1, order)
        return best_scores, best_rows


def _params(params: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items() if key not in ("file", "bytes"))


def _write_search(folder: Path, settings: SearchSettings) -> dict:
    """The search structure of folder's vectors.npy (none for exact); its build parameters for meta.json."""
    if settings.kind == "exact":
        return settings.build_params(0)
    return ann.build(np.load(folder / "vectors.npy", mmap_mode="r"), settings, folder / ann.FILE)


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
