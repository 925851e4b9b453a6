"""Mel features: every song's (48, 1876) mel reduced to (48, k) by PCA over time, in one memory-mapped store.

A store is a folder, built once per (data root, PCA settings) and reused across runs:

    features.npy   (N, 48, k) float16, memory-mapped at training time
    song_ids.npy   (N,) int64, sorted: row i holds song song_ids[i]
    basis.npz      the fitted time basis (global mode only)
    report.json    missing, unreadable, odd-shaped, non-finite and all-zero mel files, counted and listed
    meta.json      settings, explained variance, per-(band, component) mean and std; written last

It is built in a temporary sibling folder and renamed into place, so a half-built store never looks complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from mri.data.melon import N_FRAMES, N_MELS, BadMel, MelReport, load_mel, mel_path
from mri.data.pca import GlobalTimeBasis, per_song_pca

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODES = ("per_song", "global")


@dataclass(frozen=True)
class FeatureSpec:
    """How mels become features; every field is part of the store's cache key."""

    mode: str = "per_song"  # per_song | global
    n_components: int = 20
    n_frames: int = N_FRAMES  # mels of other lengths are cropped or padded to this
    basis_songs: int = 2000  # global mode: songs the time basis is fitted on (evenly spaced)
    chunk: int = 256  # songs per PCA batch

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown PCA mode {self.mode!r}; choose one of {', '.join(MODES)}")

    def key(self, root: Path) -> str:
        meta = root / "song_meta.json"
        stat = meta.stat()
        spec = {k: v for k, v in asdict(self).items() if k != "chunk"}
        ident = json.dumps([FORMAT_VERSION, str(root.resolve()), stat.st_size, stat.st_mtime_ns, spec])
        return f"{self.mode}-k{self.n_components}-{hashlib.sha1(ident.encode()).hexdigest()[:12]}"


class MelFeatures:
    """A built feature store, opened read-only and memory-mapped."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
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


def build_features(root: str | Path, spec: FeatureSpec, cache_dir: str | Path,
                   song_ids: Sequence[int]) -> MelFeatures:
    """The store for these songs' mels under `cache_dir`, built unless an identical one exists."""
    root = Path(root)
    folder = Path(cache_dir) / spec.key(root)
    if (folder / "meta.json").is_file():
        return MelFeatures(folder)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    song_ids = np.asarray(sorted(song_ids), dtype=np.int64)
    report = MelReport()
    basis = _fit_basis(root, spec, song_ids, tmp) if spec.mode == "global" else None

    staged = np.lib.format.open_memmap(tmp / "staged.npy", "w+", np.float16, (len(song_ids), N_MELS, spec.n_components))
    kept, explained = [], []
    for ids, mels in _read_chunks(root, song_ids, spec, report):
        feats, ratio = per_song_pca(mels, spec.n_components) if basis is None else basis.transform(mels)
        staged[len(kept):len(kept) + len(ids)] = feats
        kept.extend(ids)
        explained.extend(ratio)
    n = len(kept)
    if n == 0:
        shutil.rmtree(tmp)
        raise BadMel("missing", f"no readable mel file among {len(song_ids)} songs under {root / 'arena_mel'}")
    features = np.lib.format.open_memmap(tmp / "features.npy", "w+", np.float16, (n, N_MELS, spec.n_components))
    features[:] = staged[:n]
    features.flush()
    mean, std = _moments(features)
    del staged, features
    (tmp / "staged.npy").unlink()
    np.save(tmp / "song_ids.npy", np.asarray(kept, dtype=np.int64))
    report.write(tmp / "report.json")
    explained = np.asarray(explained)
    meta = {
        "spec": asdict(spec), "root": str(root.resolve()), "n_songs": n, "n_requested": len(song_ids),
        "explained_variance": {"mean": float(explained.mean()), "std": float(explained.std()),
                               "min": float(explained.min()), "max": float(explained.max())},
        "report": report.summary(), "mean": mean.tolist(), "std": std.tolist(),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    os.replace(tmp, folder)
    log.info("mel features: %d of %d songs, %s PCA keeps %.1f%% of the variance (mean per song); %s",
             n, len(song_ids), spec.mode, 100 * explained.mean(), report.summary())
    return MelFeatures(folder)


def _read_chunks(root: Path, song_ids: np.ndarray, spec: FeatureSpec,
                 report: MelReport) -> Iterator[tuple[list[int], np.ndarray]]:
    """Readable mels in chunks: (ids, (n, 48, n_frames) float32); bad files go to the report."""
    for start in range(0, len(song_ids), spec.chunk):
        ids, mels = [], []
        for song in song_ids[start:start + spec.chunk]:
            try:
                mel = load_mel(mel_path(root, int(song)), spec.n_frames)
            except BadMel as err:
                report.add(int(song), err.reason, err.detail)
                continue
            if mel.odd_length:
                report.add(int(song), "odd_length", f"{mel.frames} frames")
            ids.append(int(song))
            mels.append(mel.data)
        if ids:
            yield ids, np.stack(mels)


def _fit_basis(root: Path, spec: FeatureSpec, song_ids: np.ndarray, folder: Path) -> GlobalTimeBasis:
    """Fit the shared time basis on evenly spaced songs; saved beside the features."""
    step = max(1, len(song_ids) // spec.basis_songs)
    basis = GlobalTimeBasis(spec.n_frames)
    for _, mels in _read_chunks(root, song_ids[::step][:spec.basis_songs], spec, MelReport()):
        basis.partial_fit(mels)
    basis.finish(spec.n_components)
    basis.save(folder / "basis.npz")
    return basis


def _moments(features: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Per-(band, component) mean and std over all rows, in float64 chunks; std floored at 1e-6."""
    total = np.zeros(features.shape[1:])
    squares = np.zeros(features.shape[1:])
    for start in range(0, len(features), chunk):
        block = features[start:start + chunk].astype(np.float64)
        total += block.sum(axis=0)
        squares += (block**2).sum(axis=0)
    mean = total / len(features)
    std = np.sqrt(np.maximum(squares / len(features) - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
