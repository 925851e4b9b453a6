"""TagSide: what the bridge takes from train.json, kept in a song index and refused when it no longer describes
train.json, the settings or the query tags."""
import os

import numpy as np
import pytest

from mri.data.synthetic.melon import generate_melon
from mri.data.tags import TagVocabulary
from mri.recommend import tag_side
from mri.recommend.tag_side import TagSide, TagSideSettings

SETTINGS = TagSideSettings(min_tag_count=2, similarity_dim=4, titles_per_tag=5)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tag_side") / "melon"
    generate_melon(root, n_songs=300, n_playlists=400, seed=0, statistics="melon", write_mels=False)
    return root


@pytest.fixture
def kept(root, tmp_path):
    """The tag side read from train.json and kept in an index folder."""
    from mri.data.melon import read_playlists
    query_tags = TagVocabulary.from_playlists(read_playlists(root, "train"), 2).tags[:8]
    side = TagSide.read(root, query_tags, SETTINGS)
    side.write(tmp_path, root, query_tags, SETTINGS)
    return side, query_tags, tmp_path


def refuse_train_json(monkeypatch):
    def read(*args, **kwargs):
        raise AssertionError("train.json was read")
    monkeypatch.setattr(tag_side, "read_playlists", read)


def test_the_kept_copy_is_what_train_json_gives_and_needs_no_train_json(kept, root, monkeypatch):
    side, query_tags, folder = kept
    refuse_train_json(monkeypatch)
    loaded = TagSide.load(root, query_tags, SETTINGS, folder)
    assert loaded.similarity.vocab == side.similarity.vocab and len(loaded.similarity.vocab) > len(query_tags)
    np.testing.assert_array_equal(loaded.similarity.matrix(), side.similarity.matrix())
    assert loaded.descriptions == side.descriptions
    assert all(0 < len(titles) <= 5 for titles in loaded.descriptions.values())
    tag = query_tags[0]
    assert loaded.similarity.nearest(tag, 3) == side.similarity.nearest(tag, 3)


@pytest.mark.parametrize("change", ["train.json", "settings", "query tags"])
def test_a_copy_that_no_longer_describes_the_start_is_not_used(kept, root, caplog, change):
    side, query_tags, folder = kept
    settings = SETTINGS
    if change == "train.json":
        stat = (root / "train.json").stat()
        os.utime(root / "train.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    elif change == "settings":
        settings = TagSideSettings(min_tag_count=2, similarity_dim=4, titles_per_tag=2)
    else:
        query_tags = query_tags[:4]
    loaded = TagSide.load(root, query_tags, settings, folder)
    assert "keeps no tag side" in caplog.text and "build_index=true" in caplog.text
    assert set(loaded.descriptions) == set(query_tags)
    assert all(len(titles) <= settings.titles_per_tag for titles in loaded.descriptions.values())
    np.testing.assert_allclose(loaded.similarity.matrix(), side.similarity.matrix(), atol=1e-6)


def test_a_truncated_copy_is_read_again(kept, root, caplog):
    side, query_tags, folder = kept
    path = folder / tag_side.FILE
    path.write_bytes(path.read_bytes()[:200])
    assert TagSide.load(root, query_tags, SETTINGS, folder).descriptions == side.descriptions
    assert "keeps no tag side" in caplog.text


def test_settings_are_the_models_unless_the_bridge_names_others():
    trained = {"min_tag_count": 5, "similarity_dim": 64, "query_tags": ["봄"]}
    assert TagSideSettings.of(trained, None) == TagSideSettings(5, 64, 30)
    bridge = {"min_tag_count": None, "similarity_dim": 16, "embedding": {"titles_per_tag": 10}}
    assert TagSideSettings.of(trained, bridge) == TagSideSettings(5, 16, 10)
    assert TagSideSettings.of({}, {}) == TagSideSettings()


def test_a_root_that_lost_train_json_is_named_not_a_bare_file_error(kept, tmp_path):
    from mri.data.melon import DataRootError
    _, query_tags, folder = kept
    with pytest.raises(DataRootError, match="does not exist"):
        TagSide.load(tmp_path / "moved", query_tags, SETTINGS, folder)
