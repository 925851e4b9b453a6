"""Mel features: every song's (48, 1876) mel reduced to (48, k) by PCA over time, in one memory-mapped store.

A store is a folder, built once per (data root, PCA settings) and reused across runs:

    features.npy   (N, 48, k) float16, memory-mapped at training time
    song_ids.npy   (N,) int64, sorted: row i holds song song_ids[i]
    basis.npz      the fitted time basis (global mode only)
    report.json    missing, unreadable, odd-shaped, non-finite and all-zero mel files, counted and listed
    meta.json      settings, explained variance, per-(band, component) mean and std; written last

It is built part by part in a workspace beside it (mri.data.feature_parts: resumable, parallel, shardable),
then merged in a temporary sibling folder and renamed into place, so a half-built store never looks complete.
`python preprocess.py` builds one with worker processes or as shards; training builds it in-process if absent.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from mri.data.feature_parts import (
    PART_SIZE,
    IncompleteBuild,
    Mapper,
    PartDone,
    PartJob,
    Workspace,
    basis_moments,
    featurise_part,
    worker_map,
)
from mri.data.melon import N_FRAMES, N_MELS, BadMel, MelReport
from mri.data.pca import GlobalTimeBasis

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: float32 PCA arithmetic, stores built part by part
MODES = ("per_song", "global")
BASIS_GROUPS = 8  # global basis: moments of this many groups of songs are fitted apart, then summed


@dataclass(frozen=True)
class FeatureSpec:
    """How mels become features; every field is part of the store's cache key."""

    mode: str = "per_song"  # per_song | global
    n_components: int = 20
    n_frames: int = N_FRAMES  # mels of other lengths are cropped or padded to this
    basis_songs: int = 2000  # global mode: songs the time basis is fitted on (evenly spaced)
    chunk: int = 64  # songs per PCA batch: bounds each process's memory (~60 MB)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown PCA mode {self.mode!r}; choose one of {', '.join(MODES)}")

    def settings(self) -> dict:
        """What decides the features (all but the batching knob `chunk`): the cache key and a workspace's plan."""
        return {k: v for k, v in asdict(self).items() if k != "chunk"}

    def key(self, root: Path) -> str:
        meta = root / "song_meta.json"
        stat = meta.stat()
        ident = json.dumps([FORMAT_VERSION, str(root.resolve()), stat.st_size, stat.st_mtime_ns, self.settings()])
        return f"{self.mode}-k{self.n_components}-{hashlib.sha1(ident.encode()).hexdigest()[:12]}"


