"""Bridge from weighted keywords (a caption's, a photo tagger's, a user's words) to weighted Melon tags, keeping
every step for display.

    "Two dogs run on the sunny beach ." / tagger: espresso 0.95 -> coffee, cafe / text: "비 오는 밤 드라이브"
      keywords  dog, run, sunny, beach; coffee 0.95; 비, 밤, 드라이브  stop words out, lemmatised, with weights
      lexicon   beach -> 해변 1, 바다 1, 여름 1 ...    lexicon.tsv: English lemma -> real Melon tags
      tag       밤 -> 밤                              a word that is a tag of the catalogue (Korean words)
      embedded  espresso -> 커피 (score 0.31, cos 0.45) the rest: multilingual sentence embedding (embedding.py)
      widened   바다 -> 시원한 0.5 * sim, ...          nearest query tags by TagSimilarity, weight decaying by rank
      weights   over the tag-mel model's query tags, summing to 1

Words that reach no tag and lexicon tags the catalogue's playlists never carry are reported, not dropped
silently. Keywords with no usable word fall back to the most frequent query tags, labelled so.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from mri.data.melon import Playlist
from mri.data.tags import TagSimilarity, normalize_tag
from mri.recommend.embedding import TagEmbeddings

LEXICON_HEADER = re.compile(r"^# mri-lexicon version (\d+)\b")
MAX_TEXT_CHARS = 500  # a user's text longer than this is refused

STOP_WORDS = frozenset([
    "a", "an", "the", "this", "that", "these", "those", "there", "here", "it", "its", "it's", "they", "them",
    "their", "he", "him", "his", "she", "her", "hers", "we", "us", "our", "you", "your", "i", "me", "my", "is",
    "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "has", "have", "had", "having",
    "will", "would", "can", "could", "may", "might", "shall", "should", "must", "and", "or", "but", "nor", "so",
    "yet", "if", "then", "than", "as", "while", "when", "where", "who", "whom", "whose", "which", "what", "why",
    "how", "of", "in", "on", "at", "by", "for", "with", "without", "to", "from", "into", "onto", "upon", "over",
    "under", "above", "below", "near", "next", "beside", "behind", "between", "among", "through", "across", "along",
    "around", "about", "against", "toward", "towards", "off", "out", "up", "down", "away", "back", "front", "top",
    "bottom", "side", "left", "right", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "no", "not", "some", "any", "all", "each", "every", "both", "few", "many", "much", "more", "most",
    "other", "another", "such", "own", "same", "very", "too", "also", "just", "only", "still", "something",
    "someone",
])

# Korean particles, function words, and words every music request has (노래, 듣기 좋은): they reach no mood.
KOREAN_STOP_WORDS = frozenset([
    "은", "는", "이", "가", "을", "를", "의", "에", "에서", "와", "과", "도", "로", "으로", "랑", "이랑", "하고",
    "그리고", "그런데", "하지만", "또", "또는", "및", "등", "그", "저", "이", "이런", "저런", "그런", "너무",
    "정말", "진짜", "아주", "좀", "더", "잘", "안", "못", "것", "거", "수", "때", "중", "나", "너", "우리", "저희",
    "제", "내", "당신", "그냥", "있는", "있다", "없는", "없다", "하다", "한", "할", "해", "했다", "하는", "되는",
    "오는", "가는", "같은", "노래", "노래들", "음악", "곡", "플레이리스트", "듣기", "듣는", "들을", "듣고", "좋은",
    "좋아", "좋다", "추천", "모음",
])

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
    def load(cls, path: str | Path | None = None) -> Lexicon:
        """The shipped lexicon (mri/recommend/lexicon.tsv) or another file of the same format."""
        version, lines = read_versioned(path, "lexicon.tsv", LEXICON_HEADER, "# mri-lexicon version <n>: ...")
        entries = {}
        for where, line in lines:
            word, _, tags = line.partition("\t")
            if not tags or word in entries:
                raise ValueError(f"{where}: {'duplicate word' if tags else 'expected word<TAB>tags'}: {line!r}")
            entries[word] = tuple(weighted_item(t, where) for t in tags.split(","))
        return cls(version, entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, word: object) -> bool:
        return word in self.entries


def read_versioned(path: str | Path | None, shipped: str, header: re.Pattern, first_line: str
                   ) -> tuple[int, list[tuple[str, str]]]:
    """A versioned data file (path, or the one shipped in mri/recommend): its version and its content lines, each
    with where it is ("lexicon.tsv line 7") for errors; comments and blank lines left out."""
    name = str(path or shipped)
    text = (Path(path).read_text(encoding="utf-8") if path is not None
            else resources.files("mri.recommend").joinpath(shipped).read_text(encoding="utf-8"))
    lines = text.splitlines()
    found = header.match(lines[0]) if lines else None
    if found is None:
        raise ValueError(f"{name}: the first line must be '{first_line}'")
    return int(found.group(1)), [(f"{name} line {n}", line) for n, line in enumerate(lines[1:], start=2)
                                 if line.strip() and not line.startswith("#")]


def weighted_item(item: str, where: str) -> tuple[str, float]:
    """'tag:0.5' -> ('tag', 0.5); 'tag' -> ('tag', 1.0)."""
    word, _, weight = item.strip().partition(":")
    if not word:
        raise ValueError(f"{where}: empty entry in {item!r}")
    return word, float(weight) if weight else 1.0


@dataclass
class Keyword:
    """A word for the bridge (English or Korean), its weight and why it was given."""

    word: str
    weight: float = 1.0
    sources: list[str] = field(default_factory=list)  # "caption", "text", "class seashore 0.62: beach", ...


def merge_keywords(keywords: Sequence[Keyword]) -> list[Keyword]:
    """One Keyword per word (weights added, sources joined), heaviest first (ties in the order given)."""
    merged: dict[str, Keyword] = {}
    for k in keywords:
        m = merged.setdefault(k.word, Keyword(k.word, 0.0))
        m.weight += k.weight
        m.sources += k.sources
    return sorted(merged.values(), key=lambda k: -k.weight)


class TextRefused(ValueError):
    """A user's text the bridge will not take (too long)."""


