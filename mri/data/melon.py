"""Readers of the Melon Playlist Dataset as distributed (Ferraro et al., ICASSP 2021).

Layout of a root: song_meta.json, train.json, val.json, test.json, genre_gn_all.json and
arena_mel/{song_id // 1000}/{song_id}.npy. The readers take the files exactly as released, quirks
included (null album names, issue dates with 00 month/day, undeclared genre codes, masked val/test
playlists, missing, broken or odd-length mels), as the README's "Real datasets" lists them.
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mri.data.report import SkipReport
from mri.utils.errors import InputError

N_MELS = 48  # mel bands
N_FRAMES = 1876  # frames of 0:20-0:50 at 62.5 frames/s
SPLITS = ("train", "val", "test")
MEL_DIR = "arena_mel"
REQUIRED_FILES = ("song_meta.json", "train.json")


class DataRootError(FileNotFoundError):
    """A data root (Melon here; Flickr8k for FlickrRootError) that is missing, empty or lacks the files every
    reader needs: "<dataset> root <root> <problem>. <advice>"."""

    dataset = "Melon"

    def __init__(self, root: Path | None, problem: str):
        name = f"No {self.dataset} root" if root is None else f"{self.dataset} root {root}"
        super().__init__(f"{name} {problem}. {self.advice()}")
        self.root = root

    def advice(self) -> str:
        return ("Run `python train.py` with data=tag_mel (generated data) or obtain the Melon Playlist Dataset from "
                "MTG/melon-playlist-dataset and pass data.root=...")


def check_root(root: str | os.PathLike | None) -> Path:
    """Return `root` as a Path, or raise DataRootError saying what is wrong with it."""
    if root is None:
        raise DataRootError(None, "is given (data.root)")
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(root, "does not exist")
    if not any(root.iterdir()):
        raise DataRootError(root, "is empty")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise DataRootError(root, f"lacks {', '.join(missing)}")
    return root


def check_mel_root(root: str | os.PathLike | None) -> Path:
    """check_root, and the arena_mel/ folder the mels unpack to."""
    root = check_root(root)
    if not (root / MEL_DIR).is_dir():
        raise DataRootError(root, f"has no {MEL_DIR}/ folder: unpack arena_mel_{{0..39}}.tar there "
                                  f"({MEL_DIR}/{{song_id // 1000}}/{{song_id}}.npy)")
    return root


class MelonFormatError(InputError, ValueError):
    """A Melon JSON file that is truncated or not Melon's; the message names the file and its first bad record."""


SONG_FIELDS = ("id",)  # what every song_meta.json record has (the others may be absent or null)
PLAYLIST_FIELDS = ("id", "tags", "songs")  # what every train/val/test.json record has (val/test: maybe empty)