class MelFeatures:
    """A built feature store, opened read-only and memory-mapped."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / "meta.json").is_file():
            raise FileNotFoundError(
                f"{self.folder} is not a built feature store (no meta.json; deleted, or its build never finished): "
                "rebuild it with `python preprocess.py` on the same data settings (training builds it too)")
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.features = np.load(self.folder / "features.npy", mmap_mode="r")  # (N, 48, k) float16
        self.song_ids = np.load(self.folder / "song_ids.npy")  # (N,)
        self.mean = np.asarray(self.meta["mean"], dtype=np.float32)  # (48, k)
        self.std = np.asarray(self.meta["std"], dtype=np.float32)  # (48, k)
        self.scale = np.float32(np.sqrt((self.std**2).mean()))  # one scale: components keep their weight

    def __len__(self) -> int:
        return len(self.song_ids)

    def positions(self, song_ids: np.ndarray) -> np.ndarray:
        """Rows of the given songs; KeyError naming the first song that has no features."""
        missing = ~self.has(song_ids)
        if missing.any():
            raise KeyError(f"song {int(np.asarray(song_ids)[missing][0])} has no features in {self.folder}")
        return np.searchsorted(self.song_ids, song_ids)

    def has(self, song_ids: np.ndarray) -> np.ndarray:
        """Whether each song has a row: (n,) bool."""
        pos = np.searchsorted(self.song_ids, song_ids).clip(max=max(len(self.song_ids) - 1, 0))
        return self.song_ids[pos] == song_ids

    def standardized(self, rows: np.ndarray | slice) -> np.ndarray:
        """Features of the given rows, centred per (band, component) and divided by one overall scale.

        (n, 48, k) float32. One scale, not one per component: whitening would blow the low-variance
        (mostly noise) components up to the weight of the first ones.
        """
        return (self.features[rows].astype(np.float32) - self.mean) / self.scale


class StoreBuilder:
    """Builds the store of `song_ids` under `cache_dir` part by part, resumably; merge() makes the store.

    Steps: fit_basis (global mode; fitted once, saved in the workspace), run (featurise parts, in any
    order, in any process), merge (check every part is there, write the store, drop the workspace).
    """

    def __init__(self, root: str | Path, spec: FeatureSpec, cache_dir: str | Path, song_ids: Sequence[int],
                 part_size: int = PART_SIZE):
        self.root, self.spec = Path(root), spec
        self.folder = Path(cache_dir) / spec.key(self.root)
        self.song_ids = np.unique(np.asarray(song_ids, dtype=np.int64))  # (N,) sorted
        self.part_size = part_size
        self._workspace: Workspace | None = None

    def built(self) -> bool:
        return (self.folder / "meta.json").is_file()

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.open(self.folder.with_name(f"{self.folder.name}.work"), self.song_ids,
                                             self.spec.settings(), self.part_size)
        return self._workspace

    @property
    def n_parts(self) -> int:
        return self.workspace.n_parts(len(self.song_ids))

    def todo(self, shard: int = 0, num_shards: int = 1) -> list[int]:
        """Unfinished parts of this shard (part p belongs to shard p % num_shards)."""
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard must be in 0..{num_shards - 1} for num_shards={num_shards}, not {shard}")
        return [p for p in range(shard, self.n_parts, num_shards) if not self.workspace.done(p)]

    def check_disk(self) -> None:
        """Fail before starting when the disk cannot hold the unfinished parts and the merged store."""
        per_song = N_MELS * self.spec.n_components * 2 + 8 + 8  # float16 features, id, explained variance
        todo = len(self.todo()) * self.part_size
        need = per_song * (min(todo, len(self.song_ids)) + len(self.song_ids)) * 1.1 + 64e6
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder.parent).free
        if free < need:
            raise OSError(errno.ENOSPC, f"building mel features of {len(self.song_ids):,} songs needs about "
                          f"{need / 1e9:.2f} GB free in {self.folder.parent} (parts, then the merged store); "
                          f"only {free / 1e9:.2f} GB is free. Free space or point data.cache_dir at a larger disk")

    def fit_basis(self, mapper: Mapper) -> GlobalTimeBasis | None:
        """The global time basis (None in per-song mode): loaded if saved, else fitted on evenly spaced songs."""
        if self.spec.mode != "global":
            return None
        path = self.workspace.basis_path
        if path.is_file():
            return GlobalTimeBasis.load(path)
        ids = self.song_ids[::max(1, len(self.song_ids) // self.spec.basis_songs)][:self.spec.basis_songs]
        groups = np.array_split(ids, min(BASIS_GROUPS, len(ids)))  # a fixed split: (T, T) sums cross processes
        basis = GlobalTimeBasis(self.spec.n_frames)
        fit = partial(basis_moments, self.root, n_frames=self.spec.n_frames, chunk=self.spec.chunk)
        for moments in mapper.ordered(fit, groups):
            basis.add(moments)  # summed in a fixed order: the same basis whatever the number of workers
        self.workspace.save_basis(basis.finish(self.spec.n_components))
        return basis

    def run(self, mapper: Mapper, parts: Sequence[int]) -> Iterator[PartDone]:
        """Featurise these parts, yielding each as it is saved."""
        basis = self.fit_basis(mapper)
        jobs = (PartJob(p, self.root, self.workspace.part_ids(self.song_ids, p), self.spec.n_frames,
                        self.spec.n_components, self.spec.chunk, basis) for p in parts)
        yield from mapper.unordered(partial(featurise_part, workspace=self.workspace), jobs)

    def merge(self) -> MelFeatures:
        """Write the store from every part (IncompleteBuild names missing ones) and drop the workspace."""
        ws = self.workspace
        missing = [p for p in range(self.n_parts) if not ws.done(p)]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise IncompleteBuild(f"{len(missing)} of {self.n_parts} parts are not featurised yet ({shown}) in "
                                  f"{ws.folder}: run the shards that own them (part p belongs to shard "
                                  "p % num_shards), or run without shard= to finish them here")
        tmp = self.folder.with_name(f"{self.folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self._write_store(tmp)
            for file in tmp.iterdir():  # on disk before the rename makes the store look complete
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, self.folder)
        shutil.rmtree(ws.folder)
        store = MelFeatures(self.folder)
        log.info("mel features: %d of %d songs, %s PCA keeps %.1f%% of the variance (mean per song); %s",
                 len(store), len(self.song_ids), self.spec.mode, 100 * store.meta["explained_variance"]["mean"],
                 store.meta["report"])
        return store

    def _write_store(self, tmp: Path) -> None:
        """features.npy, song_ids.npy, report.json, basis.npz and, last, meta.json from every part into `tmp`."""
        ws = self.workspace
        n = sum(ws.part_length(p) for p in range(self.n_parts))
        if n == 0:
            raise BadMel("missing", f"no readable mel file among {len(self.song_ids)} songs under "
                                    f"{self.root / 'arena_mel'}")
        k = self.spec.n_components
        total, squares = np.zeros((N_MELS, k)), np.zeros((N_MELS, k))  # float64 sums for the moments
        kept, explained, report = [], [], MelReport()
        with open(tmp / "features.npy", "wb") as f:  # appended part by part: memory stays one part's
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                     "fortran_order": False, "shape": (n, N_MELS, k)})
            for p in range(self.n_parts):
                part = ws.read_part(p)
                f.write(np.ascontiguousarray(part.features, dtype=np.float16).tobytes())
                block = part.features.astype(np.float64)  # (m, 48, k)
                total += block.sum(axis=0)
                squares += (block**2).sum(axis=0)
                kept.append(part.song_ids)
                explained.append(part.explained)
                report.merge(part.report)
        mean, std = feature_moments(total, squares, n)
        np.save(tmp / "song_ids.npy", np.concatenate(kept))
        report.write(tmp / "report.json")
        if ws.basis_path.is_file():
            shutil.copy2(ws.basis_path, tmp / "basis.npz")
        explained = np.concatenate(explained)
        meta = {
            "spec": asdict(self.spec), "root": str(self.root.resolve()), "n_songs": n,
            "n_requested": len(self.song_ids),
            "explained_variance": {"mean": float(explained.mean()), "std": float(explained.std()),
                                   "min": float(explained.min()), "max": float(explained.max())},
            "report": report.summary(), "missing_folders": _missing_folders(report, self.song_ids),
            "mean": mean.tolist(), "std": std.tolist(),
        }
        if ws.basis_path.is_file():
            meta["basis_explained_variance"] = GlobalTimeBasis.load(ws.basis_path).explained_variance_ratio
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))


def build_features(root: str | Path, spec: FeatureSpec, cache_dir: str | Path,
                   song_ids: Sequence[int], workers: int = 0) -> MelFeatures:
    """The store for these songs' mels under `cache_dir`, built (resuming an interrupted build) unless it exists."""
    builder = StoreBuilder(root, spec, cache_dir, song_ids)
    if builder.built():
        return MelFeatures(builder.folder)
    builder.check_disk()
    with worker_map(workers) as mapper:
        for _ in builder.run(mapper, builder.todo()):
            pass
    return builder.merge()


def _missing_folders(report: MelReport, song_ids: np.ndarray) -> list[int]:
    """arena_mel folders (song_id // 1000) none of whose catalogue songs has a file, e.g. the real 225."""
    missing = np.asarray(report.items("missing"), dtype=np.int64)
    folders, wanted = np.unique(song_ids // 1000, return_counts=True)
    absent = dict(zip(*np.unique(missing // 1000, return_counts=True), strict=True))
    return [int(f) for f, n in zip(folders, wanted, strict=True) if absent.get(f, 0) == n]


def feature_moments(total: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-(band, component) mean and std from float64 sums over n rows; std floored at 1e-6."""
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
