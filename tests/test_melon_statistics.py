"""Generated Melon data at the release's statistics (statistics="melon") and its directly written feature store."""
import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from mri.data.features import FeatureSpec, build_features
from mri.data.melon import read_playlists, read_song_ids
from mri.data.synthetic.features import write_feature_store
from mri.data.synthetic.melon import generate_melon, read_truth
from mri.data.synthetic.melon_stats import MELON_SPLIT_COUNTS, LongTailTags
from mri.data.tag_mel_datamodule import TagMelDataModule
from mri.data.tags import normalize_tag

SPEC = FeatureSpec(mode="global", basis_songs=200)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_melon(tmp_path_factory.mktemp("stats") / "melon", 3000, 3000, seed=1, statistics="melon",
                          write_mels=False, workers=2)


def test_default_data_is_unchanged(tmp_path):
    """The default generator's bytes, as written before the option existed (format version 3: the playlist
    titles of commit afc0c2b)."""
    root = generate_melon(tmp_path / "r", 200, 150, seed=4, write_mels=False)
    digest = hashlib.sha256()
    for path in sorted(root.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    assert digest.hexdigest() == "bf1a701621e04b1276ec8b135e47db0cf24c0dc9ed1b5a7387c235e70734fc81"


def test_split_counts_and_playlist_lengths_as_released(root):
    counts = [len(read_playlists(root, split)) for split in ("train", "val", "test")]
    assert sum(counts) == 3000
    assert np.allclose(np.asarray(counts) / 3000, np.asarray(MELON_SPLIT_COUNTS) / sum(MELON_SPLIT_COUNTS), atol=1e-3)
    train = read_playlists(root, "train")
    lengths = np.array([len(p.songs) for p in train])
    assert np.median(lengths) == pytest.approx(30, abs=3) and 40 < lengths.mean() < 52 and lengths.max() <= 200
    tags = np.array([len(p.tags) for p in train])
    assert tags.min() >= 1 and tags.max() <= 11 and np.median(tags) in (3, 4) and 3.8 < tags.mean() < 4.4  # 3, 4.1


def test_long_tail_and_spelling_variants(root):
    train = read_playlists(root, "train")
    counts = Counter(t for p in train for t in {normalize_tag(x) for x in p.tags})
    per_tag = np.array(sorted(counts.values(), reverse=True))
    assert per_tag[0] > 0.05 * len(train)  # a few tags on many playlists
    assert (per_tag <= 2).mean() > 0.5  # most on one or two
    raw = {t for p in train for t in p.tags}
    assert len(raw) > len(counts)  # free-text variants that normalise to one tag (Pop / POP, 여름노래 / 여름 노래)
    assert {"팝", "pop"} <= set(counts)  # 팝 and Pop stay two tags, as in the release


def test_tail_tags_are_distinct_once_normalised():
    vocab = LongTailTags(0, size=3000)
    assert len({normalize_tag(t) for t in vocab.tags}) == len(vocab.tags) == 3000
    assert vocab.tags[0] == "기분전환" and (vocab.theme >= -1).all()


def test_unknown_statistics_refused(tmp_path):
    with pytest.raises(ValueError, match="statistics must be one of themes, melon"):
        generate_melon(tmp_path / "x", 10, 10, statistics="real")


def test_direct_features_match_the_mel_path(tmp_path):
    """Features written without mels have the statistics of those preprocessing computes from the mels."""
    with_mels = generate_melon(tmp_path / "mels", 400, 20, seed=2, quirks=False)
    without = generate_melon(tmp_path / "nomels", 400, 20, seed=2, quirks=False, write_mels=False)
    a = build_features(with_mels, SPEC, tmp_path / "cache", read_song_ids(with_mels))
    b = write_feature_store(without, SPEC, tmp_path / "cache")
    assert write_feature_store(without, SPEC, tmp_path / "cache").folder == b.folder  # written once
    assert b.features.shape == a.features.shape == (400, 48, 20)
    fa, fb = a.features[:].astype(np.float32), b.features[:].astype(np.float32)
    assert fb.std() == pytest.approx(fa.std(), rel=0.05)
    assert b.meta["explained_variance"]["mean"] == pytest.approx(a.meta["explained_variance"]["mean"], abs=0.02)
    theme = np.array(read_truth(without)["songs"]["theme"])
    names = sorted(set(theme))
    centroids = np.stack([fa[theme == n].mean(0).ravel() for n in names])  # of the mel path's features
    nearest = np.array(names)[((fb.reshape(400, 1, -1) - centroids[None]) ** 2).sum(-1).argmin(1)]
    assert (nearest == theme).mean() > 0.5  # chance: 1/8


def test_direct_features_only_without_mels_and_in_global_mode(tmp_path):
    with_mels = generate_melon(tmp_path / "mels", 20, 10)
    with pytest.raises(ValueError, match="has mels: build its features with `python preprocess.py`"):
        write_feature_store(with_mels, SPEC, tmp_path / "cache")
    without = generate_melon(tmp_path / "nomels", 20, 10, write_mels=False)
    with pytest.raises(ValueError, match="global PCA mode"):
        write_feature_store(without, FeatureSpec(mode="per_song"), tmp_path / "cache")


def test_datamodule_on_generated_data_without_mels(tmp_path):
    generate = {"n_songs": 600, "n_playlists": 800, "seed": 0, "statistics": "melon", "write_mels": False}
    dm = TagMelDataModule(str(tmp_path / "root"), str(tmp_path / "cache"), generate=generate,
                          features={"mode": "global", "basis_songs": 200}, num_tags=16, min_tag_count=2,
                          train_batches="songs", batch_size=8, report_dir=str(tmp_path / "run"))
    dm.prepare_data()
    dm.setup("fit")
    mels, target, _ = next(iter(dm.train_dataloader()))
    assert mels.shape == (8, 1, 48, 20) and target.shape == (8, 16)
    assert json.loads((tmp_path / "run" / "data.json").read_text())["songs"]["val"] > 0


def test_training_and_the_bridge_compute_the_tag_similarity_once(tmp_path, monkeypatch):
    from mri.data import tags
    from mri.recommend.pipeline import make_bridge
    from mri.recommend.tag_side import TagSide, TagSideSettings
    generate = {"n_songs": 300, "n_playlists": 400, "seed": 0, "statistics": "melon", "write_mels": False}
    cache = tmp_path / "similarity"
    dm = TagMelDataModule(str(tmp_path / "root"), str(tmp_path / "cache"), generate=generate,
                          features={"mode": "global", "basis_songs": 100}, num_tags=8, min_tag_count=2,
                          similarity_dim=4, train_batches="songs", similarity_cache_dir=str(cache))
    dm.prepare_data()
    dm.setup("fit")
    assert len(list(cache.glob("tag-similarity-*.npz"))) == 1

    def computed(*args, **kwargs):
        raise AssertionError("the bridge computed the similarity again")

    monkeypatch.setattr(tags, "_top_singular", computed)
    side = TagSide.read(dm.root, dm.query_tags, TagSideSettings(min_tag_count=2, similarity_dim=4), cache)
    np.testing.assert_array_equal(make_bridge(side, dm.query_tags).similarity.matrix(range(len(dm.query_tags))), dm.sim)


@pytest.mark.parametrize("path", ["gram", "randomized"])
def test_large_tag_matrices_keep_the_exact_similarity(root, monkeypatch, path):
    """Large tag matrices take the Gram matrix's eigenvectors (or, past GRAM_MAX_TAGS, a randomized SVD):
    they give what ARPACK gives on a long-tailed vocabulary, the Gram path to rounding."""
    from mri.data import tags
    train = read_playlists(root, "train")
    vocab = tags.TagVocabulary.from_playlists(train, min_count=3)
    exact = tags.TagSimilarity(vocab, train, dim=16).matrix(range(20))
    monkeypatch.setattr(tags, "EXACT_SVD_NONZEROS", 0)
    monkeypatch.setattr(tags, "GRAM_MAX_TAGS", len(vocab) if path == "gram" else 0)
    fast = tags.TagSimilarity(vocab, train, dim=16).matrix(range(20))  # (20, V)
    if path == "gram":
        np.testing.assert_allclose(fast, exact, atol=1e-5)
    assert np.abs(fast - exact).mean() < 0.01 and np.abs(fast - exact).max() < 0.1
    assert all(len(set(np.argsort(-exact[i])[:5]) & set(np.argsort(-fast[i])[:5])) >= 4 for i in range(20))
