"""SongIndex: round trip against brute force, chunking, float16, FAISS kinds against exact, staleness and
missing-index refusals."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mri.data.features import MelFeatures
from mri.models.tag_mel import TwoTowerNet
from mri.recommend.ann import SearchSettings
from mri.recommend.catalogue import Catalogue, IndexCatalogue, song_descriptions
from mri.recommend.index import MissingIndex, SongIndex, StaleIndex

N_SONGS, N_TAGS = 120, 6


def make_melon_root(root, song_ids) -> None:
    """The Melon files an index reads its songs' titles from (song_meta.json, genre_gn_all.json; train.json empty)."""
    root.mkdir(parents=True)
    songs = [{"id": int(i), "song_name": f"노래 {i}", "artist_name_basket": ["가수", f"artist {i % 7}"],
              "song_gn_gnr_basket": ["GN0100", "GN9000"]} for i in song_ids]
    (root / "song_meta.json").write_text(json.dumps(songs, ensure_ascii=False), encoding="utf-8")
    (root / "genre_gn_all.json").write_text(json.dumps({"GN0100": "발라드"}, ensure_ascii=False), encoding="utf-8")
    (root / "train.json").write_text("[]")


def make_store(folder, seed: int = 0, n_songs: int = N_SONGS, themes: int = 0) -> MelFeatures:
    """A feature store folder as build_features writes it, with random features (around `themes` centres), of the
    songs of a Melon root beside it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    make_melon_root(folder.parent / "melon", np.arange(n_songs) * 3)
    features = rng.normal(size=(n_songs, 48, 20))
    if themes:
        features += 2 * rng.normal(size=(themes, 48, 20))[rng.integers(themes, size=n_songs)]
    np.save(folder / "features.npy", features.astype(np.float16))
    np.save(folder / "song_ids.npy", np.arange(n_songs, dtype=np.int64) * 3)
    meta = {"root": str(folder.parent / "melon"), "n_songs": n_songs, "seed": seed,
            "mean": np.zeros((48, 20)).tolist(), "std": np.ones((48, 20)).tolist()}
    (folder / "meta.json").write_text(json.dumps(meta))
    return MelFeatures(folder)


@pytest.fixture
def built(tmp_path):
    torch.manual_seed(0)
    net = TwoTowerNet(N_TAGS, backbone="plain_cnn", dim=16)
    ckpt = tmp_path / "model.ckpt"
    torch.save(net.state_dict(), ckpt)
    store = make_store(tmp_path / "features")
    tags = [f"tag{i}" for i in range(N_TAGS)]
    index = SongIndex.build(tmp_path / "index", net, store, tags, ckpt, config={"dim": 16}, batch_size=64)
    return net, store, ckpt, index


def test_round_trip_matches_the_model(built, tmp_path):
    net, store, ckpt, index = built
    opened = SongIndex.open(tmp_path / "index", ckpt)
    assert len(opened) == N_SONGS and opened.dim == 16 and opened.query_tags == index.query_tags
    assert np.array_equal(opened.song_ids, store.song_ids)
    weights = np.random.default_rng(1).dirichlet(np.ones(N_TAGS), size=3).astype(np.float32)  # (3, T)
    with torch.no_grad():
        mels = torch.from_numpy(store.standardized(slice(None))).unsqueeze(1)
        expected = torch.from_numpy(weights) @ net.eval().score_matrix(torch.arange(N_TAGS), mels)  # (3, N)
    scores, rows = opened.search(weights, k=10)
    top_scores, top_rows = expected.topk(10, dim=1)
    assert torch.equal(rows, top_rows)
    assert torch.allclose(scores, top_scores, atol=1e-5)


def test_chunked_search_equals_one_product(built):
    _, _, _, index = built
    queries = torch.randn(4, index.dim)
    full = (queries @ torch.from_numpy(np.asarray(index.vectors)).T).topk(7, dim=1)
    for chunk in (1, 7, 64, 10_000):
        scores, rows = index.top_k(queries, 7, chunk=chunk)
        assert torch.equal(rows, full.indices) and torch.allclose(scores, full.values)
    assert index.top_k(queries, 10_000)[1].shape == (4, N_SONGS)  # k past the catalogue: every song


def test_float16_index_is_half_the_size_and_close(built, tmp_path):
    net, store, ckpt, index = built
    half = SongIndex.build(tmp_path / "half", net, store, index.query_tags, ckpt, dtype="float16")
    assert half.vectors.dtype == np.float16
    assert half.vectors.nbytes * 2 == index.vectors.nbytes
    assert np.allclose(half.vectors.astype(np.float32), index.vectors, atol=1e-3)


def test_changed_checkpoint_is_refused_with_the_rebuild_command(built, tmp_path):
    net, _, ckpt, _ = built
    with torch.no_grad():
        net.tag_embedding.weight.add_(1.0)
    torch.save(net.state_dict(), ckpt)
    with pytest.raises(StaleIndex, match=r"python recommend.py build_index=true tag_mel_ckpt=.*model.ckpt"):
        SongIndex.open(tmp_path / "index", ckpt)


def test_changed_feature_store_is_refused(built, tmp_path):
    _, store, ckpt, _ = built
    meta = json.loads((store.folder / "meta.json").read_text())
    (store.folder / "meta.json").write_text(json.dumps({**meta, "seed": 1}))
    with pytest.raises(StaleIndex, match="feature store .* has changed"):
        SongIndex.open(tmp_path / "index", ckpt)


def test_missing_index_names_the_command(tmp_path, built):
    _, _, ckpt, _ = built
    with pytest.raises(MissingIndex, match="build_index=true"):
        SongIndex.open(tmp_path / "nowhere", ckpt)


def test_rebuild_replaces_the_old_index(built, tmp_path):
    net, store, ckpt, index = built
    again = SongIndex.build(tmp_path / "index", net, store, index.query_tags, ckpt)
    assert np.array_equal(again.vectors, index.vectors)
    assert not list(tmp_path.glob("index.tmp-*"))


N_LARGE = 3000
ANN = [SearchSettings(kind="ivf", nlist=32, nprobe=8, candidates=40),
       SearchSettings(kind="ivf", storage="sq8", nlist=32, nprobe=8, candidates=40, train_songs=2000),
       SearchSettings(kind="hnsw", M=16, ef_search=128, candidates=40)]


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """An exact index of 3,000 songs around 8 feature centres, and what built it."""
    tmp = tmp_path_factory.mktemp("large")
    torch.manual_seed(0)
    net = TwoTowerNet(N_TAGS, backbone="plain_cnn", dim=16)
    ckpt = tmp / "model.ckpt"
    torch.save(net.state_dict(), ckpt)
    store = make_store(tmp / "features", n_songs=N_LARGE, themes=8)
    tags = [f"tag{i}" for i in range(N_TAGS)]
    return net, store, ckpt, tags, SongIndex.build(tmp / "exact", net, store, tags, ckpt, batch_size=500)


def with_search(exact: SongIndex, folder, settings: SearchSettings) -> SongIndex:
    """A copy of the exact index with the search structure of settings."""
    return SongIndex(shutil.copytree(exact.folder, folder)).rebuild_search(settings)


def test_build_writes_the_structure_it_is_asked_for(large, tmp_path):
    net, store, ckpt, tags, exact = large
    index = SongIndex.build(tmp_path / "ivf", net, store, tags, ckpt, batch_size=500,
                            settings=SearchSettings(kind="ivf", nlist=16))
    assert index.meta["search"] == {"kind": "ivf", "storage": "flat", "nlist": 16, "train_songs": N_LARGE,
                                    "file": "ann.faiss", "bytes": (tmp_path / "ivf" / "ann.faiss").stat().st_size}
    assert np.array_equal(index.vectors, exact.vectors) and index.ann.ntotal == N_LARGE
    assert exact.meta["search"] == {"kind": "exact"} and not (exact.folder / "ann.faiss").exists()


def tag_queries(n: int, seed: int = 2) -> np.ndarray:
    """(n, T) weights as the bridge makes them: a few tags per query, summing to 1."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(N_TAGS), size=n) * (rng.random((n, N_TAGS)) < 0.5)
    weights[np.arange(n), rng.integers(N_TAGS, size=n)] += 0.1
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("settings", ANN, ids=lambda s: f"{s.kind}-{s.storage}")
def test_ann_kinds_find_the_exact_top_10_with_the_exact_scores(large, tmp_path, settings):
    net, store, ckpt, tags, exact = large
    index = with_search(exact, tmp_path / "ann", settings)
    assert index.meta["search"]["kind"] == settings.kind and (tmp_path / "ann" / "ann.faiss").is_file()
    assert SongIndex.open(tmp_path / "ann", ckpt, settings).ann.ntotal == N_LARGE
    weights = tag_queries(200)
    want_scores, want_rows = exact.search(weights, k=10)
    scores, rows = index.search(weights, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), want_rows.tolist(), strict=True)])
    assert recall >= 0.9
    # every score is the model's score of that song (re-scored from the float32 vectors), best first
    vectors = torch.from_numpy(np.asarray(exact.vectors))
    bias = exact.bias * torch.from_numpy(weights).sum(1, keepdim=True)  # (Q, 1)
    model = (exact.queries(weights)[:, None, :] * vectors[rows]).sum(-1) + bias  # (Q, 10)
    assert torch.allclose(scores, model, atol=1e-5)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    found = rows == want_rows
    assert torch.allclose(scores[found], want_scores[found], atol=1e-5)


