"""Themes that link the generated data: a theme owns Melon tags, a kind of photo, genres and a sound.

A beach photo (Flickr side) and summer songs (Melon side) share the theme summer_sea, so image ->
songs can be scored end to end on generated data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mri.data.melon import N_MELS

# Centres of the low / mid / high emphasis bumps, as fractions of the mel axis, and their width.
_BUMP_CENTRES = (0.12, 0.45, 0.8)
_BUMP_WIDTH = 0.1


@dataclass(frozen=True)
class Sound:
    """What a theme's songs sound like, in the units of a Melon mel (dB over mel bands, frames)."""

    low: float  # dB emphasis of the bass bands
    mid: float  # dB emphasis of the middle bands
    high: float  # dB emphasis of the top bands
    brightness: float  # dB tilt from the lowest to the highest band
    tempo: float  # beats per second
    dynamics: float  # dB depth of the beat

    def profile(self, n_mels: int = N_MELS) -> np.ndarray:
        """Band-energy offsets in dB, (n_mels,): three emphasis bumps plus a linear tilt."""
        x = np.linspace(0.0, 1.0, n_mels)  # (n_mels,)
        bumps = np.exp(-0.5 * ((x[:, None] - np.array(_BUMP_CENTRES)) / _BUMP_WIDTH) ** 2)  # (n_mels, 3)
        return bumps @ np.array([self.low, self.mid, self.high]) + self.brightness * (x - 0.5)


@dataclass(frozen=True)
class Theme:
    """A mood shared by photos, playlists and songs."""

    name: str
    tags: tuple[str, ...]  # real Korean Melon tags
    scene_words: tuple[str, ...]  # English words that captions of such a photo contain
    genres: tuple[str, ...]  # Melon major genre codes GNxx00, most typical first
    sound: Sound


THEMES: tuple[Theme, ...] = (
    Theme(
        "summer_sea",
        ("여름", "바다", "시원한", "휴가", "청량", "여름노래", "해변"),
        ("beach", "sea", "ocean", "sand", "wave", "surf", "summer", "sunny", "swimming", "water"),
        ("GN0200", "GN0900", "GN2500", "GN1100"),
        Sound(low=2.0, mid=0.0, high=8.0, brightness=10.0, tempo=2.0, dynamics=7.0),
    ),
    Theme(
        "winter_snow",
        ("겨울", "눈", "캐롤", "크리스마스", "따뜻한", "연말", "겨울노래"),
        ("snow", "snowy", "winter", "cold", "ice", "skiing", "sled", "white", "frozen"),
        ("GN0100", "GN0900", "GN1500", "GN1600"),
        Sound(low=-2.0, mid=6.0, high=5.0, brightness=-4.0, tempo=1.3, dynamics=4.0),
    ),
    Theme(
        "night_city",
        ("새벽", "밤", "야경", "도시", "그루브", "몽환", "알앤비"),
        ("night", "city", "lights", "street", "building", "dark", "neon", "skyline"),
        ("GN0400", "GN0300", "GN1300", "GN1100"),
        Sound(low=8.0, mid=-2.0, high=0.0, brightness=-8.0, tempo=1.5, dynamics=6.0),
    ),
    Theme(
        "rainy_day",
        ("비오는날", "비", "우울", "슬픔", "이별", "센치", "그리움"),
        ("rain", "rainy", "umbrella", "wet", "puddle", "raincoat", "window", "gray"),
        ("GN0100", "GN0500", "GN0800", "GN1500"),
        Sound(low=0.0, mid=4.0, high=-5.0, brightness=-12.0, tempo=1.1, dynamics=3.0),
    ),
    Theme(
        "nature_walk",
        ("산책", "힐링", "봄", "자연", "숲", "여유", "상쾌한"),
        ("park", "forest", "trees", "grass", "field", "path", "walking", "flowers", "dog"),
        ("GN0500", "GN0800", "GN1800", "GN1600"),
        Sound(low=-4.0, mid=3.0, high=6.0, brightness=4.0, tempo=1.6, dynamics=3.5),
    ),
    Theme(
        "party_dance",
        ("파티", "신나는", "클럽", "EDM", "댄스", "운동", "흥"),
        ("party", "concert", "crowd", "stage", "dancing", "music", "people", "festival"),
        ("GN0200", "GN1100", "GN2500", "GN0300"),
        Sound(low=9.0, mid=-3.0, high=7.0, brightness=2.0, tempo=2.1, dynamics=11.0),
    ),
    Theme(
        "cafe_rest",
        ("카페", "휴식", "잔잔한", "커피", "매장음악", "재즈", "브런치"),
        ("cafe", "coffee", "table", "cup", "restaurant", "sitting", "book", "drink"),
        ("GN1700", "GN0500", "GN0400", "GN1800"),
        Sound(low=-3.0, mid=7.0, high=-2.0, brightness=-6.0, tempo=1.2, dynamics=2.5),
    ),
    Theme(
        "drive_travel",
        ("드라이브", "여행", "설렘", "로드트립", "나들이", "주말"),
        ("road", "car", "trip", "highway", "driving", "mountain", "travel", "bike"),
        ("GN0600", "GN1000", "GN0900", "GN0200"),
        Sound(low=5.0, mid=5.0, high=1.0, brightness=0.0, tempo=1.8, dynamics=7.5),
    ),
)

THEME_NAMES = tuple(t.name for t in THEMES)

