"""The resumable half of building a feature store: the catalogue cut into parts, each featurised and saved alone.

A workspace is a folder beside the store it will become:

    plan.json          the catalogue (count and digest of its song ids), part size, PCA settings
    basis.npz          the global time basis (global mode), fitted once and reused
    parts/000042.npz   features, song ids, explained variance and bad-file report of part 42

A part file appears only once it is whole (written to a temporary name, flushed to disk, renamed), so a
run killed at any moment leaves finished parts and nothing that looks finished but is not. Running again
redoes only the missing parts; the same part always holds the same songs, so the merged store is
identical whatever was interrupted, whichever worker or shard did a part.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import resource
import signal
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from mri.data.melon import N_MELS, BadMel, MelReport, load_mel, mel_path
from mri.data.pca import GlobalTimeBasis, per_song_pca
from mri.utils.atomic import write_atomically, write_text_atomically

READ_AHEAD = 2  # chunks each process reads ahead of its arithmetic, one reader thread each
PART_SIZE = 512  # songs per part: the unit of work, of resuming and of sharding (~1 MB of features)


class Part(NamedTuple):
    """What one finished part holds."""

    song_ids: np.ndarray  # (n,) int64, the part's readable songs
    features: np.ndarray  # (n, 48, k) float16
    explained: np.ndarray  # (n,) float64, explained variance ratio per song
    report: MelReport  # the part's skipped and cropped/padded files


@dataclass(frozen=True)
class PartJob:
    """Everything a worker needs to featurise one part (picklable: sent to worker processes)."""

    index: int
    root: Path
    song_ids: np.ndarray  # (m,) the part's songs, readable or not
    n_frames: int
    n_components: int
    chunk: int
    basis: GlobalTimeBasis | None  # None: per-song PCA


class PartDone(NamedTuple):
    n_songs: int  # songs of the part, readable or not
    peak_rss_mb: float  # peak resident memory of the process that did it


class IncompleteBuild(RuntimeError):
    """A merge asked for before every part of the catalogue is featurised."""


class DamagedPart(IncompleteBuild):
    """A part file that cannot be read back (a disk fault after it was written); it has been removed."""


class Workspace:
    """The unfinished build of one feature store: its plan, basis and finished parts."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.parts_dir = self.folder / "parts"
        self.basis_path = self.folder / "basis.npz"
        self.part_size = json.loads((self.folder / "plan.json").read_text())["part_size"]

    @classmethod
    def open(cls, folder: str | Path, song_ids: np.ndarray, spec: dict, part_size: int = PART_SIZE) -> Workspace:
        """The workspace for this catalogue and spec, created if absent.

        An existing one keeps the part size it was started with (so a resumed run cuts the catalogue the
        same way); one started for another catalogue or spec is an error naming the folder.
        """
        folder = Path(folder)
        plan = {"n_songs": len(song_ids), "ids_sha1": _digest(song_ids), "spec": spec, "part_size": part_size}
        if (folder / "plan.json").is_file():
            old, same = json.loads((folder / "plan.json").read_text()), ("n_songs", "ids_sha1", "spec")
            if {k: old[k] for k in same} != {k: plan[k] for k in same}:
                raise ValueError(f"{folder} holds an unfinished build of other songs or settings; "
                                 "delete that folder to start again")
            return cls(folder)
        (folder / "parts").mkdir(parents=True, exist_ok=True)
        write_text_atomically(folder / "plan.json", json.dumps(plan, indent=1))
        return cls(folder)

    def n_parts(self, n_songs: int) -> int:
        return -(-n_songs // self.part_size)

    def part_ids(self, song_ids: np.ndarray, index: int) -> np.ndarray:
        return song_ids[index * self.part_size:(index + 1) * self.part_size]

    def part_path(self, index: int) -> Path:
        return self.parts_dir / f"{index:06d}.npz"

    def clear_unfinished(self) -> None:
        """Remove the temporary files of parts a killed run was writing (call only when no other run is active)."""
        for tmp in self.parts_dir.glob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)

    def done(self, index: int) -> bool:
        return self.part_path(index).is_file()

    def part_length(self, index: int) -> int:
        """Songs the finished part holds; a damaged part file is removed (the next run redoes it)."""
        try:
            with np.load(self.part_path(index), allow_pickle=False) as z:
                return len(z["song_ids"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            self.part_path(index).unlink(missing_ok=True)
            raise DamagedPart(f"part {index} of {self.folder} was damaged ({type(err).__name__}: {err}) and is "
                              "removed: run the same command again to redo it") from None

    def save_basis(self, basis: GlobalTimeBasis) -> None:
        write_atomically(self.basis_path, basis.save)

    def read_part(self, index: int) -> Part:
        with np.load(self.part_path(index), allow_pickle=False) as z:
            report = json.loads(str(z["report"]))
            return Part(z["song_ids"], z["features"], z["explained"],
                        MelReport(report["counts"], [tuple(e) for e in report["entries"]]))

    def write_part(self, index: int, part: Part) -> None:
        report = json.dumps({"counts": part.report.counts, "entries": part.report.entries}, ensure_ascii=False)
        write_atomically(self.part_path(index), lambda f: np.savez(
            f, song_ids=part.song_ids, features=part.features, explained=part.explained, report=np.array(report)))


def featurise_part(job: PartJob, workspace: Workspace) -> PartDone:
    """Read, reduce and save one part; bad files go to the part's report.

    BLAS runs one thread: the processes are the parallelism, and a matrix product's last bits depend on the
    thread count, which would make the store depend on where a part ran.
    """
    with threadpool_limits(1, user_api="blas"):
        part = _featurise(job)
    workspace.write_part(job.index, part)
    return PartDone(len(job.song_ids), _peak_rss_mb())


def _featurise(job: PartJob) -> Part:
    report = MelReport()
    kept, features, explained = [], [], []
    for ids, mels in _read_chunks(job.root, job.song_ids, job.n_frames, job.chunk, report):
        feats, ratio = per_song_pca(mels, job.n_components) if job.basis is None else job.basis.transform(mels)
        kept.append(ids)
        features.append(feats.astype(np.float16))
        explained.append(ratio)
    k = job.n_components
    return Part(np.concatenate(kept) if kept else np.zeros(0, np.int64),
                np.concatenate(features) if features else np.zeros((0, N_MELS, k), np.float16),
                np.concatenate(explained) if explained else np.zeros(0), report)


def basis_moments(root: Path, song_ids: np.ndarray, n_frames: int, chunk: int) -> GlobalTimeBasis:
    """The row moments of these songs' readable mels, as a basis to be summed (unreadable ones are skipped)."""
    moments = GlobalTimeBasis(n_frames)
    with threadpool_limits(1, user_api="blas"):  # the same bits wherever it runs, as in featurise_part
        for _, mels in _read_chunks(root, song_ids, n_frames, chunk, MelReport()):
            moments.partial_fit(mels)
    return moments


def _read_chunks(root: Path, song_ids: np.ndarray, n_frames: int, chunk: int,
                 report: MelReport) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Readable mels in chunks: (ids (n,), mels (n, 48, n_frames) float32); bad files go to the report.

    Reader threads load the next READ_AHEAD chunks while the caller reduces this one (file reads release
    the GIL): reading never waits for the arithmetic, and two reads in flight hide the disk's latency.
    Memory: READ_AHEAD + 1 chunks.
    """
    chunks = iter([song_ids[i:i + chunk] for i in range(0, len(song_ids), chunk)])
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="mel-reader") as reader:
        ahead = deque(reader.submit(_load_chunk, root, c, n_frames) for c in islice(chunks, READ_AHEAD))
        while ahead:
            ids, mels, skipped = ahead.popleft().result()
            ahead.extend(reader.submit(_load_chunk, root, c, n_frames) for c in islice(chunks, 1))
            for entry in skipped:
                report.add(*entry)
            if len(ids):
                yield ids, mels


def _load_chunk(root: Path, song_ids: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """(ids (n,), mels (n, 48, n_frames) float32, report entries in song order) of one chunk's files."""
    ids, mels, skipped = [], [], []
    for song in song_ids:
        try:
            mel = load_mel(mel_path(root, int(song)), n_frames)
        except BadMel as err:
            skipped.append((int(song), err.reason, err.detail))
            continue
        if mel.odd_length:
            skipped.append((int(song), "odd_length", f"{mel.frames} frames"))
        ids.append(int(song))
        mels.append(mel.data)
    stacked = np.stack(mels) if mels else np.zeros((0, N_MELS, n_frames), np.float32)
    return np.asarray(ids, dtype=np.int64), stacked, skipped


class Mapper(NamedTuple):
    """map-like calls over worker processes: `ordered` yields in input order, `unordered` as results come."""

    ordered: Callable[[Callable, Iterable], Iterator]
    unordered: Callable[[Callable, Iterable], Iterator]


@contextmanager
def worker_map(workers: int) -> Iterator[Mapper]:
    """A Mapper over `workers` processes (0: in this process).

    Spawned processes (not forked): the parent may hold torch's threads, which do not survive a fork.
    """
    if workers <= 0:
        yield Mapper(map, map)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_interrupts) as pool:
        yield Mapper(pool.imap, pool.imap_unordered)


def _ignore_interrupts() -> None:
    """Ctrl-C is the parent's to handle: it stops the pool; workers would only print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _digest(song_ids: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(song_ids, dtype=np.int64).tobytes()).hexdigest()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