def _read_json(path: Path, object_hook=None):
    """json.load, with a MelonFormatError saying where a truncated or non-JSON file goes wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_hook=object_hook)
    except json.JSONDecodeError as err:
        with open(path, "rb") as f:
            f.seek(max(0, err.pos - 60))
            near = f.read(80).decode("utf-8", "replace")
        raise MelonFormatError(
            f"{path} is not whole JSON: {err.msg} (line {err.lineno}, column {err.colno}, byte {err.pos:,} of "
            f"{path.stat().st_size:,}, near {near!r}). A file cut short by an interrupted download or unpacking "
            "ends like this: fetch or unpack it again") from None
    except UnicodeDecodeError as err:
        raise MelonFormatError(f"{path} is not UTF-8 text (byte {err.start:,}): is it a Melon JSON file?") from None


class _RecordCheck:
    """Checks each record of a Melon JSON list as it is parsed (a json object_hook): fields and integer id."""

    def __init__(self, path: Path, fields: tuple[str, ...], kind: str):
        self.path, self.fields, self.kind = path, fields, kind
        self.ids: list[int] = []  # of the records checked so far, in file order

    def __call__(self, record: dict) -> dict:
        missing = [f for f in self.fields if f not in record]
        ident = record.get("id")
        if missing or not _is_int(ident):
            what = (f"lacks the field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}" if missing
                    else f"has the id {ident!r}, not an integer")
            raise MelonFormatError(
                f"record {len(self.ids)} of {self.path} ({'id ' + repr(ident) if _is_int(ident) else 'no integer id'}) "
                f"{what}; its fields are {', '.join(map(repr, record))}. A Melon {self.kind} record has "
                f"{', '.join(map(repr, self.fields))}: is this the release's {self.path.name}?")
        self.ids.append(ident)
        return record


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_records(path: Path, fields: tuple[str, ...], kind: str, object_hook=None) -> list:
    """A Melon JSON list, each record checked (then passed through `object_hook`), duplicated ids refused."""
    check = _RecordCheck(path, fields, kind)
    hook = check if object_hook is None else (lambda r: object_hook(check(r)))
    records = _read_json(path, hook)
    if not isinstance(records, list):
        raise MelonFormatError(f"{path} holds a JSON {type(records).__name__}, not the list of {kind} records "
                               "a Melon file is")
    _refuse_duplicates(path, np.asarray(check.ids, dtype=np.int64), kind)
    return records


def _refuse_duplicates(path: Path, ids: np.ndarray, kind: str) -> None:
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(same):
        first, second = sorted(order[same[0]:same[0] + 2])
        raise MelonFormatError(f"{path}: records {first} and {second} are both {kind} id {int(ids[first])} "
                               f"({len(same)} duplicated ids in all); a Melon file lists each {kind} once")


@dataclass(frozen=True)
class Song:
    """One record of song_meta.json."""

    id: int
    name: str
    artists: tuple[str, ...]
    album: str | None  # null for a few songs
    album_id: int | None
    genres: tuple[str, ...]  # major codes GNxx00, may hold undeclared ones such as GN9000
    detail_genres: tuple[str, ...]  # detail codes GNxxyy
    issue_date: int  # yyyymmdd as in the file; month and day may be 00 (19860000); 0 if absent

    @property
    def date(self) -> datetime.date | None:
        """Issue date, month or day 00 read as 1; None when the int is not a date."""
        year, month, day = self.issue_date // 10000, self.issue_date // 100 % 100, self.issue_date % 100
        try:
            return datetime.date(year, month or 1, day or 1)
        except ValueError:  # year 0, month 13, Feb 30, ...
            return None

    @classmethod
    def from_record(cls, r: dict) -> Song:
        return cls(
            id=int(r["id"]),
            name=r.get("song_name") or "",
            artists=tuple(r.get("artist_name_basket") or ()),
            album=r.get("album_name"),
            album_id=r.get("album_id"),
            genres=tuple(r.get("song_gn_gnr_basket") or ()),
            detail_genres=tuple(r.get("song_gn_dtl_gnr_basket") or ()),
            issue_date=int(r.get("issue_date") or 0),
        )


def read_songs(root: str | os.PathLike) -> list[Song]:
    """All songs of song_meta.json, in file order (ids 0..n-1 in the release); MelonFormatError for a bad file."""
    return _read_records(check_root(root) / "song_meta.json", SONG_FIELDS, "song", Song.from_record)


def read_song_ids(root: str | os.PathLike) -> np.ndarray:
    """The ids of song_meta.json, sorted: (n,) int64, without keeping the records (a few MB for 707,989 songs)."""
    path = check_root(root) / "song_meta.json"
    ids = _read_records(path, SONG_FIELDS, "song", lambda r: r["id"])  # each record becomes its id once read
    return np.sort(np.asarray(ids, dtype=np.int64))


@dataclass(frozen=True)
class Playlist:
    """One record of train/val/test.json; val and test records have some fields emptied."""

    id: int
    title: str
    tags: tuple[str, ...]  # raw free text: case, spacing and spelling variants kept
    songs: tuple[int, ...]
    like_cnt: int
    updt_date: str  # "2013-12-19 18:36:19.000"

    @classmethod
    def from_record(cls, r: dict) -> Playlist:
        return cls(
            id=int(r["id"]),
            title=r.get("plylst_title") or "",
            tags=tuple(r.get("tags") or ()),
            songs=tuple(int(s) for s in r.get("songs") or ()),
            like_cnt=int(r.get("like_cnt") or 0),
            updt_date=r.get("updt_date") or "",
        )


def read_playlists(root: str | os.PathLike, split: str = "train") -> list[Playlist]:
    """Playlists of one split: "train", "val" or "test"."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    path = check_root(root) / f"{split}.json"
    if not path.is_file():
        raise DataRootError(path.parent, f"lacks {path.name}")
    playlists = _read_records(path, PLAYLIST_FIELDS, "playlist")
    for i, record in enumerate(playlists):
        songs, tags = record["songs"], record["tags"]
        if not (isinstance(songs, list) and all(map(_is_int, songs))):
            raise MelonFormatError(f"record {i} of {path} (playlist {record['id']}): 'songs' must be a list of "
                                   f"integer song ids, not {str(songs)[:80]}")
        if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise MelonFormatError(f"record {i} of {path} (playlist {record['id']}): 'tags' must be a list of "
                                   f"strings, not {str(tags)[:80]}")
        playlists[i] = Playlist.from_record(record)
    return playlists


