"""The mel feature store: built once per data and settings, bad files reported, never half-written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mri.data.features import FeatureSpec, MelFeatures, build_features
from mri.data.melon import BadMel, mel_path, read_songs
from mri.data.synthetic.melon import generate_melon, read_truth


@pytest.fixture(scope="module")
def melon(tmp_path_factory):
    return generate_melon(tmp_path_factory.mktemp("melon") / "root", n_songs=120, n_playlists=60, seed=3)


@pytest.mark.parametrize("mode", ["per_song", "global"])
def test_store_holds_every_readable_song_and_reports_the_rest(melon, tmp_path, mode):
    songs = [s.id for s in read_songs(melon)]
    store = build_features(melon, FeatureSpec(mode=mode, basis_songs=50), tmp_path, songs)
    quirks = read_truth(melon)["quirks"]
    bad = set(quirks["missing_mel"]) | set(quirks["corrupt_mel"]) | set(quirks["all_zero_mel"])
    assert set(store.song_ids) == set(songs) - bad
    assert store.features.shape == (len(store), 48, 20) and store.features.dtype == np.float16
    assert isinstance(store.features, np.memmap)
    report = json.loads((store.folder / "report.json").read_text())
    assert report["counts"]["missing"] == len(quirks["missing_mel"])
    assert report["counts"]["odd_length"] == len(quirks["odd_length"])
    assert {e[0] for e in report["entries"] if e[1] != "odd_length"} == bad
    explained = store.meta["explained_variance"]
    assert 0.5 < explained["mean"] <= 1 and explained["min"] <= explained["mean"] <= explained["max"]
    assert (store.folder / "basis.npz").is_file() == (mode == "global")
    x = store.standardized(np.arange(len(store)))
    assert abs(float(x.mean())) < 0.05 and 0.5 < float(x.std()) < 1.5


def test_store_is_reused_and_keyed_by_what_made_it(melon, tmp_path):
    songs = [s.id for s in read_songs(melon)]
    first = build_features(melon, FeatureSpec(), tmp_path, songs)
    (first.folder / "features.npy").touch()
    mtime = (first.folder / "features.npy").stat().st_mtime_ns
    again = build_features(melon, FeatureSpec(), tmp_path, songs)
    assert again.folder == first.folder and (again.folder / "features.npy").stat().st_mtime_ns == mtime
    other = build_features(melon, FeatureSpec(n_components=10), tmp_path, songs)
    assert other.folder != first.folder and other.features.shape[-1] == 10


def test_an_interrupted_build_never_looks_complete(melon, tmp_path, monkeypatch):
    import mri.data.features as features

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(features, "feature_moments", crash)
    with pytest.raises(KeyboardInterrupt):
        build_features(melon, FeatureSpec(), tmp_path, range(120))
    assert not list(tmp_path.glob("*/meta.json"))
    monkeypatch.undo()
    store = build_features(melon, FeatureSpec(), tmp_path, range(120))  # the next run builds it whole
    assert len(store) > 100


def test_opening_a_deleted_store_says_how_to_rebuild_it(melon, tmp_path):
    store = build_features(melon, FeatureSpec(), tmp_path, range(120))
    (store.folder / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"not a built feature store .*python preprocess\.py"):
        MelFeatures(store.folder)


def test_positions_name_a_song_without_features(melon, tmp_path):
    store = build_features(melon, FeatureSpec(), tmp_path, range(120))
    missing = next(i for i in range(120) if not store.has(np.array([i]))[0])
    np.testing.assert_array_equal(store.positions(store.song_ids[:3]), [0, 1, 2])
    with pytest.raises(KeyError, match=f"song {missing} has no features"):
        store.positions(np.array([missing]))


def test_no_readable_mel_at_all_is_a_clear_error(melon, tmp_path):
    with pytest.raises(BadMel, match="no readable mel file"):
        build_features(melon, FeatureSpec(), tmp_path, [10**6])
    assert not mel_path(melon, 10**6).exists()