# Frequent real tags that belong to no theme: they appear across all of them.
GENERIC_TAGS = (
    "기분전환", "감성", "사랑", "추억", "회상", "발라드", "힙합", "팝", "인디", "노래추천", "피아노",
)

# The themes around a mood wheel (arousal and valence, as in Russell's circumplex of affect). A
# playlist's off-theme songs and tags, and a mixed song's second theme, come mostly from nearby moods,
# so the similarity between moods is graded (summer is nearer to a road trip than to snow), as in real data.
MOOD_WHEEL = ("party_dance", "summer_sea", "drive_travel", "nature_walk",
              "cafe_rest", "rainy_day", "winter_snow", "night_city")
WHEEL_STEP_WEIGHTS = (0.0, 1.0, 0.4, 0.15, 0.06)  # by steps around the wheel; 0: the theme itself


def mood_affinity() -> np.ndarray:
    """(k, k) in THEMES order: row i = probabilities of picking each other theme for theme i."""
    pos = np.array([MOOD_WHEEL.index(t.name) for t in THEMES])
    steps = np.abs(pos[:, None] - pos[None, :])
    steps = np.minimum(steps, len(MOOD_WHEEL) - steps)  # (k, k) steps around the wheel
    weights = np.asarray(WHEEL_STEP_WEIGHTS)[steps]
    return weights / weights.sum(axis=1, keepdims=True)


# The generic tags each theme's playlists lean towards (the rest of GENERIC_TAGS stay rare there).
GENERIC_LEANINGS: dict[str, tuple[str, ...]] = {
    "summer_sea": ("기분전환", "팝"),
    "winter_snow": ("사랑", "발라드", "감성"),
    "night_city": ("힙합", "감성"),
    "rainy_day": ("발라드", "추억", "회상"),
    "nature_walk": ("피아노", "인디", "기분전환"),
    "party_dance": ("팝", "힙합", "노래추천"),
    "cafe_rest": ("인디", "피아노", "감성"),
    "drive_travel": ("노래추천", "기분전환", "팝"),
}

# Words of real-looking Korean playlist titles per theme ("여름 드라이브 신나는 노래", "책읽으며 듣기좋은
# 잔잔 BGM"): when or where one listens, the mood, and what kind of music.
TITLE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "summer_sea": (("여름 바닷가에서", "해변에서", "휴가 가서", "물놀이할 때", "여름밤 바다에서", "서핑하며"),
                   ("시원한", "청량한", "신나는", "상큼한"), ("여름 노래", "팝", "댄스곡", "여름 BGM")),
    "winter_snow": (("눈 오는 날", "크리스마스에", "추운 겨울밤", "연말에", "첫눈 올 때", "따뜻한 방에서"),
                    ("따뜻한", "포근한", "설레는", "감성"), ("캐롤", "겨울 노래", "발라드", "겨울 감성곡")),
    "night_city": (("새벽에", "잠 안 오는 밤", "야경 보며", "퇴근길 밤에", "도시의 밤", "새벽 감성으로"),
                   ("몽환적인", "그루비한", "나른한", "감각적인"), ("알앤비", "R&B", "힙합", "새벽 노래")),
    "rainy_day": (("비 오는 날", "비 내리는 창가에서", "이별 후", "우울할 때", "장마철에", "혼자 울고 싶을 때"),
                  ("센치한", "슬픈", "그리운", "잔잔한"), ("발라드", "이별 노래", "감성곡", "인디")),
    "nature_walk": (("산책하며", "숲길 걸으며", "봄날 공원에서", "꽃구경 갈 때", "캠핑 가서", "아침 산책길"),
                    ("상쾌한", "여유로운", "편안한", "힐링되는"), ("인디", "어쿠스틱", "힐링 음악", "피아노곡")),
    "party_dance": (("파티에서", "클럽에서", "운동할 때", "페스티벌에서", "주말 밤", "텐션 올릴 때"),
                    ("신나는", "흥 터지는", "광란의", "빵빵한"), ("EDM", "댄스곡", "클럽 음악", "노동요")),
    "cafe_rest": (("카페에서", "책 읽으며", "커피 한 잔과", "브런치 먹으며", "작업할 때", "공부할 때"),
                  ("잔잔한", "편안한", "여유로운", "차분한"), ("재즈", "BGM", "매장음악", "카페 음악")),
    "drive_travel": (("드라이브하며", "여행 떠날 때", "고속도로 달리며", "로드트립", "주말 나들이", "바이크 타고"),
                     ("신나는", "설레는", "달리는", "시원한"), ("드라이브 음악", "록", "팝", "여행 노래")),
}

# Real-looking free-text noise: tag -> variants users type instead.
SPELLING_VARIANTS: dict[str, tuple[str, ...]] = {
    "팝": ("Pop", "pop", "POP"),
    "캐롤": ("캐럴",),
    "카페": ("까페",),
    "EDM": ("edm", "Edm"),
    "힙합": ("Hiphop", "hiphop"),
    "크리스마스": ("Christmas", "크리스마스 "),
    "비오는날": ("비 오는 날", "비오는 날"),
    "드라이브": ("드라이브 ", "drive"),
    "알앤비": ("R&B", "RnB"),
    "재즈": ("Jazz", "jazz"),
    "신나는": (" 신나는",),
}


def get_theme(name: str) -> Theme:
    """The theme called `name`; an unknown name lists the known ones."""
    for theme in THEMES:
        if theme.name == name:
            return theme
    raise KeyError(f"unknown theme {name!r}; known: {', '.join(THEME_NAMES)}")
