"""SongIndex: round trip against brute force, chunking, float16, staleness and missing-index refusals."""
import json

import numpy as np
import pytest
import torch

from mri.data.features import MelFeatures
from mri.models.tag_mel import TwoTowerNet
from mri.recommend.index import MissingIndex, SongIndex, StaleIndex

N_SONGS, N_TAGS = 120, 6


def make_store(folder, seed: int = 0) -> MelFeatures:
    """A feature store folder as build_features writes it, with random features."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    np.save(folder / "features.npy", rng.normal(size=(N_SONGS, 48, 20)).astype(np.float16))
    np.save(folder / "song_ids.npy", np.arange(N_SONGS, dtype=np.int64) * 3)
    meta = {"root": str(folder), "n_songs": N_SONGS, "seed": seed,
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
