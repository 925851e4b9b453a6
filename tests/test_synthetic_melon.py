"""Generated Melon data: real layout, determinism, learnable themes, quirks, atomic writing."""
import json

import numpy as np
import pytest

from mri.data import melon
from mri.data.melon import BadMel, check_root, load_mel, mel_path, read_genres, read_playlists, read_songs
from mri.data.synthetic import melon as synth
from mri.data.synthetic.melon import MARKER, QUIRK_RATES, generate_melon, read_truth
from mri.data.synthetic.themes import GENERIC_TAGS, SPELLING_VARIANTS, THEME_NAMES, THEMES, get_theme

# Field names and order of the real records (song_meta.json id 0 and a train.json playlist of the release).
SONG_KEYS = ["song_gn_dtl_gnr_basket", "issue_date", "album_name", "album_id", "artist_id_basket", "song_name",
             "song_gn_gnr_basket", "artist_name_basket", "id"]
PLAYLIST_KEYS = ["tags", "id", "plylst_title", "songs", "like_cnt", "updt_date"]
N_SONGS, N_PLAYLISTS = 400, 300


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_melon(tmp_path_factory.mktemp("gen") / "melon", N_SONGS, N_PLAYLISTS, seed=3)


@pytest.fixture(scope="module")
def truth(root):
    return read_truth(root)


def load_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_themes_are_consistent():
    genres = synth.genre_table()
    tags = [tag for t in THEMES for tag in t.tags]
    assert len(THEMES) == len(set(THEME_NAMES)) == 8
    assert len(tags) == len(set(tags)) and not set(tags) & set(GENERIC_TAGS)
    assert set(SPELLING_VARIANTS) <= set(tags) | set(GENERIC_TAGS)
    for theme in THEMES:
        assert 5 <= len(theme.tags) <= 8 and theme.scene_words and all(g in genres for g in theme.genres)
        assert theme.sound.profile().shape == (melon.N_MELS,)
    assert get_theme("summer_sea").tags[:2] == ("여름", "바다")
    with pytest.raises(KeyError, match="summer_sea"):
        get_theme("beach")


def test_layout_and_field_names_match_the_release(root):
    assert check_root(root) == root
    songs = load_json(root / "song_meta.json")
    assert [s["id"] for s in songs] == list(range(N_SONGS))
    assert all(list(s) == SONG_KEYS for s in songs)
    assert all(isinstance(s["issue_date"], int) and 19000000 < s["issue_date"] < 20300000 for s in songs)
    genres = load_json(root / "genre_gn_all.json")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in genres.items())
    assert {k for k in genres if k.endswith("00")} == set(synth.MAJOR_GENRES)
    codes = [g for s in songs for g in s["song_gn_gnr_basket"] + s["song_gn_dtl_gnr_basket"]]
    assert all(g in genres or g == "GN9000" for g in codes)

    playlists = {split: load_json(root / f"{split}.json") for split in melon.SPLITS}
    assert all(list(p) == PLAYLIST_KEYS for ps in playlists.values() for p in ps)
    ids = sorted(p["id"] for ps in playlists.values() for p in ps)
    assert ids == list(range(N_PLAYLISTS))
    assert all(p["tags"] and synth.MIN_SONGS <= len(p["songs"]) <= synth.MAX_SONGS for p in playlists["train"])
    masked = playlists["val"] + playlists["test"]
    assert any(not p["tags"] for p in masked) and any(not p["songs"] for p in masked)
    assert any(not p["plylst_title"] for p in masked)

    a = np.load(mel_path(root, 0))
    assert a.dtype == np.float16 and a.shape == (melon.N_MELS, melon.N_FRAMES)
    assert a.min() >= -100 and a.max() <= 0 and a.astype(np.float32).std() > 3  # dB with a floor, not flat
    assert sorted(p.name for p in (root / "arena_mel").iterdir()) == ["0"]


def test_readers_read_generated_data(root):
    songs, genres = read_songs(root), read_genres(root)
    assert len(songs) == N_SONGS and songs[0].name and songs[0].artists
    assert sum(len(read_playlists(root, split)) for split in melon.SPLITS) == N_PLAYLISTS
    assert melon.genre_name(genres, songs[0].genres[0]) == synth.MAJOR_GENRES[songs[0].genres[0]]


def test_truth_beside_the_files(root, truth):
    assert truth["themes"] == list(THEME_NAMES) and truth["params"]["seed"] == 3
    assert len(truth["songs"]["theme"]) == N_SONGS and len(truth["playlists"]["theme"]) == N_PLAYLISTS
    weight, secondary = np.array(truth["songs"]["weight"]), truth["songs"]["secondary"]
    # by default every song mixes in a second theme, in its own measure
    assert ((weight >= 0.2) & (weight <= 0.45)).all() and weight.std() > 0.05
    assert all(s is not None for s in secondary)


def test_mixed_pure_and_cross_theme_songs_as_configured(tmp_path):
    root = generate_melon(tmp_path / "melon", 1000, 10, seed=1, secondary_rate=0.25, noise_rate=0.05, write_mels=False)
    songs = read_truth(root)["songs"]
    weight, secondary = np.array(songs["weight"]), songs["secondary"]
    mixed = (weight > 0) & (weight < 1)
    assert 0.17 < mixed.mean() < 0.3 and ((weight[mixed] >= 0.2) & (weight[mixed] <= 0.45)).all()
    assert 0.03 < (weight == 1).mean() < 0.07  # cross-theme songs: sound like another theme than their playlists'
    assert all((s is None) == (w == 0) for s, w in zip(secondary, weight, strict=True))


