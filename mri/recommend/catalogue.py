"""The songs' titles, artists and genre names, looked up by song id: read from song_meta.json, or from the copy a
song index keeps of its own songs.

    catalogue = Catalogue.load(root, index_folder)   # the index's copy while song_meta.json is unchanged, else read
    catalogue.describe(song_id)                      # ("밤편지", "아이유", "발라드")

At the real size song_meta.json holds 707,989 records and reading them costs 18 s of every recommender's start.
`SongIndex.build` therefore writes, next to the vectors, one JSON line per song of the index in index order
(catalogue.jsonl) and the lines' byte offsets (catalogue_offsets.npy, (N + 1,) int64), with the size and
modification time of song_meta.json and genre_gn_all.json it read them from. Opening that copy maps two files; a
lookup reads one line. A root whose files changed since (or an index written before it kept a copy) is read the
slow way, with a log line saying how to make starts fast again.
"""
from __future__ import annotations

import json
import logging
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mri.data.melon import genre_name, read_genres, read_songs

log = logging.getLogger(__name__)

LINES, OFFSETS = "catalogue.jsonl", "catalogue_offsets.npy"
SOURCES = ("song_meta.json", "genre_gn_all.json")
UNKNOWN = ("?", "?", "?")


def song_descriptions(root: str | os.PathLike) -> dict[int, tuple[str, str, str]]:
    """song id -> (title, artists joined by ", ", genre names joined by ", ") for every song of song_meta.json."""
    genres = read_genres(root)
    return {s.id: (s.name, ", ".join(s.artists), ", ".join(genre_name(genres, g) for g in s.genres))
            for s in read_songs(root)}


def source_stamp(root: str | os.PathLike, names: Sequence[str] = SOURCES) -> dict[str, list[int]]:
    """(size, mtime_ns) of the root's files a copy is made from (default: the descriptions'): a copy made from
    other files is not used."""
    return {name: [(stat := (Path(root) / name).stat()).st_size, stat.st_mtime_ns] for name in names}


def write_catalogue(folder: Path, root: str | os.PathLike, song_ids: np.ndarray) -> dict:
    """Write the descriptions of song_ids (in that order) into folder; returns what the index's meta records."""
    described = song_descriptions(root)
    offsets = np.zeros(len(song_ids) + 1, dtype=np.int64)
    with open(folder / LINES, "wb") as f:
        for i, song_id in enumerate(song_ids.tolist()):
            offsets[i + 1] = offsets[i] + f.write(
                json.dumps(described.get(song_id, UNKNOWN), ensure_ascii=False).encode() + b"\n")
    np.save(folder / OFFSETS, offsets)
    return {"sources": source_stamp(root), "songs": len(song_ids)}


class Catalogue:
    """root: the Melon root (where the songs' mel files are: mel_path); describe(song_id): (title, artists, genres)."""

    def __init__(self, root: str | os.PathLike, songs: dict[int, tuple[str, str, str]]):
        self.root, self.songs = Path(root), songs

    @classmethod
    def load(cls, root: str | os.PathLike, index_folder: str | os.PathLike | None = None) -> Catalogue:
        """The copy in index_folder when it was made from root's files as they are now, else song_meta.json read."""
        if index_folder is not None and all((Path(root) / name).is_file() for name in SOURCES):  # else: read says
            folder = Path(index_folder)
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("catalogue")
            if meta and meta["sources"] == source_stamp(root):
                return IndexCatalogue(root, folder, np.load(folder / "song_ids.npy"))
            why = "keeps no copy of the songs' titles" if not meta else f"was built before {root}'s song files changed"
            log.warning("song index %s %s: reading song_meta.json (18 s at the real size); rebuild the index "
                        "(python recommend.py build_index=true) to start without it", folder, why)
        return cls(root, song_descriptions(root))

    def describe(self, song_id: int) -> tuple[str, str, str]:
        return self.songs.get(song_id, UNKNOWN)


class IndexCatalogue(Catalogue):
    """The descriptions an index keeps: memory-mapped lines, one read per lookup."""

    def __init__(self, root: str | os.PathLike, folder: Path, song_ids: np.ndarray):
        super().__init__(root, {})
        self.offsets = np.load(folder / OFFSETS, mmap_mode="r")  # (N + 1,)
        with open(folder / LINES, "rb") as f:
            self.lines = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.offsets[-1] else b""
        self.order = np.argsort(song_ids, kind="stable")  # rows by song id
        self.sorted_ids = song_ids[self.order]

    def describe(self, song_id: int) -> tuple[str, str, str]:
        at = int(np.searchsorted(self.sorted_ids, song_id))
        if at == len(self.sorted_ids) or self.sorted_ids[at] != song_id:
            return UNKNOWN
        row = int(self.order[at])
        return tuple(json.loads(self.lines[self.offsets[row]:self.offsets[row + 1]]))
