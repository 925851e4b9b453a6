"""Readers of the real Melon layout, on hand-written fixtures that carry the release's quirks."""
import datetime
import json

import numpy as np
import pytest

from mri.data.melon import (
    N_FRAMES,
    N_MELS,
    BadMel,
    DataRootError,
    MelReport,
    Playlist,
    Song,
    check_root,
    genre_name,
    load_mel,
    mel_path,
    read_genres,
    read_npy,
    read_playlists,
    read_songs,
)

SONGS = [
    {"song_gn_dtl_gnr_basket": ["GN0901"], "issue_date": 20140512,
     "album_name": "불후의 명곡 - 7080 추억의 얄개시대 팝송베스트", "album_id": 2255639,
     "artist_id_basket": [2727], "song_name": "Feelings", "song_gn_gnr_basket": ["GN0900"],
     "artist_name_basket": ["Various Artists"], "id": 0},
    {"song_gn_dtl_gnr_basket": ["GN0105", "GN0101"], "issue_date": 19860000, "album_name": None,
     "album_id": 1, "artist_id_basket": [1, 2], "song_name": "비", "song_gn_gnr_basket": ["GN0100", "GN9000"],
     "artist_name_basket": ["가수", "Band"], "id": 1},
    {"song_gn_gnr_basket": ["GN9000"], "issue_date": 20010700, "song_name": "no album keys", "id": 2},
    {"song_gn_dtl_gnr_basket": [], "issue_date": 0, "album_name": "x", "album_id": 3,
     "artist_id_basket": [], "song_name": "", "song_gn_gnr_basket": [], "artist_name_basket": [], "id": 3},
]
TRAIN = [{"tags": ["락"], "id": 61281, "plylst_title": "여행같은 음악",
          "songs": [525514, 129701, 383374, 562083, 297861], "like_cnt": 71,
          "updt_date": "2013-12-19 18:36:19.000"}]
VAL = [
    {"tags": [], "id": 118598, "plylst_title": "", "songs": [373313, 151080], "like_cnt": 1,
     "updt_date": "2019-05-27 14:54:17.000"},
    {"tags": ["Pop", "캐럴"], "id": 131447, "plylst_title": "앨리스테이블", "songs": [], "like_cnt": 1,
     "updt_date": "2014-07-16 15:44:40.000"},
]
GENRES = {"GN0100": "발라드", "GN0101": "세부장르전체", "GN0900": "POP", "GN0901": "세부장르전체"}


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "melon"
    root.mkdir()
    for name, obj in [("song_meta", SONGS), ("train", TRAIN), ("val", VAL), ("genre_gn_all", GENRES)]:
        write_json(root / f"{name}.json", obj)
    return root


def save_mel(root, song_id, a):
    path = mel_path(root, song_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, a)
    return path


def db_mel(frames=N_FRAMES, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(-100, 0, (N_MELS, frames)).astype(dtype)


# ----- root


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "is empty"),
    (lambda p: (p.mkdir(), write_json(p / "song_meta.json", [])), "lacks train.json"),
])
def test_check_root_names_path_and_remedy(tmp_path, make, problem):
    path = tmp_path / "nowhere"
    make(path)
    with pytest.raises(DataRootError) as e:
        check_root(path)
    assert isinstance(e.value, FileNotFoundError)
    message = str(e.value)
    assert str(path) in message and problem in message
    assert "data=tag_mel" in message and "MTG/melon-playlist-dataset" in message and "data.root=" in message


def test_readers_check_the_root(tmp_path):
    with pytest.raises(DataRootError, match=str(tmp_path / "x")):
        read_songs(tmp_path / "x")


# ----- songs, playlists, genres


def test_read_songs_keeps_real_quirks(root):
    songs = read_songs(root)
    assert [s.id for s in songs] == [0, 1, 2, 3]
    assert songs[0] == Song(0, "Feelings", ("Various Artists",), "불후의 명곡 - 7080 추억의 얄개시대 팝송베스트",
                            2255639, ("GN0900",), ("GN0901",), 20140512)
    assert songs[0].date == datetime.date(2014, 5, 12)
    assert songs[1].album is None and songs[1].genres == ("GN0100", "GN9000")
    assert songs[1].issue_date == 19860000 and songs[1].date == datetime.date(1986, 1, 1)
    assert songs[2] == Song(2, "no album keys", (), None, None, ("GN9000",), (), 20010700)
    assert songs[2].date == datetime.date(2001, 7, 1)
    assert songs[3].issue_date == 0 and songs[3].date is None


def test_read_playlists_train_and_masked_val(root):
    songs = (525514, 129701, 383374, 562083, 297861)
    assert read_playlists(root) == [Playlist(61281, "여행같은 음악", ("락",), songs, 71, "2013-12-19 18:36:19.000")]
    first, second = read_playlists(root, "val")
    assert (first.title, first.tags, first.songs) == ("", (), (373313, 151080))
    assert (second.tags, second.songs) == (("Pop", "캐럴"), ())  # raw tags, variants kept


def test_read_playlists_errors(root):
    with pytest.raises(ValueError, match="train, val, test"):
        read_playlists(root, "dev")
    with pytest.raises(DataRootError, match="test.json"):
        read_playlists(root, "test")