def test_theme_sound_is_learnable(root, truth):
    """A nearest-centroid classifier on band means separates primary themes far above chance."""
    labels = np.array([THEME_NAMES.index(t) for t in truth["songs"]["theme"]])
    bad = {i for name in synth._MEL_QUIRKS for i in truth["quirks"][name]}
    ids = np.array([i for i in range(N_SONGS) if i not in bad])
    x = np.stack([load_mel(mel_path(root, i)).data.mean(1) for i in ids])  # (n, N_MELS)
    x -= x.mean(1, keepdims=True)  # remove the per-song gain
    train, test = ids % 2 == 0, ids % 2 == 1
    centroids = np.stack([x[train & (labels[ids] == k)].mean(0) for k in range(len(THEMES))])
    pred = ((x[test, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = (pred == labels[ids][test]).mean()
    assert 0.5 < accuracy < 0.98, accuracy  # chance is 1/8; noise keeps it from being trivial


def test_playlists_are_mostly_single_theme(root, truth):
    song_theme, playlist_theme = truth["songs"]["theme"], truth["playlists"]["theme"]
    second = truth["songs"]["secondary"]
    playlists = read_playlists(root)
    primary = [np.mean([song_theme[s] == playlist_theme[p.id] for s in p.songs]) for p in playlists]
    either = [np.mean([playlist_theme[p.id] in (song_theme[s], second[s]) for s in p.songs]) for p in playlists]
    # mixed songs join their second theme's playlists too, in proportion to its share of their sound
    assert 0.5 < np.mean(primary) < 0.8 and 0.9 < np.mean(either) < 0.99
    own = [tag in get_theme(playlist_theme[p.id]).tags for p in playlists for tag in p.tags]
    assert 0.6 < np.mean(own) < 0.95  # others: generic, cross-theme, misspelt


def test_quirks_as_configured_and_seen_by_readers(root, truth):
    quirks = truth["quirks"]
    assert {k: len(v) for k, v in quirks.items()} == {k: max(1, round(r * N_SONGS)) for k, r in QUIRK_RATES.items()}
    expected = {"missing_mel": "missing", "corrupt_mel": "unreadable", "all_zero_mel": "all_zero"}
    for name, reason in expected.items():
        for i in quirks[name]:
            with pytest.raises(BadMel) as e:
                load_mel(mel_path(root, i))
            assert e.value.reason == reason
    assert all(load_mel(mel_path(root, i)).odd_length for i in quirks["odd_length"])
    songs = read_songs(root)
    assert all(songs[i].album is None for i in quirks["null_album"])
    assert all(songs[i].issue_date % 100 == 0 and songs[i].date for i in quirks["zero_month_day"])
    assert all("GN9000" in songs[i].genres for i in quirks["undeclared_genre"])
    assert sum(s.album is None for s in songs) == len(quirks["null_album"])


def test_no_quirks_and_no_mels(tmp_path):
    root = generate_melon(tmp_path / "clean", 30, 20, quirks=False)
    assert all(not ids for ids in read_truth(root)["quirks"].values())
    assert not any(load_mel(mel_path(root, i)).odd_length for i in range(30))
    root = generate_melon(tmp_path / "nomel", 30, 20, write_mels=False)
    assert not (root / "arena_mel").exists() and len(read_songs(root)) == 30


def files_of(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_from_seed(tmp_path):
    a = files_of(generate_melon(tmp_path / "a", 40, 30, seed=7))
    b = files_of(generate_melon(tmp_path / "b", 40, 30, seed=7, workers=2))
    c = files_of(generate_melon(tmp_path / "c", 40, 30, seed=8))
    assert a == b and a != c


def test_atomic_and_idempotent(tmp_path, monkeypatch):
    crashed = tmp_path / ".melon.partial-crashed"  # left by a killed run
    (crashed / "arena_mel").mkdir(parents=True)
    (crashed / "song_meta.json").write_text("[{")
    root = generate_melon(tmp_path / "melon", 20, 10)
    assert (root / MARKER).is_file() and len(read_songs(root)) == 20

    (root / "user_file").write_text("kept")
    assert generate_melon(root, 20, 10) == root and (root / "user_file").exists()  # untouched
    with pytest.warns(UserWarning, match="other parameters"):
        generate_melon(root, 30, 10)

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "_write_mels", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_melon(tmp_path / "interrupted", 20, 10)
    assert not (tmp_path / "interrupted").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".melon.partial-crashed", "melon"]


def test_refuses_a_foreign_non_empty_root(tmp_path):
    (tmp_path / "melon").mkdir()
    (tmp_path / "melon" / "song_meta.json").write_text("[]")
    with pytest.raises(FileExistsError, match="not a complete"):
        generate_melon(tmp_path / "melon", 20, 10)
    (tmp_path / "empty").mkdir()
    assert (generate_melon(tmp_path / "empty", 20, 10) / MARKER).is_file()