def text_keywords(text: str, known: Container[str]) -> tuple[list[Keyword], list[str]]:
    """A user's words (English lemmatised like captions, Korean as written) as keywords of weight 1, and notes.

    Empty or stop-word-only text gives no keyword and a note; text over MAX_TEXT_CHARS is refused (TextRefused).
    """
    if len(text) > MAX_TEXT_CHARS:
        raise TextRefused(f"the text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}")
    words, seen = [], set()
    for token in re.findall(r"[a-z]+|[가-힣]+", text.lower()):
        if token.isascii():
            found = keywords(token, known)
            word = found[0][1] if found else None
        else:
            word = token if token not in KOREAN_STOP_WORDS else None
        if word and word not in seen:
            seen.add(word)
            words.append(Keyword(word, 1.0, ["text"]))
    if not words:
        shown = text.strip()[:40]
        return [], [f"text {shown!r} ignored: no content words" if shown else "text ignored: empty"]
    return words, []


def caption_keywords(caption: str, known: Container[str], weight: float = 1.0, source: str = "caption"
                     ) -> list[Keyword]:
    """A caption's content words (lemmas) as keywords of the same weight."""
    return [Keyword(lemma, weight, [source]) for _, lemma in keywords(caption, known)]


def tag_descriptions(playlists: Sequence[Playlist], tags: Sequence[str], titles_per_tag: int = 30
                     ) -> dict[str, list[str]]:
    """tag -> the most frequent titles of the playlists that carry it (at most titles_per_tag), for embedding."""
    wanted = {normalize_tag(t): t for t in tags}
    counts: dict[str, dict[str, int]] = {t: defaultdict(int) for t in tags}
    for p in playlists:
        if p.title.strip():
            for tag in {normalize_tag(t) for t in p.tags} & wanted.keys():
                counts[wanted[tag]][p.title.strip()] += 1
    return {t: sorted(c, key=lambda title: (-c[title], title))[:titles_per_tag] for t, c in counts.items()}


@dataclass
class Trail:
    """Every step from keywords to tag weights."""

    caption: str
    keywords: list[str]  # the keywords' words (lemmas), heaviest first (equal weights: in the order given)
    mapped: dict[str, list[tuple[str, float]]]  # keyword -> lexicon tags with weights (or the tag it is: weight 1)
    unknown_words: list[str]  # keywords that reached no tag
    unknown_tags: list[str]  # lexicon tags no playlist of this catalogue carries
    widened: list[tuple[str, str, float]] = field(default_factory=list)  # (seed tag, query tag, weight added)
    weights: dict[str, float] = field(default_factory=dict)  # query tag -> weight, sums to 1, largest first
    fallback: bool = False  # no keyword reached a query tag: weights are the most frequent tags
    keyword_weights: dict[str, float] = field(default_factory=dict)  # keyword -> its weight
    sources: dict[str, list[str]] = field(default_factory=dict)  # keyword -> why it was given
    how: dict[str, str] = field(default_factory=dict)  # keyword -> "lexicon", "tag" or "embedding"
    embedded: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)  # -> (tag, score, cosine)
    notes: list[str] = field(default_factory=list)  # what was ignored and why

    def to_dict(self) -> dict:
        return asdict(self)


