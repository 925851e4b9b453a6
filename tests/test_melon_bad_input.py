"""A Melon root whose JSON is truncated or not Melon's: one message naming the file and the first bad record."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mri.data.melon import MelonFormatError, check_playlist_songs, read_playlists, read_song_ids, read_songs
from mri.data.synthetic.melon import generate_melon

ROOT = Path(__file__).resolve().parents[1]


def song(i):
    return {"song_name": f"s{i}", "artist_name_basket": ["a"], "id": i}


def playlist(i, songs, tags=("여름",)):
    return {"tags": list(tags), "id": i, "plylst_title": "t", "songs": list(songs), "like_cnt": 0,
            "updt_date": "2013-12-19 18:36:19.000"}


def write_root(folder: Path, songs, train) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "song_meta.json").write_text(json.dumps(songs, ensure_ascii=False), encoding="utf-8")
    (folder / "train.json").write_text(json.dumps(train, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture
def root(tmp_path):
    return write_root(tmp_path / "melon", [song(i) for i in range(5)], [playlist(i, [i, i + 1]) for i in range(3)])


def test_truncated_file_names_file_and_position(root):
    text = (root / "song_meta.json").read_text()
    (root / "song_meta.json").write_text(text[: len(text) // 2])
    for read in (read_songs, read_song_ids):
        with pytest.raises(MelonFormatError, match=r"song_meta\.json is not whole JSON: .*, byte [\d,]+ of [\d,]+.*"
                                                   r"fetch or unpack it again"):
            read(root)


def test_not_json_and_not_utf8(root):
    (root / "train.json").write_text("<html>404 Not Found</html>")
    with pytest.raises(MelonFormatError, match=r"train\.json is not whole JSON"):
        read_playlists(root)
    (root / "train.json").write_bytes(b'[{"tags": ["\xff\xfe"]}]')
    with pytest.raises(MelonFormatError, match=r"train\.json is not UTF-8"):
        read_playlists(root)


def test_wrong_field_name_names_the_first_bad_record(root):
    songs = [song(i) for i in range(5)]
    songs[3] = {"song_name": "x", "song_id": 3}  # another dataset's field name
    songs[4] = {"song_name": "y", "song_id": 4}
    write_root(root, songs, [])
    with pytest.raises(MelonFormatError, match=r"record 3 of .*song_meta\.json \(no integer id\) lacks the field 'id';"
                                               r" its fields are 'song_name', 'song_id'"):
        read_song_ids(root)
    train = [playlist(0, [1]), {"tags": [], "id": 7, "song_ids": [1, 2]}]
    write_root(root, [song(i) for i in range(5)], train)
    with pytest.raises(MelonFormatError, match=r"record 1 of .*train\.json \(id 7\) lacks the field 'songs'"):
        read_playlists(root)


def test_wrong_types(root):
    write_root(root, [song(0), {"id": "1"}], [])
    with pytest.raises(MelonFormatError, match=r"record 1 .* has the id '1', not an integer"):
        read_songs(root)
    write_root(root, [song(0)], [playlist(0, [0]), playlist(1, ["0"])])
    with pytest.raises(MelonFormatError, match=r"record 1 of .*train\.json \(playlist 1\): 'songs' must be a list of "
                                               r"integer song ids"):
        read_playlists(root)
    write_root(root, [song(0)], {"playlists": []})
    with pytest.raises(MelonFormatError, match=r"lacks the fields 'id', 'tags', 'songs'; its fields are 'playlists'"):
        read_playlists(root)


def test_duplicated_ids(root):
    write_root(root, [song(0), song(1), song(2), song(1), song(2)], [])
    with pytest.raises(MelonFormatError, match=r"records 1 and 3 are both song id 1 \(2 duplicated ids in all\)"):
        read_song_ids(root)
    write_root(root, [song(0)], [playlist(5, [0]), playlist(6, [0]), playlist(5, [0])])
    with pytest.raises(MelonFormatError, match=r"records 0 and 2 are both playlist id 5"):
        read_playlists(root)


def test_playlist_song_missing_from_song_meta(root):
    write_root(root, [song(i) for i in range(5)], [playlist(0, [1, 2]), playlist(1, [3, 99, 98]), playlist(2, [4])])
    ids = read_song_ids(root)
    with pytest.raises(MelonFormatError, match=r"record 1 of .*train\.json \(playlist 1\) holds song 99, which .*"
                                               r"song_meta\.json lacks \(2 such entries in all\)"):
        check_playlist_songs(root, "train", read_playlists(root), ids)
    check_playlist_songs(root, "train", read_playlists(root)[:1], ids)  # a consistent one passes
    check_playlist_songs(root, "train", [], np.zeros(0, np.int64))


def test_train_py_prints_one_message_not_a_traceback(tmp_path):
    """A damaged real root through the entry point: the message, exit status 1, no traceback."""
    root = generate_melon(tmp_path / "gen", 30, 20, seed=1)
    real = tmp_path / "copy"
    real.mkdir()
    for f in root.iterdir():
        if f.is_file() and f.name != ".mri_complete":
            (real / f.name).write_bytes(f.read_bytes())
    (real / "arena_mel").symlink_to(root / "arena_mel")
    text = (real / "train.json").read_text(encoding="utf-8")
    (real / "train.json").write_text(text[: len(text) - 200], encoding="utf-8")  # cut short
    out = subprocess.run([sys.executable, "train.py", "model=squeezenet", "data=melon", f"data.root={real}",
                          f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}", "logger=[]",
                          "trainer.max_epochs=1", "data.num_workers=0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"Error: {real / 'train.json'} is not whole JSON" in out.stderr
    assert "Traceback" not in out.stderr
