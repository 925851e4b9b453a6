"""The caption -> tags bridge: lexicon file, keywords and lemmas, widening, unknown words, fallback."""
import numpy as np
import pytest

from mri.data.melon import Playlist
from mri.data.synthetic.themes import GENERIC_TAGS, THEMES
from mri.data.tags import TagSimilarity, TagVocabulary
from mri.recommend.bridge import Bridge, Lexicon, keywords, lemmatize


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.load()


@pytest.fixture(scope="module")
def bridge(lexicon) -> Bridge:
    """Playlists of one theme each, so theme tags are each other's neighbours."""
    rng = np.random.default_rng(0)
    playlists = []
    for i in range(240):
        theme = THEMES[i % len(THEMES)]
        tags = tuple(rng.choice(theme.tags, 3, replace=False)) + (str(rng.choice(GENERIC_TAGS)),)
        songs = tuple(int(s) for s in rng.choice(50, 5, replace=False) + 50 * (i % len(THEMES)))
        playlists.append(Playlist(i, "", tags, songs, 0, ""))
    vocab = TagVocabulary.from_playlists(playlists)
    return Bridge(lexicon, TagSimilarity(vocab, playlists, dim=8), vocab.tags[:40])


def test_lexicon_is_versioned_and_large(lexicon):
    assert lexicon.version >= 1
    assert len(lexicon) >= 150
    for word, tags in lexicon.entries.items():
        assert word.isalpha() and word == word.lower(), word
        assert tags and all(tag and 0 < w <= 1 for tag, w in tags), word


def test_lexicon_covers_every_theme_scene_word(lexicon):
    for theme in THEMES:
        for word in set(theme.scene_words) - {"people"}:  # people are in every theme's photos: no mood
            assert lemmatize(word, lexicon) in lexicon, (theme.name, word)


def test_lexicon_refuses_a_file_without_header(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("beach\t바다\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mri-lexicon version"):
        Lexicon.load(path)


@pytest.mark.parametrize("word, lemma", [("dogs", "dog"), ("running", "run"), ("dancing", "dance"),
                                         ("beaches", "beach"), ("puppies", "puppy"), ("men", "man"),
                                         ("swimming", "swim"), ("playing", "play"), ("waves", "wave")])
def test_lemmas(lexicon, word, lemma):
    assert lemmatize(word, lexicon) == lemma


def test_keywords_drop_stop_words_and_repeats(lexicon):
    words = keywords("Two dogs are running on the beach , a dog jumps on the beach .", lexicon)
    assert [lemma for _, lemma in words] == ["dog", "run", "beach", "jump"]


def test_beach_caption_brings_summer_tags(bridge):
    trail = bridge("Two dogs are running on the sunny beach .")
    assert trail.keywords == ["dog", "run", "sunny", "beach"]
    assert not trail.fallback and not trail.unknown_words
    top = list(trail.weights)[:3]
    assert set(top) <= set(THEMES[0].tags), top  # summer_sea
    assert sum(trail.weights.values()) == pytest.approx(1.0)
    assert trail.widened and all(w > 0 for _, _, w in trail.widened)


def test_rain_caption_brings_rain_tags(bridge):
    trail = bridge("A woman walks with an umbrella on a rainy street")
    assert trail.unknown_words == ["woman"]
    assert list(trail.weights)[0] in THEMES[3].tags  # rainy_day


def test_unknown_words_and_missing_tags_are_reported(bridge):
    trail = bridge("a snowman on a frozen lake in autumn")
    assert "가을" in trail.unknown_tags  # a real Melon tag that these playlists never carry
    assert not trail.fallback


def test_caption_without_known_word_falls_back_labelled(bridge):
    trail = bridge("A man is wearing a hat")
    assert trail.fallback
    assert trail.unknown_words == ["man", "wearing", "hat"]
    assert list(trail.weights) == bridge.query_tags[:5]


def test_weight_matrix_follows_query_tag_order(bridge):
    trails = [bridge("a beach"), bridge("snow")]
    m = bridge.weight_matrix(trails)
    assert m.shape == (2, len(bridge.query_tags))
    assert np.allclose(m.sum(1), 1.0)
    assert m[0, bridge.query_tags.index(next(iter(trails[0].weights)))] == m[0].max()
