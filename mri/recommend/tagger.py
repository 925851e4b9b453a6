"""Photo tagger: weighted English keywords for a real photo, without a trained captioner.

    tagger = PhotoTagger(load_classifier())
    x = torch.stack([tagger.preprocessing(load_image(p)) for p in paths])  # (B, 3, 224, 224)
    for tags in tagger.tag_batch(x):
        print(tags.keywords)  # [Keyword("coffee", 0.95, ["class espresso 0.95: coffee and cafe"]), ...]

Two sources, each keyword keeping the reasons it was given:
- the ImageNet classifier's top classes with their probabilities. ImageNet names objects ("sandbar", "moped");
  imagenet_moods.tsv groups the classes by the scene they stand for and gives each group the lexicon's
  mood words (sandbar -> beach, sea, summer). A class of no group goes on under its own name, for the
  bridge's open-vocabulary stage;
- what the pixels of the centre crop say about light and colour: dark or bright, grey or colourful, warm
  or cold, and how much of it is sky (top), water (bottom), green or sand.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mri.data.images import ImagePreprocessing
from mri.models.backbones import for_inference
from mri.models.image_stage import Trunk
from mri.models.imagenet import ImageNetClassifier
from mri.recommend.bridge import Keyword, merge_keywords, read_versioned, weighted_item

MOODS_HEADER = re.compile(r"^# mri-class-moods version (\d+)\b")


@dataclass(frozen=True)
class ClassMoods:
    """ImageNet class index -> (group name, ((mood word, weight), ...)), read from a versioned TSV file."""

    version: int
    groups: dict[int, tuple[str, tuple[tuple[str, float], ...]]]

    @classmethod
    def load(cls, path: str | Path | None = None, n_classes: int = 1000) -> ClassMoods:
        """The shipped mapping (mri/recommend/imagenet_moods.tsv) or another file of the same format."""
        version, lines = read_versioned(path, "imagenet_moods.tsv", MOODS_HEADER,
                                        "# mri-class-moods version <n>: ...")
        groups: dict[int, tuple[str, tuple[tuple[str, float], ...]]] = {}
        for where, line in lines:
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError(f"{where}: expected group<TAB>words<TAB>class indices: {line!r}")
            group, words, indices = parts
            moods = tuple(weighted_item(w, where) for w in words.split(","))
            for i in _indices(indices, n_classes, where):
                if i in groups:
                    raise ValueError(f"{where}: class {i} is already in group {groups[i][0]!r}")
                groups[i] = (group, moods)
        return cls(version, groups)


def _indices(text: str, n_classes: int, where: str) -> list[int]:
    out = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"{where}: {part!r} is not a class index or a range a-b")
        span = range(int(first), int(last or first) + 1)
        if not span or span[-1] >= n_classes:
            raise ValueError(f"{where}: {part!r} is outside the classes 0-{n_classes - 1}")
        out += span
    return out


def light_and_colour(rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pixel measures of (B, 3, H, W) RGB in [0, 1], each (B,): mean luminance and saturation, warmth
    (mean red - blue), and the shares of sky (top 40%), water (bottom 60%), green and sand pixels."""
    r, g, b = rgb.unbind(1)  # (B, H, W)
    value, _ = rgb.max(1)
    low, _ = rgb.min(1)
    chroma = value - low
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-6), torch.zeros_like(value))
    hue = _hue(r, g, b, value, chroma)  # degrees
    coloured = (saturation > 0.2) & (value > 0.15)
    lit = value > 0.35  # a night's dark blue is neither daylight sky nor water
    blue = coloured & lit & (hue >= 180) & (hue <= 250)
    pale = (saturation < 0.15) & (value > 0.75)
    split = int(0.4 * rgb.shape[2])  # rows above: the top 40%
    return {
        "luminance": (0.299 * r + 0.587 * g + 0.114 * b).mean((1, 2)),
        "saturation": saturation.mean((1, 2)),
        "warmth": (r - b).mean((1, 2)),
        "sky": (blue | pale)[:, :split].float().mean((1, 2)),
        "water": (coloured & lit & (hue >= 170) & (hue <= 230))[:, split:].float().mean((1, 2)),
        "green": (coloured & (hue >= 70) & (hue <= 165)).float().mean((1, 2)),
        "sand": ((saturation > 0.12) & (saturation < 0.6) & (value > 0.5) & (hue >= 25) & (hue <= 55))
        .float().mean((1, 2)),
    }


def _hue(r, g, b, value, chroma) -> torch.Tensor:
    """HSV hue in degrees [0, 360) of (B, H, W) channels; 0 where the pixel is grey."""
    c = chroma.clamp_min(1e-6)
    h = torch.where(value == r, ((g - b) / c) % 6, torch.where(value == g, (b - r) / c + 2, (r - g) / c + 4))
    return torch.where(chroma > 0, h * 60, torch.zeros_like(h))