def test_ivf_visiting_every_list_is_exact(large, tmp_path):
    net, store, ckpt, tags, exact = large
    index = with_search(exact, tmp_path / "ivf", SearchSettings(kind="ivf", nlist=16, nprobe=16, candidates=10))
    weights = tag_queries(50)
    (scores, rows), (want_scores, want_rows) = index.search(weights, 10), exact.search(weights, 10)
    assert torch.allclose(scores, want_scores, atol=1e-5)  # the same top 10 (up to songs of equal scores)
    assert (rows == want_rows).float().mean() > 0.95


def test_queries_with_too_few_candidates_are_answered_exactly(large, tmp_path):
    net, store, ckpt, tags, exact = large
    # 1,500 lists of about 2 songs, one visited: fewer than 10 candidates, so the exact search answers
    index = with_search(exact, tmp_path / "ivf", SearchSettings(kind="ivf", nlist=1500, nprobe=1, candidates=10))
    weights = tag_queries(5)
    assert torch.equal(index.search(weights, 10)[1], exact.search(weights, 10)[1])


def test_an_index_of_another_kind_or_structure_is_refused(large, tmp_path):
    net, store, ckpt, tags, exact = large
    ivf = SearchSettings(kind="ivf", nlist=16, nprobe=4)
    with pytest.raises(StaleIndex, match=r"built for search kind=exact, not kind=ivf.*index.kind=ivf`"):
        SongIndex.open(exact.folder, ckpt, ivf)
    with_search(exact, tmp_path / "ivf", ivf)
    with pytest.raises(StaleIndex, match="nlist=16 .*not kind=ivf storage=flat nlist=32"):
        SongIndex.open(tmp_path / "ivf", ckpt, SearchSettings(kind="ivf", nlist=32))
    with pytest.raises(StaleIndex, match=r"not kind=exact\. Rebuild it with `python recommend.py build_index=true "
                                         r"tag_mel_ckpt=\S+`"):
        SongIndex.open(tmp_path / "ivf", ckpt, SearchSettings())
    opened = SongIndex.open(tmp_path / "ivf", ckpt, SearchSettings(kind="ivf", nlist=16, nprobe=16))  # search-time
    assert opened.settings.nprobe == 16 and SongIndex(tmp_path / "ivf").settings.kind == "ivf"


