"""The photo tagger: ImageNet classes -> mood words, light and colour keywords, batches, on real photographs."""
import socket
from pathlib import Path

import pytest
import torch

from mri.data.images import load_image
from mri.models.imagenet import load_classifier
from mri.recommend.bridge import Lexicon
from mri.recommend.tagger import LIGHT_WORDS, ClassMoods, PhotoTagger, light_and_colour, light_keywords

PHOTOS = Path(__file__).resolve().parents[1] / "experiments" / "real_photos" / "photos"


@pytest.fixture(scope="module")
def tagger() -> PhotoTagger:
    return PhotoTagger(load_classifier())


def test_shipped_class_moods_are_valid_and_speak_the_lexicons_words():
    moods = ClassMoods.load()
    assert moods.version == 1 and len(moods.groups) > 400
    words = {w for _, ws in moods.groups.values() for w, _ in ws}
    lexicon = Lexicon.load()
    assert words <= set(lexicon.entries), words - set(lexicon.entries)  # each group word is explainable
    assert {w for _, w, _, _ in LIGHT_WORDS} <= set(lexicon.entries)
    assert moods.groups[978][0] == "beach" and moods.groups[967][0] == "coffee and cafe"  # seashore, espresso


@pytest.mark.parametrize("line, message", [
    ("beach\tbeach\t978,978", "already in group"),
    ("beach\tbeach\t1200", "outside the classes"),
    ("beach\tbeach\tseashore", "not a class index"),
    ("beach\tbeach", "expected group"),
])
def test_bad_class_moods_files_say_what_is_wrong(tmp_path, line, message):
    path = tmp_path / "moods.tsv"
    path.write_text(f"# mri-class-moods version 1: test\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        ClassMoods.load(path)
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="first line"):
        ClassMoods.load(path)


def _image(top, bottom, size=32) -> torch.Tensor:
    """(1, 3, size, size) RGB in [0, 1]: the top 40% one colour, the rest another."""
    x = torch.empty(1, 3, size, size)
    split = int(0.4 * size)
    x[0, :, :split] = torch.tensor(top).view(3, 1, 1)
    x[0, :, split:] = torch.tensor(bottom).view(3, 1, 1)
    return x


@pytest.mark.parametrize("top, bottom, present, absent", [
    ((0.45, 0.65, 0.95), (0.1, 0.45, 0.75), {"sky", "water", "cold"}, {"dark", "green", "sand", "warm"}),  # sea
    ((0.05, 0.05, 0.1), (0.03, 0.03, 0.05), {"dark"}, {"sky", "water", "sunny"}),  # night: no daylight sky
    ((0.2, 0.6, 0.15), (0.2, 0.6, 0.15), {"green"}, {"sky", "water", "gray"}),  # a meadow
    ((0.9, 0.8, 0.6), (0.9, 0.8, 0.6), {"sand", "sunny", "warm"}, {"green", "dark"}),  # sand
    ((0.5, 0.5, 0.5), (0.45, 0.45, 0.45), {"gray"}, {"colorful", "green", "sand"}),  # fog
])
def test_light_and_colour_words(top, bottom, present, absent):
    measures = {k: float(v[0]) for k, v in light_and_colour(_image(top, bottom)).items()}
    words = {k.word: k for k in light_keywords(measures, 0.3)}
    assert present <= set(words) and not absent & set(words), (measures, sorted(words))
    assert all(0 < k.weight <= 0.3 and k.sources[0].startswith("pixels: ") for k in words.values())


def test_real_photos_in_one_batch(tagger):
    names = ["coffee.jpg", "motorcycle.jpg", "ladybird.jpg"]
    x = torch.stack([tagger.preprocessing(load_image(PHOTOS / n)) for n in names])  # (3, 3, 224, 224)
    coffee, motorcycle, ladybird = tagger.tag_batch(x)
    assert coffee.classes[0][0] == "espresso" and coffee.classes[0][1] > 0.8
    assert [k.word for k in coffee.keywords[:2]] == ["coffee", "cafe"]
    assert "class espresso" in coffee.keywords[0].sources[0]
    assert {"bike", "road"} <= {k.word for k in motorcycle.keywords[:3]}
    assert ladybird.keywords[0].word == "flower" and "green" in {k.word for k in ladybird.keywords}
    alone = tagger.tag_batch(x[1:2])[0]  # a batch answers each photo as it would alone
    assert [k.word for k in alone.keywords] == [k.word for k in motorcycle.keywords]
    assert alone.keywords[0].weight == pytest.approx(motorcycle.keywords[0].weight, abs=1e-4)


def test_a_class_of_no_group_keeps_its_name(tagger):
    vocabulary = tagger.vocabulary()
    assert "drilling platform" in vocabulary and "beach" in vocabulary and "dark" in vocabulary
    keywords = tagger._class_keywords([0.6, 0.2, 0.01], [540, 978, 1])  # drilling platform, seashore, goldfish
    assert keywords[0].word == "drilling platform" and keywords[0].weight == pytest.approx(0.6)
    assert {k.word for k in keywords[1:]} == {"beach", "sea", "summer"}  # goldfish below min_probability


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_a_torchvision_classifier_offline_without_its_weights_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    _offline(monkeypatch)
    with pytest.raises(RuntimeError, match="resnet18 weights .* cannot be downloaded .*efficientnet_lite0"):
        load_classifier("resnet18")
    with pytest.raises(ValueError, match="unknown image classifier 'resnet999'.*resnet18"):
        load_classifier("resnet999")


def test_a_torchvision_classifier_serves_the_tagger_from_its_cache(monkeypatch, tmp_path):
    import torchvision.models as tvm

    weights = tvm.ResNet18_Weights.DEFAULT
    (tmp_path / "checkpoints").mkdir()
    # as a download leaves it in the hub cache
    torch.save(tvm.resnet18().state_dict(), tmp_path / "checkpoints" / Path(weights.url).name)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    _offline(monkeypatch)
    classifier = load_classifier("resnet18")
    assert classifier.preprocessing.crop == 224 and classifier.preprocessing.mean == (0.485, 0.456, 0.406)
    tagger = PhotoTagger(classifier)
    (tags,) = tagger.tag_batch(tagger.preprocessing(load_image(PHOTOS / "coffee.jpg"))[None])
    assert len(tags.classes) == 5 and tags.keywords