# (measure, word, where the word starts, where its weight reaches 1): a keyword when the measure passes the start
LIGHT_WORDS = (
    ("luminance", "dark", 0.3, 0.15),
    ("luminance", "sunny", 0.6, 0.8),
    ("saturation", "gray", 0.15, 0.05),
    ("saturation", "colorful", 0.5, 0.7),
    ("warmth", "warm", 0.12, 0.25),
    ("warmth", "cold", -0.08, -0.2),
    ("sky", "sky", 0.3, 0.6),
    ("water", "water", 0.25, 0.5),
    ("green", "green", 0.3, 0.6),
    ("sand", "sand", 0.25, 0.5),
)


def light_keywords(measures: dict[str, float], weight: float) -> list[Keyword]:
    """Keywords of one photo's pixel measures, each weighing up to `weight` (how far past its threshold)."""
    out = []
    for name, word, start, full in LIGHT_WORDS:
        x = measures[name]
        strength = min(1.0, (x - start) / (full - start))
        if strength > 0:
            out.append(Keyword(word, weight * strength, [f"pixels: {word} ({name} {x:.2f})"]))
    return out


@dataclass
class PhotoTags:
    """What the tagger saw in one photo."""

    classes: list[tuple[str, float]]  # top ImageNet classes with their probabilities
    light: dict[str, float]  # light_and_colour's measures
    keywords: list[Keyword]  # merged, heaviest first

    def to_dict(self) -> dict:
        return asdict(self)


class PhotoTagger:
    """Batches of preprocessed photos -> PhotoTags, one per photo; an image model of the recommender's image stage
    (mri.models.image_stage: key "tags", `describe`).

    top_k classes with probability >= min_probability give keywords weighing their probability times the group
    word's weight; pixel keywords weigh up to light_weight.
    """

    key = "tags"

    def __init__(self, classifier: ImageNetClassifier, moods: ClassMoods | None = None, top_k: int = 5,
                 min_probability: float = 0.05, light_weight: float = 0.3):
        example = classifier.preprocessing.example()
        self.classifier = for_inference(classifier, lambda: classifier(example))
        self.trunk = Trunk.of(classifier.model, classifier.forward_features) if classifier.num_features else None
        self.moods = moods or ClassMoods.load(n_classes=len(classifier.categories))
        self.top_k, self.min_probability, self.light_weight = top_k, min_probability, light_weight

    @property
    def preprocessing(self) -> ImagePreprocessing:
        return self.classifier.preprocessing

    def vocabulary(self) -> list[str]:
        """Every word a photo can give (group words, names of classes of no group, pixel words), for caching."""
        words = {w for _, moods in self.moods.groups.values() for w, _ in moods}
        words |= {class_word(c) for i, c in enumerate(self.classifier.categories) if i not in self.moods.groups}
        return sorted(words | {w for _, w, _, _ in LIGHT_WORDS})

    def tag_batch(self, x: torch.Tensor, fmap: torch.Tensor | None = None) -> list[PhotoTags]:
        """x: (B, 3, H, W) as self.preprocessing makes them; fmap: their (B, C, h, w) trunk feature maps, if run."""
        with torch.inference_mode():
            logits = self.classifier(x) if fmap is None else self.classifier.forward_head(fmap)  # (B, 1000)
            probs = logits.softmax(-1)
            top_p, top_i = probs.topk(self.top_k, dim=-1)  # (B, k)
            pre = self.preprocessing
            mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
            measures = light_and_colour((x * std + mean).clamp(0, 1))
        out = []
        for b, (ps, ids) in enumerate(zip(top_p.tolist(), top_i.tolist(), strict=True)):
            classes = [(self.classifier.categories[i], p) for p, i in zip(ps, ids, strict=True)]
            light = {k: float(v[b]) for k, v in measures.items()}
            keywords = self._class_keywords(ps, ids)
            keywords += light_keywords(light, self.light_weight)
            out.append(PhotoTags(classes, light, merge_keywords(keywords)))
        return out

    describe = tag_batch

    def _class_keywords(self, probs: list[float], indices: list[int]) -> list[Keyword]:
        out = []
        for p, i in zip(probs, indices, strict=True):
            if p < self.min_probability:
                continue
            name = self.classifier.categories[i]
            if i in self.moods.groups:
                group, moods = self.moods.groups[i]
                out += [Keyword(w, p * x, [f"class {name} {p:.2f}: {group}"]) for w, x in moods]
            else:
                out.append(Keyword(class_word(name), p, [f"class {name} {p:.2f}"]))
        return out


def class_word(name: str) -> str:
    """An ImageNet class name as a keyword: lower case ("Granny Smith" -> "granny smith")."""
    return name.lower()
