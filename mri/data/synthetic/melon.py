"""Generator of Melon Playlist Dataset files (layout and field names of the real release).

Every song has a primary theme and mixes in a secondary one in its own measure (a few sound like
another theme entirely); its mel carries the themes' sounds with noise, its metadata their words and
genres.
Playlists draw a theme, tags from it and mostly songs from it. The ground truth lies beside the
Melon files in `mri_synthetic.json`; the readers never need it.
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from mri.data.melon import MEL_DIR, N_FRAMES, N_MELS, SPLITS, mel_path
from mri.data.synthetic import melon_stats
from mri.data.synthetic.atomic import MARKER, generate_atomically  # noqa: F401 (MARKER: re-exported)
from mri.data.synthetic.themes import (
    GENERIC_LEANINGS,
    GENERIC_TAGS,
    SPELLING_VARIANTS,
    THEMES,
    TITLE_WORDS,
    Sound,
    mood_affinity,
)

TRUTH_FILE = "mri_synthetic.json"
FORMAT_VERSION = 3  # 3: realistic Korean playlist titles (situation, mood, kind of music)

# Real major genres (genre_gn_all.json); the songs' themes use a subset.
MAJOR_GENRES = {
    "GN0100": "발라드", "GN0200": "댄스", "GN0300": "랩/힙합", "GN0400": "R&B/Soul",
    "GN0500": "인디음악", "GN0600": "록/메탈", "GN0700": "성인가요", "GN0800": "포크/블루스",
    "GN0900": "POP", "GN1000": "록/메탈", "GN1100": "일렉트로니카", "GN1200": "랩/힙합",
    "GN1300": "R&B/Soul", "GN1400": "포크/블루스/컨트리", "GN1500": "OST", "GN1600": "클래식",
    "GN1700": "재즈", "GN1800": "뉴에이지", "GN1900": "J-POP", "GN2000": "월드뮤직",
    "GN2100": "CCM", "GN2200": "어린이/태교", "GN2300": "종교음악", "GN2400": "국악",
    "GN2500": "아이돌", "GN2900": "뮤지컬",
}
# Detail genres (GNxx02...) as in the real file where known; the other majors get eras.
DETAIL_GENRES = {
    "GN0300": ("랩 스타일", "보컬 스타일", "언더그라운드 힙합", "시대별"),
    "GN0400": ("어반", "R&B"),
    "GN0500": ("포크", "록", "일렉", "힙합", "발라드", "'90", "'00", "'10-"),
    "GN0900": ("얼터너티브팝", "올디스", "월드팝", "'60-'70", "'80-'90", "'00", "'10-"),
    "GN1500": ("국내영화", "국외영화", "국내드라마"),
    "GN2500": ("남자 아이돌", "여자 아이돌", "랩/힙합", "발라드", "댄스"),
    "GN2900": ("국내뮤지컬",),
}
ERA_DETAILS = ("'80", "'90", "'00", "'10-")
UNDECLARED_GENRE = "GN9000"  # carried by some real songs, absent from genre_gn_all.json
SECOND_GENRE_RATE = 0.13  # real: 87% of songs have one major genre, 13% two

# Default rates of the real quirks; each quirk present at least once when quirks=True.
QUIRK_RATES = {
    "missing_mel": 0.005,
    "corrupt_mel": 0.003,  # truncated .npy or a text file named .npy
    "odd_length": 0.003,  # another number of frames than 1876
    "all_zero_mel": 0.002,
    "zero_month_day": 0.01,  # issue_date such as 19860000 or 19860500
    "null_album": 0.005,
    "undeclared_genre": 0.005,  # GN9000
}
_MEL_QUIRKS = ("missing_mel", "corrupt_mel", "odd_length", "all_zero_mel")  # disjoint song sets
ODD_FRAMES = (1500, 1860, 1870, 1875, 1877, 1880, 1900)

# Mel synthesis, all in dB (20*log10 power, floored as Essentia does).
FRAME_RATE = 62.5  # frames per second (16 kHz, hop 256)
DB_FLOOR = -100.0
LEVEL_DB = -45.0  # mean song level
GAIN_DB = 1.0  # sd of the per-song level
BASE_SPECTRUM = np.linspace(10.0, -25.0, N_MELS)  # (N_MELS,) music loses energy towards high bands
BEAT_BANDS = np.linspace(1.0, 0.5, N_MELS)  # (N_MELS,) beats hit the bass bands hardest
BEAT_DECAY = 6.0  # per beat period: how fast an onset fades
TIMBRE_DB = 1.0  # sd of the per-song smooth spectral deviation
TIMBRE_KNOTS = 6
ENVELOPE_DB = 3.0  # amplitude of the slow loudness swell
NOISE_DB = 3.0  # sd of the per-bin noise

SPLIT_SHARES = (0.775, 0.155, 0.07)  # real: 115,071 / 23,015 / 10,740 playlists
TAG_COUNTS, TAG_COUNT_P = (1, 2, 3, 4, 5), (0.2, 0.25, 0.25, 0.15, 0.15)
GENERIC_TAG_RATE = 0.05
CROSS_TAG_RATE = 0.01
VARIANT_RATE = 0.1  # of the tags that have spelling variants
MIN_SONGS, MAX_SONGS = 10, 60
POPULARITY_SIGMA = {"themes": 1.0, "melon": 1.5}  # lognormal song popularity; "melon": ~13% of songs in no playlist
AFFINITY = mood_affinity()  # (k, k): how off-theme choices (songs, tags, second themes) are drawn
LEANING_RATE = 0.8  # share of generic tags taken from the theme's leanings

SONG_CHUNK = 10_000  # song_meta.json records per worker task

VARIOUS_ARTISTS = (2727, "Various Artists")  # the real id of the real name
ARTIST_ID0 = 100_000
ALBUMS_PER_ARTIST = 5

# Streams of the per-item random generators: rng = default_rng([seed, stream, item id]).
_PLAN, _SONG, _MEL, _ARTIST, _ALBUM, _PLAYLIST, _MASK = range(7)

_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_SYLLABLES = "가나다라마바사아자하준민서연지수현우진영은예도윤희성혜소미리태경빛별솔"
_EN_WORDS = ("Blue", "Moon", "Star", "Echo", "Little", "Young", "Golden", "Paper", "Neon", "Velvet",
             "Silver", "Wild", "Sweet", "Lazy", "Electric", "Northern", "Honey", "Crystal")
_EN_NOUNS = ("Days", "Dreams", "Lights", "Kids", "Birds", "Hearts", "Waves", "Roads", "Stories", "Cats")
_KO_TITLE = ("{w}", "{w} 속으로", "{w}의 기억", "{w} 이야기", "{w}같은 너", "너와 {w}", "{w}에게",
             "{w} 노래")
_EN_TITLE = ("{W}", "{A} {W}", "My {W}", "{W} Song", "{W} and You", "Into the {W}")
_ALBUM_TITLE = ("{W}", "{A} {W}", "{w}", "1st Mini Album '{W}'", "{w} (Single)", "The {A} {N}")
# Playlist titles as real users write them: where/when (s), mood (m), kind of music (k), first tag (t).
_PLAYLIST_TITLE = ("{s} 듣기 좋은 {m} {k}", "{s} 듣기좋은 {k}", "{s} {m} {k}", "{t} {m} {k}", "{m} {k} 모음",
                   "{s} 듣는 {k}", "{t} 플레이리스트", "{s} 꼭 들어야 할 {k}", "나만의 {t} {k}", "{W} mood",
                   "내가 좋아하는 노래")
_MASKS = ("songs_only", "tags_title", "title_only", "half")  # how val/test playlists are emptied


def _rng(seed: int, stream: int, item: int = 0) -> np.random.Generator:
    """Independent generator per (seed, stream, item): output never depends on the order of work."""
    return np.random.default_rng([seed, stream, item])


def _pick(rng: np.random.Generator, seq):
    return seq[rng.integers(len(seq))]


# ---------------------------------------------------------------------------------------------
# The plan: every random choice that links songs and playlists, made once from the seed.


class _Plan:
    """Per-song themes, mixes, popularity and quirks; per-playlist themes and splits."""

    def __init__(self, n_songs, n_playlists, seed, secondary_rate, noise_rate, quirk_rates, write_mels, mel_dtype,
                 statistics="themes"):
        rng, k = _rng(seed, _PLAN), len(THEMES)
        self.statistics = statistics
        self.tag_vocabulary = melon_stats.LongTailTags(seed) if statistics == "melon" else None
        self.mel_dtype = np.dtype(mel_dtype)
        self.theme = rng.integers(0, k, n_songs)  # (S,) primary theme index
        noise = rng.random(n_songs) < noise_rate  # sounds entirely like another theme
        mixed = ~noise & (rng.random(n_songs) < secondary_rate)
        other = (AFFINITY[self.theme].cumsum(axis=1) > rng.random(n_songs)[:, None]).argmax(axis=1)  # (S,)
        self.secondary = np.where(mixed | noise, other, -1)  # (S,) -1: none
        self.weight = np.where(mixed, rng.uniform(0.2, 0.45, n_songs), noise.astype(float)).round(3)  # (S,)
        self.popularity = rng.lognormal(0.0, POPULARITY_SIGMA[statistics], n_songs)  # (S,)
        self.playlist_theme = rng.integers(0, k, n_playlists)  # (P,)
        if statistics == "melon":  # the release's counts
            self.split = melon_stats.split_of_playlists(rng, n_playlists)  # (P,)
        else:
            self.split = rng.choice(len(SPLITS), n_playlists, p=SPLIT_SHARES)  # (P,)

        self.quirks: dict[str, set[int]] = {}
        order = rng.permutation(n_songs)  # mel quirks take consecutive, hence disjoint, slices
        start = 0
        for name, rate in quirk_rates.items():
            count = min(n_songs, max(1, round(rate * n_songs))) if rate > 0 else 0
            if name in _MEL_QUIRKS:
                count = 0 if not write_mels else min(count, n_songs - start)
                ids, start = order[start : start + count], start + count
            else:
                ids = rng.choice(n_songs, count, replace=False)
            self.quirks[name] = {int(i) for i in ids}
        self.mel_quirk = {i: name for name in _MEL_QUIRKS for i in self.quirks.get(name, ())}
        self.frames = {i: int(rng.choice(ODD_FRAMES)) for i in self.quirks.get("odd_length", ())}

    def mix(self, song_id: int) -> list[tuple[Sound, float]]:
        """The weighted theme sounds a song's mel is made of."""
        primary, w = THEMES[self.theme[song_id]].sound, float(self.weight[song_id])
        if self.secondary[song_id] < 0:
            return [(primary, 1.0)]
        return [(primary, 1.0 - w), (THEMES[self.secondary[song_id]].sound, w)]


