"""Playlist statistics of the generated Melon data: the small default, or the real release's (playlists="melon").

The default ("themes") draws 10-60 songs and 1-5 tags of the themes' ~70 tags per playlist. "melon" draws what
train.json has (docs/data-formats.md): 115,071 / 23,015 / 10,740 train/val/test playlists (in proportion
for other counts), songs per playlist median 30, mean ~46, max 200; tags per playlist median 3, mean ~4.1,
max 11, from a vocabulary with a long tail (~30,000 distinct tags in train.json at the real size: a few on
thousands of playlists, most on one or two) and free-text variants (Pop / POP / 팝, 캐롤 / 캐럴,
여름노래 / 여름 노래). Tail tags belong to a theme (or to none), so tag similarity keeps its structure.
"""
from __future__ import annotations

import random

import numpy as np

from mri.data.synthetic.themes import GENERIC_TAGS, SPELLING_VARIANTS, THEMES
from mri.data.tags import normalize_tag

STYLES = ("themes", "melon")
MELON_SPLIT_COUNTS = (115_071, 23_015, 10_740)  # train / val / test playlists of the release

# songs per playlist: lognormal around the median 30, cut at the release's maximum of 200 (mean ~46)
LENGTH_MEDIAN, LENGTH_SIGMA, MAX_LENGTH = 30, 1.0, 200
# tags per playlist, 1..11: median 3, mean 4.1 as in train.json
TAG_COUNT_P = (0.12, 0.19, 0.20, 0.13, 0.10, 0.08, 0.06, 0.05, 0.04, 0.02, 0.01)

# The most frequent tags of train.json, most frequent first (docs/data-formats.md).
REAL_TOP_TAGS = (
    "기분전환", "감성", "휴식", "발라드", "잔잔한", "드라이브", "힐링", "사랑", "새벽", "밤", "카페", "힙합", "추억",
    "설렘", "이별", "여행", "신나는", "회상", "매장음악", "팝", "알앤비", "스트레스", "랩", "가을", "겨울", "여름",
    "산책",
    "봄", "슬픔", "운동", "인디", "비오는날", "재즈", "뉴에이지", "피아노",
)
# Tag frequency by rank r over the vocabulary: proportional to 1 / (r + ZIPF_SHIFT) ** ZIPF_EXPONENT.
ZIPF_EXPONENT, ZIPF_SHIFT = 1.3, 10.0
VOCABULARY_SIZE = 70_000  # candidate tags; about 30,000 of them are drawn at the real size
GENERIC_TAIL_SHARE = 0.3  # tail tags that belong to no theme (artists, years, words)
CROSS_TAG_RATE = 0.01  # a tag of a nearby theme
VARIANT_RATE = 0.1  # a tag written as one of its variants (same tag once normalised, or a known synonym)
EXTRA_VARIANTS = {"여름노래": ("여름 노래",), "겨울노래": ("겨울 노래",), "크리스마스": ("크리스마스 ", "X-mas")}

_PREFIXES = ("새벽", "혼자", "퇴근길", "출근길", "주말", "밤에", "아침", "오후", "비오는", "설레는", "감성", "나른한",
             "조용한", "달달한", "잔잔한", "신나는", "2019", "2020", "90년대", "00년대", "10년대", "광고", "드라마")
_SUFFIXES = ("노래", "음악", "감성", "플리", "송", "bgm", "모음", "추천", "할때", "듣기좋은", "명곡", "느낌", "st",
             "곡", "리스트", "여행", "날씨", "분위기")
_WORDS = ("chill", "lofi", "acoustic", "indie", "mood", "vibe", "groove", "soul", "funk", "city", "dream", "night",
          "love", "rain", "summer", "winter", "coffee", "drive", "party", "healing")
_SYLLABLES = "가나다라마바사아자차카타파하준민서연지수현우진영은예도윤희성혜소미리태경빛별솔"


def split_of_playlists(rng: np.random.Generator, n_playlists: int) -> np.ndarray:
    """(P,) split index 0/1/2, with the release's train/val/test counts in proportion (exact at 148,826)."""
    shares = np.asarray(MELON_SPLIT_COUNTS) / sum(MELON_SPLIT_COUNTS)
    counts = np.floor(shares * n_playlists).astype(int)
    counts[0] += n_playlists - counts.sum()
    return rng.permutation(np.repeat(np.arange(3), counts))