def test_genres_and_undeclared_codes(root):
    genres = read_genres(root)
    assert genres == GENRES
    assert genre_name(genres, "GN0100") == "발라드"
    assert genre_name(genres, "GN9000") == "GN9000 (undeclared)"


def test_mel_path_layout(tmp_path):
    assert mel_path(tmp_path, 415263) == tmp_path / "arena_mel" / "415" / "415263.npy"
    assert mel_path(tmp_path, 7) == tmp_path / "arena_mel" / "0" / "7.npy"


# ----- mels


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_load_mel_any_float_dtype(root, dtype):
    a = db_mel(dtype=dtype)
    mel = load_mel(save_mel(root, 5, a))
    assert mel.data.dtype == np.float32 and mel.data.shape == (N_MELS, N_FRAMES)
    assert mel.frames == N_FRAMES and not mel.odd_length
    np.testing.assert_array_equal(mel.data, a.astype(np.float32))


@pytest.mark.parametrize("array, version", [
    (np.arange(12, dtype=np.float32).reshape(3, 4), (1, 0)),
    (np.asfortranarray(np.arange(12, dtype=">f8").reshape(3, 4)), (1, 0)),  # big-endian, column-major
    (np.arange(6, dtype=np.int16).reshape(2, 3), (2, 0)),
    (np.float16(3.5) * np.ones((N_MELS, N_FRAMES), np.float16), (3, 0)),
])
def test_read_npy_equals_np_load(tmp_path, array, version):
    path = tmp_path / "a.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    for _ in range(2):  # the second read takes the parsed-header path
        got = read_npy(path)
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, np.load(path))


def test_load_mel_pads_short_with_floor_at_end(root):
    a = db_mel(1870)
    mel = load_mel(save_mel(root, 5, a))
    assert mel.frames == 1870 and mel.odd_length and mel.data.shape == (N_MELS, N_FRAMES)
    np.testing.assert_array_equal(mel.data[:, :1870], a)
    assert (mel.data[:, 1870:] == a.min()).all()


def test_load_mel_crops_long_to_first_frames(root):
    a = db_mel(1900)
    mel = load_mel(save_mel(root, 5, a))
    assert mel.frames == 1900 and mel.odd_length
    np.testing.assert_array_equal(mel.data, a[:, :N_FRAMES])


def test_load_mel_other_length_asked(root):
    mel = load_mel(save_mel(root, 5, db_mel()), n_frames=100)
    assert mel.data.shape == (N_MELS, 100) and mel.odd_length


def _nan(a):
    a[3, 7] = np.nan
    return a


def _inf(a):
    a[0, 0] = -np.inf
    return a


@pytest.mark.parametrize("write, reason", [
    (lambda p: None, "missing"),
    (lambda p: np.save(p, np.zeros((N_MELS, N_FRAMES), np.float16)), "all_zero"),
    (lambda p: np.save(p, _nan(db_mel())), "non_finite"),
    (lambda p: np.save(p, _inf(db_mel(dtype=np.float16))), "non_finite"),
    (lambda p: np.save(p, db_mel()[:47]), "shape"),
    (lambda p: np.save(p, db_mel().T), "shape"),
    (lambda p: np.save(p, db_mel()[0]), "shape"),
    (lambda p: np.save(p, db_mel()[None]), "shape"),
    (lambda p: np.save(p, np.zeros((N_MELS, 0), np.float32)), "shape"),
    (lambda p: (np.save(p, db_mel()), p.write_bytes(p.read_bytes()[:5000])), "unreadable"),  # cut short
    (lambda p: p.write_text("<html>404 Not Found</html>"), "unreadable"),
    (lambda p: p.write_bytes(b""), "unreadable"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "unreadable"),
    (lambda p: np.save(p, np.full((N_MELS, N_FRAMES), "x")), "unreadable"),
])
def test_load_mel_bad_files(root, write, reason):
    path = mel_path(root, 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    with pytest.raises(BadMel) as e:
        load_mel(path)
    assert e.value.reason == reason


# ----- report


def test_mel_report_counts_merges_and_writes_atomically(tmp_path):
    a, b = MelReport(), MelReport()
    a.add(1, "missing", "no file")
    a.add(2, "odd_length", "1870 frames")
    b.add(3, "unreadable", "EOFError")
    b.add(4, "missing")
    assert a.merge(b) is a
    assert a.counts["missing"] == 2 and a.counts["unreadable"] == 1 and a.counts["odd_length"] == 1
    assert a.n_skipped == 3 and len(a.entries) == 4
    assert a.summary() == "mels skipped: 3 (missing 2, unreadable 1); odd length (cropped/padded): 1"
    assert "\n" not in a.summary()

    path = tmp_path / "reports" / "mel_report.json"
    a.write(path)
    a.write(path)  # overwrite
    assert [p.name for p in path.parent.iterdir()] == ["mel_report.json"]  # no temp file left
    assert json.loads(path.read_text())["counts"]["missing"] == 2
    assert MelReport.read(path) == a


def test_mel_report_rejects_unknown_reason():
    with pytest.raises(ValueError, match="missing"):
        MelReport().add(1, "broken")