# ---------------------------------------------------------------------------------------------
# Mels


def _pulses(beats: np.ndarray) -> np.ndarray:
    """Onsets that fade within each beat; beats: (T,) position in beats."""
    return np.exp(-BEAT_DECAY * (beats % 1.0))


def render_mel(mix: list[tuple[Sound, float]], rng: np.random.Generator, n_frames: int = N_FRAMES) -> np.ndarray:
    """A dB mel (N_MELS, n_frames) float32 of weighted theme sounds, with a song's own noise."""
    t = np.arange(n_frames) / FRAME_RATE  # (T,) seconds
    knots = rng.normal(0.0, TIMBRE_DB, TIMBRE_KNOTS)
    timbre = np.interp(np.linspace(0, TIMBRE_KNOTS - 1, N_MELS), np.arange(TIMBRE_KNOTS), knots)  # (N_MELS,)
    bands = BASE_SPECTRUM + sum(w * s.profile() for s, w in mix) + timbre  # (N_MELS,)
    beat = sum(w * s.dynamics * _pulses(t * s.tempo + rng.random()) for s, w in mix)  # (T,)
    swell = ENVELOPE_DB * np.sin(2 * np.pi * t / rng.uniform(6, 20) + rng.uniform(0, 2 * np.pi))  # (T,)
    level = LEVEL_DB + rng.normal(0.0, GAIN_DB)
    mel = (
        level
        + bands[:, None]
        + BEAT_BANDS[:, None] * (beat - beat.mean())[None, :]
        + swell[None, :]
        + rng.normal(0.0, NOISE_DB, (N_MELS, n_frames))
    )  # (N_MELS, T)
    return np.clip(mel, DB_FLOOR, 0.0).astype(np.float32)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _mel_bytes(seed: int, song_id: int, mix, quirk: str | None, frames: int, dtype: np.dtype) -> bytes | None:
    """The bytes of one song's .npy (None: no file) in `dtype` (the release's is undocumented; its size says
    float32)."""
    if quirk == "missing_mel":
        return None
    if quirk == "all_zero_mel":
        return _npy_bytes(np.zeros((N_MELS, N_FRAMES), dtype))
    data = _npy_bytes(render_mel(mix, _rng(seed, _MEL, song_id), frames).astype(dtype))
    if quirk == "corrupt_mel":  # half of them truncated, half not .npy at all
        return data[: len(data) // 2] if song_id % 2 else b"<html>404 Not Found</html>\n"
    return data


def _write_mel_folder(root: Path, seed: int, plan: _Plan, folder: int) -> None:
    """Write the mels of songs folder*1000 ... folder*1000+999 (one arena_mel folder)."""
    for song_id in range(folder * 1000, min(folder * 1000 + 1000, len(plan.theme))):
        quirk = plan.mel_quirk.get(song_id)
        data = _mel_bytes(seed, song_id, plan.mix(song_id), quirk, plan.frames.get(song_id, N_FRAMES), plan.mel_dtype)
        if data is not None:
            path = mel_path(root, song_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


_worker_job: tuple[Path, int, _Plan] | None = None  # (root, seed, plan), sent once to each worker


def _start_worker(root: Path, seed: int, plan: _Plan) -> None:
    global _worker_job
    _worker_job = (root, seed, plan)


def _write_mel_folder_in_worker(folder: int) -> None:
    _write_mel_folder(*_worker_job, folder)


def _song_records_in_worker(ids: range) -> list[str]:
    root, seed, plan = _worker_job
    return [json.dumps(_song_record(seed, i, plan, _n_artists(len(plan.theme))), ensure_ascii=False) for i in ids]


def _n_artists(n_songs: int) -> int:
    return max(3 * len(THEMES), n_songs // 8)


def _write_song_meta(root: Path, seed: int, plan: _Plan, workers: int) -> None:
    """song_meta.json; with workers, records are made in worker processes and written in id order (same bytes)."""
    n_songs = len(plan.theme)
    with _JsonList(root / "song_meta.json") as songs:
        if workers <= 1:
            for song_id in range(n_songs):
                songs.append(_song_record(seed, song_id, plan, _n_artists(n_songs)))
            return
        chunks = [range(s, min(s + SONG_CHUNK, n_songs)) for s in range(0, n_songs, SONG_CHUNK)]
        with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(root, seed, plan)) as pool:
            for records in pool.map(_song_records_in_worker, chunks):
                for record in records:
                    songs.append_json(record)


def _write_mels(root: Path, seed: int, plan: _Plan, workers: int) -> None:
    (root / MEL_DIR).mkdir()
    folders = range(math.ceil(len(plan.theme) / 1000))
    if workers <= 1:
        for folder in folders:
            _write_mel_folder(root, seed, plan, folder)
        return
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(root, seed, plan)) as pool:
        list(pool.map(_write_mel_folder_in_worker, folders))


# ---------------------------------------------------------------------------------------------
# song_meta.json and genre_gn_all.json


def _detail_codes(major: str) -> dict[str, str]:
    names = ("세부장르전체",) + DETAIL_GENRES.get(major, ERA_DETAILS)
    return {f"{major[:4]}{i:02d}": name for i, name in enumerate(names, start=1)}


def genre_table() -> dict[str, str]:
    """genre_gn_all.json: every major code followed by its detail codes."""
    table = {}
    for major, name in MAJOR_GENRES.items():
        table[major] = name
        table.update(_detail_codes(major))
    return table


def _korean_name(rng) -> str:
    return _pick(rng, _SURNAMES) + "".join(_pick(rng, _SYLLABLES) for _ in range(2))


def _artist_name(seed: int, artist_id: int) -> str:
    rng = _rng(seed, _ARTIST, artist_id)
    style = rng.integers(3)
    if style == 0:  # a singer
        return _korean_name(rng)
    if style == 1:  # a Korean group
        return "".join(_pick(rng, _SYLLABLES) for _ in range(rng.integers(2, 4))) + _pick(rng, ("", "", " 밴드"))
    return f"The {_pick(rng, _EN_WORDS)} {_pick(rng, _EN_NOUNS)}"


def _title(rng, templates, theme) -> str:
    """A title from templates filled with the theme's tags (w) and scene words (W)."""
    return _pick(rng, templates).format(
        w=_pick(rng, theme.tags), W=_pick(rng, theme.scene_words).title(),
        A=_pick(rng, _EN_WORDS), N=_pick(rng, _EN_NOUNS),
    )


def _album(seed: int, album_id: int, theme) -> tuple[str, int]:
    """(album_name, issue_date) shared by every song of an album (album ids imply their theme)."""
    rng = _rng(seed, _ALBUM, album_id)
    day = datetime.date(1975, 1, 1) + datetime.timedelta(days=int(16_000 * rng.random() ** 0.5))
    return _title(rng, _ALBUM_TITLE, theme), day.year * 10000 + day.month * 100 + day.day


def _genres(rng, theme) -> tuple[list[str], list[str]]:
    """(major codes, detail codes) drawn from the theme, the first genre most often."""
    p = np.arange(len(theme.genres), 0, -1.0)
    majors = [theme.genres[rng.choice(len(theme.genres), p=p / p.sum())]]
    if rng.random() < SECOND_GENRE_RATE:
        majors.append(_pick(rng, [g for g in (*theme.genres, *MAJOR_GENRES) if g != majors[0]]))
    details = []
    for major in majors:
        codes = list(_detail_codes(major))
        details += [codes[0]] if rng.random() < 0.5 else [codes[0], _pick(rng, codes[1:])]
    return majors, details


def _song_record(seed: int, song_id: int, plan: _Plan, n_artists: int) -> dict:
    """One song_meta.json record, field order as in the release."""
    rng, theme_index = _rng(seed, _SONG, song_id), int(plan.theme[song_id])
    theme = THEMES[theme_index]
    k = len(THEMES)
    if rng.random() < 0.03:
        artists = [VARIOUS_ARTISTS]
    else:  # the theme's artists are ARTIST_ID0 + theme_index + k * j; popular ones (small j) more often
        per_theme = max(1, math.ceil((n_artists - theme_index) / k))
        js = sorted({int(per_theme * rng.random() ** 2) for _ in range(1 + (rng.random() < 0.1))})
        artists = [(a, _artist_name(seed, a)) for a in (ARTIST_ID0 + theme_index + k * j for j in js)]
    album_id = (artists[0][0] * k + theme_index) * ALBUMS_PER_ARTIST + int(rng.integers(ALBUMS_PER_ARTIST))
    album_name, issue_date = _album(seed, album_id, theme)
    majors, details = _genres(rng, theme)
    quirks = plan.quirks  # name -> set of song ids
    if song_id in quirks["zero_month_day"]:
        issue_date = issue_date // 10000 * 10000 + (issue_date // 100 % 100 * 100 if song_id % 2 else 0)
    if song_id in quirks["undeclared_genre"]:
        majors.append(UNDECLARED_GENRE)
    return {
        "song_gn_dtl_gnr_basket": details,
        "issue_date": issue_date,
        "album_name": None if song_id in quirks["null_album"] else album_name,
        "album_id": album_id,
        "artist_id_basket": [a for a, _ in artists],
        "song_name": _title(rng, _KO_TITLE if rng.random() < 0.55 else _EN_TITLE, theme),
        "song_gn_gnr_basket": majors,
        "artist_name_basket": [name for _, name in artists],
        "id": song_id,
    }


# ---------------------------------------------------------------------------------------------
# train/val/test.json


def _unique_in_order(a: np.ndarray) -> np.ndarray:
    _, first = np.unique(a, return_index=True)
    return a[np.sort(first)]


def _draw(rng, ids: np.ndarray, cdf: np.ndarray, k: int) -> np.ndarray:
    """k distinct ids drawn by popularity; cdf: (len(ids),) cumulative popularity."""
    k = min(k, len(ids))
    picked = ids[:0]
    for _ in range(8):  # a few rounds of draws with replacement, duplicates dropped
        if len(picked) >= k:
            break
        draws = ids[np.searchsorted(cdf, rng.random(2 * k) * cdf[-1], side="right")]
        picked = _unique_in_order(np.concatenate([picked, draws]))
    if len(picked) < k:  # tiny, skewed pools: fill uniformly
        rest = np.setdiff1d(ids, picked)
        picked = np.concatenate([picked, rng.choice(rest, k - len(picked), replace=False)])
    return picked[:k]


def _other_theme(rng, theme_index: int) -> int:
    """Another theme, a nearby mood more often than a far one."""
    return int(rng.choice(len(THEMES), p=AFFINITY[theme_index]))


def _tags(rng, theme_index: int) -> list[str]:
    """1-5 distinct tags, mostly the theme's, some generic, rarely another theme's, a few misspelt."""
    theme, n = THEMES[theme_index], int(rng.choice(TAG_COUNTS, p=TAG_COUNT_P))
    tags: list[str] = []
    while len(tags) < n:
        r = rng.random()
        if r < GENERIC_TAG_RATE:
            tag = _pick(rng, GENERIC_LEANINGS[theme.name] if rng.random() < LEANING_RATE else GENERIC_TAGS)
        elif r < GENERIC_TAG_RATE + CROSS_TAG_RATE:
            tag = _pick(rng, THEMES[_other_theme(rng, theme_index)].tags)
        else:
            tag = _pick(rng, theme.tags)
        if tag in SPELLING_VARIANTS and rng.random() < VARIANT_RATE:
            tag = _pick(rng, SPELLING_VARIANTS[tag])
        if tag not in tags:
            tags.append(tag)
    return tags


def _playlist_title(rng, theme, tag: str) -> str:
    """A realistic Korean playlist title ("비 오는 날 듣기 좋은 센치한 발라드") from the theme's title words."""
    situations, moods, kinds = TITLE_WORDS[theme.name]
    return _pick(rng, _PLAYLIST_TITLE).format(s=_pick(rng, situations), m=_pick(rng, moods), k=_pick(rng, kinds),
                                              t=tag.strip(), W=_pick(rng, theme.scene_words).title())


def _playlist_record(seed, playlist_id, theme_index, pools, in_theme, vocabulary=None) -> dict:
    """One playlist record, field order as in train.json; pools: per theme (in, out) (ids, cdf).

    vocabulary: None for the themes' tags, a melon_stats.LongTailTags for the release's statistics.
    """
    rng, theme = _rng(seed, _PLAYLIST, playlist_id), THEMES[theme_index]
    if vocabulary is None:  # the themes' tags, 10-60 songs
        tags, n = _tags(rng, theme_index), int(rng.integers(MIN_SONGS, MAX_SONGS + 1))
    else:  # the release's statistics
        tags, n = vocabulary.draw(rng, theme_index, AFFINITY), melon_stats.playlist_length(rng)
    (ids_in, cdf_in), (ids_out, cdf_out) = pools[theme_index]
    n_out = int(rng.binomial(n, 1 - in_theme))
    n_in = min(n - n_out, len(ids_in))
    if n_in < n - n_out:  # a small theme pool: shorten the playlist, keep its in-theme share
        n_out = min(n_out, math.ceil(n_in * (1 - in_theme) / in_theme))
    songs = np.concatenate([_draw(rng, ids_in, cdf_in, n_in), _draw(rng, ids_out, cdf_out, n_out)])
    rng.shuffle(songs)
    title = _playlist_title(rng, theme, tags[0])
    stamp = datetime.datetime(2005, 1, 1) + datetime.timedelta(seconds=int(rng.integers(480_000_000)))
    return {
        "tags": tags,
        "id": playlist_id,
        "plylst_title": title,
        "songs": [int(s) for s in songs],
        "like_cnt": int(min(rng.pareto(1.1) * 5, 50_000)),
        "updt_date": stamp.strftime("%Y-%m-%d %H:%M:%S.000"),
    }


def _mask(rng, record: dict) -> dict:
    """Empty some fields of a val/test playlist, as in the release's question files."""
    mask, songs, tags = _pick(rng, _MASKS), record["songs"], record["tags"]
    if mask == "songs_only":
        record.update(tags=[], plylst_title="", songs=songs[: len(songs) // 2])
    elif mask == "tags_title":
        record.update(songs=[])
    elif mask == "title_only":
        record.update(tags=[], songs=[])
    else:  # half of the songs and tags
        record.update(songs=songs[: len(songs) // 2], tags=tags[: (len(tags) + 1) // 2])
    return record


# ---------------------------------------------------------------------------------------------
# Writing


class _JsonList:
    """A JSON list file written one record at a time (bounded memory at the real sizes)."""

    def __init__(self, path: Path):
        # closed by __exit__: the class is itself the context manager (used in an ExitStack)
        self.file, self.n = open(path, "w", encoding="utf-8"), 0  # noqa: SIM115
        self.file.write("[")

    def append(self, record: dict) -> None:
        self.append_json(json.dumps(record, ensure_ascii=False))

    def append_json(self, record: str) -> None:
        """Append a record already serialised by json.dumps."""
        self.file.write((", " if self.n else "") + record)
        self.n += 1

    def __enter__(self) -> _JsonList:
        return self

    def __exit__(self, *exc) -> None:
        self.file.write("]")
        self.file.close()


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


def _write_playlists(root: Path, seed: int, plan: _Plan, in_theme: float) -> None:
    pools = []
    for t in range(len(THEMES)):
        # a mixed song joins its second theme's playlists in proportion to that theme's share of its sound;
        # a playlist's off-theme songs come mostly from nearby moods
        second = (plan.secondary == t) & (plan.weight < 1)
        ins = np.flatnonzero((plan.theme == t) | second)
        share = np.where(second, plan.weight, 1.0 - np.where(plan.weight < 1, plan.weight, 0.0))[ins]
        outs = np.flatnonzero(plan.theme != t)
        pools.append(((ins, np.cumsum(plan.popularity[ins] * share)),
                      (outs, np.cumsum(plan.popularity[outs] * AFFINITY[t, plan.theme[outs]]))))
    with ExitStack() as stack:
        files = [stack.enter_context(_JsonList(root / f"{split}.json")) for split in SPLITS]
        for pid, (theme_index, split) in enumerate(zip(plan.playlist_theme, plan.split, strict=True)):
            record = _playlist_record(seed, pid, int(theme_index), pools, in_theme, plan.tag_vocabulary)
            if SPLITS[split] != "train":
                record = _mask(_rng(seed, _MASK, pid), record)
            files[split].append(record)


def _truth(params: dict, plan: _Plan) -> dict:
    names = [t.name for t in THEMES]
    return {
        "generator": __name__,
        "params": params,
        "themes": names,
        "songs": {
            "theme": [names[t] for t in plan.theme],
            "secondary": [names[t] if t >= 0 else None for t in plan.secondary],
            "weight": plan.weight.tolist(),  # secondary theme's share of the mel; 1.0: cross-theme noise
        },
        "playlists": {
            "theme": [names[t] for t in plan.playlist_theme],
            "split": [SPLITS[s] for s in plan.split],
        },
        "quirks": {name: sorted(ids) for name, ids in plan.quirks.items()},
    }


def read_truth(root: str | os.PathLike) -> dict:
    """The ground truth written beside generated Melon files (themes of songs and playlists, quirks)."""
    with open(Path(root) / TRUTH_FILE, encoding="utf-8") as f:
        return json.load(f)


def generate_melon(
    root: str | os.PathLike,
    n_songs: int = 2000,
    n_playlists: int = 8000,
    seed: int = 0,
    *,
    secondary_rate: float = 1.0,
    noise_rate: float = 0.0,
    in_theme: float = 0.95,
    quirks: bool = True,
    quirk_rates: dict[str, float] | None = None,
    write_mels: bool = True,
    mel_dtype: str = "float16",
    workers: int = 1,
    statistics: str = "themes",
) -> Path:
    """Write a Melon-format root (same seed, same bytes) and return it; a complete root is kept as is.

    noise_rate: share of songs that sound like another theme than their playlists'; secondary_rate:
    share of the others mixing in a second theme (weight 0.2-0.45); in_theme: share of a playlist's
    songs from its theme;
    quirk_rates: overrides of QUIRK_RATES (all 0 when quirks=False); mel_dtype: float16 (half the disk) or
    float32 (the real files' size: 360 kB each, 240 GB for 707,989 songs); workers: processes for mels and
    song_meta.json; statistics: "themes" (the small default: 10-60 songs and 1-5 theme tags per playlist) or
    "melon" (the release's: split counts, playlist lengths, a long tail of ~30,000 tags; see melon_stats).
    """
    if statistics not in melon_stats.STYLES:
        raise ValueError(f"statistics must be one of {', '.join(melon_stats.STYLES)}, not {statistics!r}")
    if mel_dtype not in ("float16", "float32"):
        raise ValueError(f"mel_dtype must be float16 or float32, not {mel_dtype!r}")
    rates = {**QUIRK_RATES, **(quirk_rates or {})} if quirks else dict.fromkeys(QUIRK_RATES, 0.0)
    if set(rates) != set(QUIRK_RATES):
        unknown = sorted(set(rates) - set(QUIRK_RATES))
        raise ValueError(f"unknown quirks {unknown}; known: {', '.join(QUIRK_RATES)}")
    params = dict(
        version=FORMAT_VERSION, n_songs=n_songs, n_playlists=n_playlists, seed=seed,
        secondary_rate=secondary_rate, noise_rate=noise_rate, in_theme=in_theme,
        quirk_rates=rates, write_mels=write_mels, mel_dtype=mel_dtype,
    )
    if statistics != "themes":  # absent by default: roots generated before the option keep their marker
        params["statistics"] = statistics

    def build(tmp: Path) -> None:
        plan = _Plan(n_songs, n_playlists, seed, secondary_rate, noise_rate, rates, write_mels, mel_dtype, statistics)
        _write_song_meta(tmp, seed, plan, workers)
        _write_playlists(tmp, seed, plan, in_theme)
        _write_json(tmp / "genre_gn_all.json", genre_table())
        if write_mels:
            _write_mels(tmp, seed, plan, workers)
        _write_json(tmp / TRUTH_FILE, _truth(params, plan))

    return generate_atomically(root, params, build, "Melon")