def check_playlist_songs(root: str | os.PathLike, split: str, playlists: Sequence[Playlist],
                         song_ids: np.ndarray) -> None:
    """MelonFormatError naming the first playlist of `split` that holds a song song_meta.json lacks.

    song_ids: sorted (read_song_ids). The release has no such song; a copy mixing files of two releases does.
    """
    ends = np.cumsum(np.fromiter((len(p.songs) for p in playlists), np.int64, len(playlists)))  # (P,)
    songs = np.fromiter((s for p in playlists for s in p.songs), np.int64, int(ends[-1]) if len(ends) else 0)
    pos = np.searchsorted(song_ids, songs).clip(max=max(len(song_ids) - 1, 0))
    unknown = np.flatnonzero(song_ids[pos] != songs) if len(song_ids) else np.arange(len(songs))
    if len(unknown):
        i = int(np.searchsorted(ends, unknown[0], side="right"))  # the playlist holding the first one
        raise MelonFormatError(
            f"record {i} of {Path(root) / f'{split}.json'} (playlist {playlists[i].id}) holds song "
            f"{int(songs[unknown[0]])}, which {Path(root) / 'song_meta.json'} lacks ({len(unknown):,} such entries in "
            "all): the files come from different copies, or song_meta.json was cut; use the song_meta.json "
            "released with these playlists")


def read_genres(root: str | os.PathLike) -> dict[str, str]:
    """genre_gn_all.json: genre code -> Korean name (major GNxx00 and detail codes)."""
    return dict(_read_json(check_root(root) / "genre_gn_all.json"))


def genre_name(genres: dict[str, str], code: str) -> str:
    """Name of a genre code, or "GN9000 (undeclared)" for a code the genre file lacks."""
    return genres.get(code, f"{code} (undeclared)")