class LongTailTags:
    """The tag vocabulary of "melon" playlists: real head tags, then generated tail tags, each with a theme.

    theme[i] is the theme index of tags[i], or -1 for a tag of no theme. A playlist of theme t draws its
    tags by Zipf weight among the tags of theme t and of no theme (whose weight is shared by the themes, so a
    tag's overall frequency follows its rank whatever its theme).
    """

    def __init__(self, seed: int, size: int = VOCABULARY_SIZE):
        rng = random.Random(f"melon-tags-{seed}")  # Python's generator: 70,000 small draws in a fraction of a second
        theme_of = {tag: i for i, t in enumerate(THEMES) for tag in t.tags}
        head = list(dict.fromkeys((*REAL_TOP_TAGS, *(tag for t in THEMES for tag in t.tags), *GENERIC_TAGS)))
        tags, themes = head, [theme_of.get(tag, -1) for tag in head]
        seen = {normalize_tag(t) for t in tags}
        tail, tail_themes = [], []
        while len(tags) + len(tail) < size:
            tag, theme = self._tail_tag(rng)
            if normalize_tag(tag) not in seen:
                seen.add(normalize_tag(tag))
                tail.append(tag)
                tail_themes.append(theme)
        order = list(range(len(tail)))
        rng.shuffle(order)  # tail ranks mix themes
        self.tags = tuple(tags) + tuple(tail[i] for i in order)
        self.theme = np.asarray(themes + [tail_themes[i] for i in order])  # (V,)
        weight = 1.0 / (np.arange(len(self.tags)) + ZIPF_SHIFT) ** ZIPF_EXPONENT  # (V,)
        weight[self.theme < 0] /= len(THEMES)  # in every theme's pool
        self.pools = []  # per theme: (tag ids, cumulative weight)
        for t in range(len(THEMES)):
            ids = np.flatnonzero((self.theme == t) | (self.theme < 0))
            self.pools.append((ids, np.cumsum(weight[ids] * len(THEMES))))

    @staticmethod
    def _tail_tag(rng: random.Random) -> tuple[str, int]:
        """A free-text tag as users type them: a theme tag with a prefix or suffix, or words, or a name."""
        kind = rng.random()
        if kind < 1 - GENERIC_TAIL_SHARE:
            theme = rng.randrange(len(THEMES))
            base = rng.choice(THEMES[theme].tags)
            affix = rng.randrange(3)
            prefix = rng.choice(_PREFIXES) if affix != 1 else ""
            suffix = rng.choice(_SUFFIXES) if affix != 0 else ""
            return prefix + base + suffix, theme
        if kind < 1 - GENERIC_TAIL_SHARE / 2:
            words = rng.sample(_WORDS, rng.randint(1, 2))
            return "".join(words) + (rng.choice(_SUFFIXES) if rng.random() < 0.3 else ""), -1
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))), -1

    def draw(self, rng: np.random.Generator, theme_index: int, affinity: np.ndarray) -> list[str]:
        """One playlist's tags: 1-11 distinct tags (normalised), mostly of its theme, some written as variants."""
        n = int(rng.choice(len(TAG_COUNT_P), p=TAG_COUNT_P)) + 1
        tags, seen = [], set()
        for _ in range(4 * n):  # bounded: a tiny pool cannot loop forever
            if len(tags) == n:
                break
            theme = int(rng.choice(len(THEMES), p=affinity[theme_index])) if rng.random() < CROSS_TAG_RATE \
                else theme_index
            ids, cdf = self.pools[theme]
            tag = self.tags[ids[np.searchsorted(cdf, rng.random() * cdf[-1], side="right")]]
            if normalize_tag(tag) in seen:
                continue
            seen.add(normalize_tag(tag))
            tags.append(_variant(rng, tag) if rng.random() < VARIANT_RATE else tag)
        return tags


def _variant(rng, tag: str) -> str:
    """Another way users write `tag`: a listed variant, another case, or a space inside a compound."""
    listed = SPELLING_VARIANTS.get(tag, ()) + EXTRA_VARIANTS.get(tag, ())
    if listed:
        return listed[rng.integers(len(listed))]
    if tag.isascii():
        return (tag.upper(), tag.title(), tag)[rng.integers(3)]
    if len(tag) >= 4:
        cut = int(rng.integers(2, len(tag) - 1))
        return f"{tag[:cut]} {tag[cut:]}"
    return tag


def playlist_length(rng: np.random.Generator) -> int:
    """Songs of one "melon" playlist: 1..200, median 30, mean ~46."""
    return int(np.clip(np.rint(rng.lognormal(np.log(LENGTH_MEDIAN), LENGTH_SIGMA)), 1, MAX_LENGTH))