@pytest.mark.parametrize("values, message", [
    ({"kind": "annoy"}, "index.kind='annoy'; choose one of exact, ivf, hnsw"),
    ({"kind": "ivf", "storage": "pq"}, "index.storage='pq'; choose one of flat, sq8"),
    ({"kind": "ivf", "nprobe": 0}, "index.nprobe=0 must be at least 1"),
    ({"nlist": -4}, "index.nlist=-4 must be at least 1"),
    ({"efSearch": 10}, "unknown index settings efSearch; known: kind, storage"),
])
def test_bad_search_settings_say_what_is_wrong(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SearchSettings.from_dict(values)


def test_the_index_keeps_its_songs_titles_so_a_start_need_not_read_song_meta(built, tmp_path, caplog):
    _, store, _, index = built
    root = Path(store.meta["root"])
    catalogue = Catalogue.load(root, index.folder)
    assert isinstance(catalogue, IndexCatalogue)
    described = song_descriptions(root)
    assert [catalogue.describe(int(i)) for i in index.song_ids] == [described[int(i)] for i in index.song_ids]
    assert catalogue.describe(3) == ("노래 3", "가수, artist 3", "발라드, GN9000 (undeclared)")
    assert catalogue.describe(4) == ("?", "?", "?")  # not a song of the index
    song_meta = root / "song_meta.json"
    songs = json.loads(song_meta.read_text(encoding="utf-8"))
    songs[1]["song_name"] = "새 제목"
    song_meta.write_text(json.dumps(songs, ensure_ascii=False), encoding="utf-8")  # changed since the build
    reread = Catalogue.load(root, index.folder)
    assert type(reread) is Catalogue
    assert reread.describe(3) == ("새 제목", "가수, artist 3", "발라드, GN9000 (undeclared)")
    assert "was built before" in caplog.text and "build_index=true" in caplog.text
    meta = json.loads((index.folder / "meta.json").read_text())
    del meta["catalogue"]  # an index written before indexes kept the titles
    (index.folder / "meta.json").write_text(json.dumps(meta))
    assert type(Catalogue.load(root, index.folder)) is Catalogue and "keeps no copy" in caplog.text


def test_a_root_that_lost_its_song_files_is_named_not_a_bare_file_error(built, tmp_path):
    from mri.data.melon import DataRootError
    _, _, _, index = built
    with pytest.raises(DataRootError, match="does not exist"):
        Catalogue.load(tmp_path / "moved", index.folder)


def test_what_the_index_keeps_is_written_before_it_is_complete(built, tmp_path):
    net, store, ckpt, index = built
    before = (index.folder / "meta.json").read_text()

    def fails(folder):
        assert not (folder / "meta.json").exists()  # the index is not complete while its extras are written
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        SongIndex.build(index.folder, net, store, index.query_tags, ckpt, keep=fails)
    assert (index.folder / "meta.json").read_text() == before  # the old index stands as it was
    rebuilt = SongIndex.build(index.folder, net, store, index.query_tags, ckpt,
                              keep=lambda folder: (folder / "extra.txt").write_text("kept"))
    assert (rebuilt.folder / "extra.txt").read_text() == "kept"
