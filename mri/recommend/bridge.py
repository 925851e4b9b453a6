"""Bridge from an English caption to weighted Melon tags, keeping every step for display.

    "Two dogs run on the sunny beach ."
      keywords  dog, run, sunny, beach               stop words out, lemmatised (rules guided by the lexicon)
      lexicon   beach -> 해변 1, 바다 1, 여름 1 ...    lexicon.tsv: English lemma -> real Melon tags
      widened   바다 -> 시원한 0.5 * sim, ...          nearest query tags by TagSimilarity, weight decaying by rank
      weights   over the tag-mel model's query tags, summing to 1

Words without a lexicon entry and lexicon tags the catalogue's playlists never carry are reported, not
dropped silently. A caption with no usable word falls back to the most frequent query tags, labelled so.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Container, Sequence

import numpy as np

from mri.data.tags import TagSimilarity, normalize_tag

LEXICON_HEADER = re.compile(r"^# mri-lexicon version (\d+)\b")

STOP_WORDS = frozenset("""
a an the this that these those there here it its it's they them their he him his she her hers we us our you your i me my
is are was were be been being am do does did doing has have had having will would can could may might shall should must
and or but nor so yet if then than as while when where who whom whose which what why how
of in on at by for with without to from into onto upon over under above below near next beside behind between among
through across along around about against toward towards off out up down away back front top bottom side left right
one two three four five six seven eight nine ten no not some any all each every both few many much more most other
another such own same very too also just only still something someone
""".split())

# Plurals and past forms the suffix rules cannot undo; Flickr8k's frequent ones.
IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "people": "person", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "leaves": "leaf", "ran": "run", "swam": "swim", "rode": "ride",
    "sat": "sit", "stood": "stand", "flew": "fly", "fell": "fall", "lay": "lie", "lying": "lie", "went": "go",
    "drove": "drive", "sang": "sing", "took": "take", "threw": "throw", "caught": "catch", "wore": "wear",
}


def lemma_candidates(word: str) -> list[str]:
    """The word and what the suffix rules make of it, most plausible first (plural -s/-es/-ies, -ing, -ed)."""
    if word in IRREGULAR:
        return [IRREGULAR[word]]
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")  # puppies -> puppy
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])  # beaches -> beach
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        out.append(word[:-1])  # dogs -> dog
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 2:
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                out.append(stem[:-1])  # running -> run, swimming -> swim
            out += [stem, stem + "e"]  # playing -> play, dancing -> dance
            if suffix == "ed" and stem.endswith("i"):
                out.append(stem[:-1] + "y")  # tried -> try
    return out


def lemmatize(word: str, known: Container[str]) -> str:
    """The first candidate lemma the lexicon knows; otherwise the plural rule's guess or the word itself."""
    candidates = lemma_candidates(word)
    for c in candidates:
        if c in known:
            return c
    if word in IRREGULAR:
        return IRREGULAR[word]
    plural = [c for c in candidates[1:] if len(c) == len(word) - 1 or c.endswith("y")]
    return plural[0] if word.endswith("s") and plural else word


def keywords(caption: str, known: Container[str]) -> list[tuple[str, str]]:
    """(word as written, lemma) of the caption's content words, first occurrence of each lemma, in order."""
    seen, out = set(), []
    for word in re.findall(r"[a-z]+", caption.lower()):
        if word in STOP_WORDS or len(word) < 2:
            continue
        lemma = lemmatize(word, known)
        if lemma not in seen and lemma not in STOP_WORDS:
            seen.add(lemma)
            out.append((word, lemma))
    return out


@dataclass(frozen=True)
class Lexicon:
    """English lemma -> ((Melon tag, weight), ...), read from a versioned TSV file."""

    version: int
    entries: dict[str, tuple[tuple[str, float], ...]]

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Lexicon":
        """The shipped lexicon (mri/recommend/lexicon.tsv) or another file of the same format."""
        text = (Path(path).read_text(encoding="utf-8") if path is not None
                else resources.files("mri.recommend").joinpath("lexicon.tsv").read_text(encoding="utf-8"))
        lines = text.splitlines()
        header = LEXICON_HEADER.match(lines[0]) if lines else None
        if header is None:
            raise ValueError(f"lexicon {path or 'lexicon.tsv'}: the first line must be '# mri-lexicon version <n>: ...'")
        entries = {}
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip() or line.startswith("#"):
                continue
            word, _, tags = line.partition("\t")
            if not tags or word in entries:
                raise ValueError(f"lexicon line {n}: {'duplicate word' if tags else 'expected word<TAB>tags'}: {line!r}")
            entries[word] = tuple(_tag_weight(t, n) for t in tags.split(","))
        return cls(int(header.group(1)), entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, word: object) -> bool:
        return word in self.entries