def mel_path(root: str | os.PathLike, song_id: int) -> Path:
    """root/arena_mel/{song_id // 1000}/{song_id}.npy, as the tar files unpack."""
    return Path(root) / MEL_DIR / str(song_id // 1000) / f"{song_id}.npy"


class BadMel(Exception):
    """A mel file that cannot be used; `reason` is one of BAD_MEL_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


BAD_MEL_REASONS = ("missing", "unreadable", "shape", "non_finite", "all_zero")


class Mel(NamedTuple):
    """A loaded mel cropped or padded to the asked length, with its length in the file."""

    data: np.ndarray  # (N_MELS, n_frames) float32 dB
    frames: int  # frames in the file

    @property
    def odd_length(self) -> bool:
        return self.frames != self.data.shape[1]


_NPY_HEADERS: dict[bytes, tuple[tuple[int, ...], bool, np.dtype]] = {}  # header bytes -> (shape, fortran, dtype)


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """np.load of one .npy without pickles, in one read, parsing each distinct header once (read-only array).

    A catalogue's 707,989 files share a handful of headers; np.load parses every one again, which costs
    about as much as reducing the mel. ValueError for anything that is not a whole .npy of plain values.
    """
    with open(path, "rb", buffering=0) as f:
        raw = f.read()
    size = 2 if raw[6:7] == b"\x01" else 4  # header length field: 2 bytes in format 1.0, 4 in 2.0 and 3.0
    end = 8 + size + int.from_bytes(raw[8:8 + size], "little")
    header = _NPY_HEADERS.get(raw[:end])
    if header is None:
        buf = io.BytesIO(raw)
        version = np.lib.format.read_magic(buf)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        header = _NPY_HEADERS.setdefault(raw[:end], read(buf))
    shape, fortran, dtype = header
    if dtype.hasobject:
        raise ValueError("the file holds pickled Python objects, not numbers")
    count = math.prod(shape)
    if len(raw) - end < count * dtype.itemsize:
        raise ValueError(f"truncated: {len(raw) - end} data bytes for {shape} {dtype}")
    return np.frombuffer(raw, dtype, count, offset=end).reshape(shape, order="F" if fortran else "C")


def load_mel(path: str | os.PathLike, n_frames: int = N_FRAMES) -> Mel:
    """Read one mel .npy of any float dtype; raise BadMel when it cannot be used.

    Length rule: a file with more frames keeps the first `n_frames`; one with fewer is padded at the
    end with its minimum value (the dB floor).
    """
    path = Path(path)
    try:
        a = read_npy(path)
    except FileNotFoundError:
        raise BadMel("missing", str(path)) from None
    except (ValueError, OSError, EOFError) as e:  # truncated, not .npy, pickled objects
        raise BadMel("unreadable", f"{type(e).__name__}: {e}") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise BadMel("unreadable", f"not a numeric array: {getattr(a, 'dtype', type(a).__name__)}")
    if a.ndim != 2 or a.shape[0] != N_MELS or a.shape[1] == 0:
        raise BadMel("shape", str(a.shape))
    a = a.astype(np.float32, copy=False)  # (N_MELS, T)
    lo, hi = a.min(), a.max()  # NaN and inf show in these: two cheap passes instead of an isfinite mask
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise BadMel("non_finite", f"{np.count_nonzero(~np.isfinite(a))} values")
    if lo == 0 and hi == 0:
        raise BadMel("all_zero")
    frames = a.shape[1]
    if frames > n_frames:
        a = a[:, :n_frames]
    elif frames < n_frames:
        a = np.pad(a, ((0, 0), (0, n_frames - frames)), constant_values=lo)
    return Mel(np.ascontiguousarray(a), frames)  # (N_MELS, n_frames)


MEL_REPORT_REASONS = BAD_MEL_REASONS + ("odd_length",)


class MelReport(SkipReport):
    """Which mels were skipped (or cropped/padded) and why, mergeable across shards; items are int song ids.

    odd_length files are cropped or padded, not skipped: n_skipped counts BAD_MEL_REASONS only.
    """

    REASONS = MEL_REPORT_REASONS
    ITEM = int

    @property
    def n_skipped(self) -> int:
        return sum(self.counts[r] for r in BAD_MEL_REASONS)

    def summary(self) -> str:
        bad = ", ".join(f"{r} {self.counts[r]}" for r in BAD_MEL_REASONS if self.counts[r])
        return f"mels skipped: {self.n_skipped}" + (f" ({bad})" if bad else "") + (
            f"; odd length (cropped/padded): {self.counts['odd_length']}"
        )
