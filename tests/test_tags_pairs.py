"""Tag normalisation, tag similarity from playlists, pair targets and the song-disjoint split."""
import numpy as np
import pytest

from mri.data.melon import Playlist
from mri.data.pairs import SongTags, split_songs
from mri.data.tags import TagSimilarity, TagVocabulary, main, normalize_tag


def playlist(pid, tags, songs):
    return Playlist(id=pid, title="", tags=tuple(tags), songs=tuple(songs), like_cnt=0, updt_date="")


# two moods: summer (songs 0-4) and winter (songs 5-9); song 4 also sits in one winter playlist
PLAYLISTS = [
    playlist(0, ["여름", "바다"], [0, 1, 2, 3]),
    playlist(1, ["여름 ", "휴가"], [0, 1, 2, 4]),
    playlist(2, ["바다", "휴가"], [1, 2, 3, 4]),
    playlist(3, ["겨울", "캐롤"], [5, 6, 7, 8]),
    playlist(4, ["겨울", "눈"], [5, 6, 9, 4]),
    playlist(5, ["캐롤", "눈", "Pop"], [6, 7, 8, 9]),
    playlist(6, ["POP"], [0, 9]),
    playlist(7, [], [1, 2]),
]


def test_normalize_tag_folds_case_whitespace_and_unicode_forms():
    assert normalize_tag(" Summer  Night ") == "summernight"
    assert normalize_tag("POP") == normalize_tag("pop") == "pop"
    assert normalize_tag("비오는 날") == normalize_tag("비오는날")
    assert normalize_tag("Ｃａｆｅ") == "cafe"  # full-width forms (NFKC)


def test_vocabulary_ranks_by_count_then_name_and_merges_variants():
    vocab = TagVocabulary.from_playlists(PLAYLISTS)
    assert vocab.tags[0] in {"여름", "바다", "휴가", "겨울", "캐롤", "눈", "pop"}
    assert dict(zip(vocab.tags, vocab.counts, strict=True))["여름"] == 2  # "여름 " folded into "여름"
    assert dict(zip(vocab.tags, vocab.counts, strict=True))["pop"] == 2  # "Pop" and "POP"
    assert list(vocab.counts) == sorted(vocab.counts, reverse=True)
    frequent = tuple(t for t, c in zip(vocab.tags, vocab.counts, strict=True) if c >= 2)
    assert TagVocabulary.from_playlists(PLAYLISTS, min_count=2).tags == frequent
    assert vocab.encode(["바다", "unknown", " 겨울"]) == [vocab.index["바다"], vocab.index["겨울"]]


def test_similarity_groups_tags_of_the_same_mood():
    vocab = TagVocabulary.from_playlists(PLAYLISTS)
    sim = TagSimilarity(vocab, PLAYLISTS)
    m = sim.matrix()
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-6)
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    i = vocab.index
    assert m[i["여름"], i["바다"]] > 0.4 > m[i["여름"], i["겨울"]]
    assert m[i["캐롤"], i["눈"]] > m[i["캐롤"], i["휴가"]]
    rows, columns = [i["여름"], i["눈"]], [i["pop"], i["바다"], i["겨울"]]
    np.testing.assert_allclose(sim.matrix(rows, columns), m[np.ix_(rows, columns)], atol=1e-6)
    near = [t for t, _ in sim.nearest("여름", k=2)]
    assert set(near) == {"바다", "휴가"}
    with pytest.raises(KeyError, match="not in the vocabulary"):
        sim.nearest("없는태그")


def test_cached_similarity_is_computed_once_per_playlists_file(tmp_path, monkeypatch):
    import mri.data.tags as tags
    source, cache = tmp_path / "train.json", tmp_path / "cache"
    source.write_text("[]")  # only its bytes name the cache file
    vocab = TagVocabulary.from_playlists(PLAYLISTS)
    fresh = TagSimilarity(vocab, PLAYLISTS, dim=3).matrix()
    np.testing.assert_array_equal(TagSimilarity.cached(vocab, PLAYLISTS, 3, cache, source).matrix(), fresh)
    (written,) = cache.glob("tag-similarity-*.npz")

    def computed(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as m:
        m.setattr(tags, "_top_singular", computed)
        np.testing.assert_array_equal(TagSimilarity.cached(vocab, PLAYLISTS, 3, cache, source).matrix(), fresh)
        with pytest.raises(AssertionError, match="recomputed"):  # other playlists: another file
            source.write_text('[{"id": 1}]')
            TagSimilarity.cached(vocab, PLAYLISTS, 3, cache, source)
    source.write_text("[]")
    written.write_bytes(written.read_bytes()[:100])  # truncated: computed again and rewritten whole
    np.testing.assert_array_equal(TagSimilarity.cached(vocab, PLAYLISTS, 3, cache, source).matrix(), fresh)
    np.testing.assert_array_equal(TagSimilarity.cached(vocab, PLAYLISTS, 3, cache, source).matrix(), fresh)


def test_nearest_tags_command(tmp_path, capsys, monkeypatch):
    import mri.data.tags as tags

    monkeypatch.setattr(tags, "read_playlists", lambda root, split: PLAYLISTS)
    main([str(tmp_path), "여름", "-k", "2"])
    out = capsys.readouterr().out
    assert out.startswith("여름: ") and "바다" in out and "휴가" in out


def test_song_targets_follow_the_slides_rule():
    vocab = TagVocabulary.from_playlists(PLAYLISTS)
    sim = TagSimilarity(vocab, PLAYLISTS).matrix()
    song_tags = SongTags.from_playlists(PLAYLISTS, vocab, n_songs=11)
    i = vocab.index
    # song 1 is in playlists 0, 1, 2: 바다 and 휴가 twice, 여름 twice -> all its strongest tags have target 1
    t1 = song_tags.targets(sim, 1)
    assert t1[i["여름"]] == pytest.approx(1.0) and t1[i["바다"]] == pytest.approx(1.0)
    assert t1[i["겨울"]] < 0.5
    # song 4: summer tags from two playlists, winter tags from one stray playlist -> weight 1/2
    t4 = song_tags.targets(sim, 4)
    assert t4[i["휴가"]] == pytest.approx(1.0)
    assert t4[i["겨울"]] == pytest.approx(0.5, abs=1e-6)
    assert (t4 <= 1.0 + 1e-6).all() and (t4 >= 0).all()
    # popularity counts playlists, tagged or not; song 10 is in none and carries no tag
    assert song_tags.popularity[1] == 4 and song_tags.popularity[10] == 0
    assert list(song_tags.tagged(np.arange(11))) == list(range(10))
    np.testing.assert_array_equal(song_tags.targets(sim, 10), np.zeros(len(vocab)))


def test_split_is_song_disjoint_complete_and_seeded():
    songs = np.arange(0, 1000, 3)
    a = split_songs(songs, 0.1, 0.2, seed=7)
    b = split_songs(songs, 0.1, 0.2, seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not set(a["train"]) & set(a["val"])
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    assert sorted(np.concatenate(list(a.values()))) == sorted(songs)
    assert len(a["val"]) == round(len(songs) * 0.1) and len(a["test"]) == round(len(songs) * 0.2)
    assert not np.array_equal(split_songs(songs, 0.1, 0.2, seed=8)["test"], a["test"])
    with pytest.raises(ValueError, match="split fractions"):
        split_songs(songs, 0.6, 0.5, seed=0)