def _tag_weight(item: str, line: int) -> tuple[str, float]:
    tag, _, weight = item.strip().partition(":")
    if not tag:
        raise ValueError(f"lexicon line {line}: empty tag")
    return tag, float(weight) if weight else 1.0


@dataclass
class Trail:
    """Every step from caption to tag weights."""

    caption: str
    keywords: list[str]  # lemmas of the content words, in caption order
    mapped: dict[str, list[tuple[str, float]]]  # keyword -> lexicon tags with weights
    unknown_words: list[str]  # keywords the lexicon has no entry for
    unknown_tags: list[str]  # lexicon tags no playlist of this catalogue carries
    widened: list[tuple[str, str, float]] = field(default_factory=list)  # (seed tag, query tag, weight added)
    weights: dict[str, float] = field(default_factory=dict)  # query tag -> weight, sums to 1, largest first
    fallback: bool = False  # no keyword reached a query tag: weights are the most frequent tags

    def to_dict(self) -> dict:
        return asdict(self)


class Bridge:
    """caption -> Trail, over the query tags of a tag-mel model.

    neighbours: query tags each seed tag widens to; the r-th nearest gets seed weight * similarity * decay**r
    (when its similarity is at least min_similarity). fallback_tags: how many of the most frequent query
    tags a caption without usable words gets.
    """

    def __init__(self, lexicon: Lexicon, similarity: TagSimilarity, query_tags: Sequence[str], neighbours: int = 3,
                 decay: float = 0.5, min_similarity: float = 0.2, fallback_tags: int = 5):
        self.lexicon, self.similarity = lexicon, similarity
        self.query_tags = [normalize_tag(t) for t in query_tags]
        vocab = similarity.vocab.index
        missing = [t for t in self.query_tags if t not in vocab]
        if missing:
            raise ValueError(f"query tags {missing[:5]} are not in the playlists' tag vocabulary: the bridge needs "
                             "the Melon root the tag-mel model was trained on")
        self.query_rows = np.array([vocab[t] for t in self.query_tags])  # (T,)
        self.neighbours, self.decay, self.min_similarity = neighbours, decay, min_similarity
        self.fallback_tags = fallback_tags

    def __call__(self, caption: str) -> Trail:
        words = [lemma for _, lemma in keywords(caption, self.lexicon)]
        mapped = {w: list(self.lexicon.entries[w]) for w in words if w in self.lexicon}
        vocab = self.similarity.vocab.index
        seeds: dict[str, float] = defaultdict(float)
        unknown_tags = []
        for tags in mapped.values():
            for tag, weight in tags:
                key = normalize_tag(tag)
                if key in vocab:
                    seeds[key] += weight
                elif tag not in unknown_tags:
                    unknown_tags.append(tag)
        trail = Trail(caption, words, mapped, [w for w in words if w not in self.lexicon], unknown_tags)
        weights = self._widen(seeds, trail)
        if not weights:
            trail.fallback = True
            weights = dict.fromkeys(self.query_tags[:self.fallback_tags], 1.0)
        total = sum(weights.values())
        trail.weights = {t: w / total for t, w in sorted(weights.items(), key=lambda kv: -kv[1])}
        return trail

    def _widen(self, seeds: dict[str, float], trail: Trail) -> dict[str, float]:
        """Seed weights on query tags, plus each seed's nearest query tags with decaying weights."""
        if not seeds:
            return {}
        vocab = self.similarity.vocab.index
        sims = self.similarity.matrix([vocab[s] for s in seeds])[:, self.query_rows]  # (S, T)
        weights: dict[str, float] = defaultdict(float)
        for (seed, w), row in zip(seeds.items(), sims):
            if seed in self.query_tags:
                weights[seed] += w
            order = [j for j in np.argsort(-row, kind="stable") if self.query_tags[j] != seed][:self.neighbours]
            for rank, j in enumerate(order, start=1):
                if row[j] >= self.min_similarity:
                    added = w * float(row[j]) * self.decay**rank
                    weights[self.query_tags[j]] += added
                    trail.widened.append((seed, self.query_tags[j], added))
        return dict(weights)

    def weight_matrix(self, trails: Sequence[Trail]) -> np.ndarray:
        """(Q, T) float32: each trail's weights over the query tags, in the model's order."""
        col = {t: j for j, t in enumerate(self.query_tags)}
        out = np.zeros((len(trails), len(self.query_tags)), dtype=np.float32)
        for i, trail in enumerate(trails):
            for tag, w in trail.weights.items():
                out[i, col[tag]] = w
        return out