class Bridge:
    """Keywords -> Trail, over the query tags of a tag-mel model.

    A keyword reaches tags through the lexicon, else by being a catalogue tag itself (a Korean word), else
    through `embeddings` (its `embedding_tags` best query tags scoring at least `min_score`, weight = keyword
    weight * cosine). neighbours: query tags each seed tag widens to; the r-th nearest gets
    seed weight * similarity * decay**r (when its similarity is at least min_similarity). fallback_tags: how
    many of the most frequent query tags keywords without usable words get.
    """

    def __init__(self, lexicon: Lexicon, similarity: TagSimilarity, query_tags: Sequence[str], neighbours: int = 3,
                 decay: float = 0.5, min_similarity: float = 0.2, fallback_tags: int = 5,
                 embeddings: TagEmbeddings | None = None, embedding_tags: int = 2, min_score: float = 0.1):
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
        self.embeddings, self.embedding_tags, self.min_score = embeddings, embedding_tags, min_score

    def __call__(self, caption: str) -> Trail:
        """A caption's keywords (weight 1 each) -> Trail."""
        return self.from_keywords(caption_keywords(caption, self.lexicon), caption)

    def from_keywords(self, keywords: Sequence[Keyword], caption: str = "", notes: Sequence[str] = ()) -> Trail:
        """Weighted keywords -> Trail; the same word twice counts once with the weights added."""
        merged = {k.word: k for k in merge_keywords([Keyword(self._lemma(k.word), k.weight, k.sources)
                                                      for k in keywords])}
        words = list(merged)
        vocab = self.similarity.vocab.index
        trail = Trail(caption, words, {}, [], [], keyword_weights={w: k.weight for w, k in merged.items()},
                      sources={w: k.sources for w, k in merged.items()}, notes=list(notes))
        seeds: dict[str, float] = defaultdict(float)
        rest = []
        for word, k in merged.items():
            if word in self.lexicon:
                trail.mapped[word], trail.how[word] = list(self.lexicon.entries[word]), "lexicon"
                for tag, weight in self.lexicon.entries[word]:
                    key = normalize_tag(tag)
                    if key in vocab:
                        seeds[key] += k.weight * weight
                    elif tag not in trail.unknown_tags:
                        trail.unknown_tags.append(tag)
            elif normalize_tag(word) in vocab:
                trail.mapped[word], trail.how[word] = [(normalize_tag(word), 1.0)], "tag"
                seeds[normalize_tag(word)] += k.weight
            else:
                rest.append(word)
        self._embed(rest, merged, seeds, trail)
        weights = self._widen(seeds, trail)
        if not weights:
            trail.fallback = True
            weights = dict.fromkeys(self.query_tags[:self.fallback_tags], 1.0)
        total = sum(weights.values())
        trail.weights = {t: w / total for t, w in sorted(weights.items(), key=lambda kv: -kv[1])}
        return trail

    def _lemma(self, word: str) -> str:
        """An English single word lemmatised like a caption's; phrases and Korean words as they are."""
        word = word.strip().lower()
        return lemmatize(word, self.lexicon) if re.fullmatch(r"[a-z]+", word) else word

    def _embed(self, words: list[str], merged: dict[str, Keyword], seeds: dict[str, float], trail: Trail) -> None:
        """Words without a lexicon entry or tag of their own -> their nearest query tags by embedding."""
        reached = ([[] for _ in words] if self.embeddings is None or not words
                   else self.embeddings.nearest(words, self.embedding_tags, self.min_score))
        for word, tags in zip(words, reached, strict=True):
            if not tags:
                trail.unknown_words.append(word)
                continue
            trail.embedded[word], trail.how[word] = tags, "embedding"
            for tag, _, cosine in tags:
                seeds[normalize_tag(tag)] += merged[word].weight * max(cosine, 0.0)

    def _widen(self, seeds: dict[str, float], trail: Trail) -> dict[str, float]:
        """Seed weights on query tags, plus each seed's nearest query tags with decaying weights."""
        if not seeds:
            return {}
        vocab = self.similarity.vocab.index
        sims = self.similarity.matrix([vocab[s] for s in seeds], self.query_rows)  # (S, T)
        weights: dict[str, float] = defaultdict(float)
        for (seed, w), row in zip(seeds.items(), sims, strict=True):
            if seed in self.query_tags:
                weights[seed] += w
            nearest = np.argsort(-row, kind="stable")[:self.neighbours + 1]  # the seed itself may be among them
            order = [j for j in nearest if self.query_tags[j] != seed][:self.neighbours]
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
