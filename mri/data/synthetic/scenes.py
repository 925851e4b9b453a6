"""Photo-like scenes of the themes, drawn with PIL, and English captions of what was drawn.

A scene is planned from a seed (`plan_scene`): its theme's background (beach and sea, snowy hills,
night city lights, rain, park and forest, party stage, cafe, road trip) and people and animals that
vary in kind, number, colour, place and action. `render_scene` draws it with noise, so that telling
themes apart is learnable but not trivial; `caption_scene` writes Flickr8k-style captions that name
the people and animals drawn and the theme's scene words.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (200, 30, 35), "blue": (35, 75, 205), "green": (40, 150, 50), "yellow": (240, 210, 40),
    "white": (245, 245, 245), "black": (25, 25, 25), "orange": (240, 130, 30), "pink": (240, 140, 185),
    "purple": (125, 50, 165), "brown": (120, 75, 35), "golden": (215, 165, 70), "gray": (130, 130, 135),
}
SHIRT_COLOURS = ("red", "blue", "green", "yellow", "white", "black", "orange", "pink", "purple")
ANIMAL_COLOURS = {"dog": ("brown", "black", "white", "golden"), "cat": ("black", "white", "gray", "orange"),
                  "bird": ("black", "white", "red", "blue")}
SKIN: tuple[RGB, ...] = ((241, 194, 160), (224, 172, 125), (190, 130, 90), (141, 85, 56), (95, 60, 40))
HAIR: tuple[RGB, ...] = ((30, 25, 20), (90, 55, 30), (200, 160, 90), (60, 60, 60))
PANTS: tuple[RGB, ...] = ((40, 45, 70), (60, 60, 60), (95, 80, 60), (30, 30, 35))

PERSON_KINDS = ("man", "woman", "boy", "girl")
PLURAL = {"man": "men", "woman": "women", "boy": "boys", "girl": "girls", "person": "people",
          "dog": "dogs", "cat": "cats", "bird": "birds", "shirt": "shirts", "dress": "dresses"}
NUMBERS = ("no", "a", "two", "three", "four")

# action -> (-ing form, third person singular, plural/base form); drawn with the pose of the same name
ACTIONS: dict[str, tuple[str, str, str]] = {
    "walk": ("walking", "walks", "walk"),
    "run": ("running", "runs", "run"),
    "stand": ("standing", "stands", "stand"),
    "sit": ("sitting", "sits", "sit"),
    "play": ("playing", "plays", "play"),
    "jump": ("jumping", "jumps", "jump"),
    "dance": ("dancing", "dances", "dance"),
    "swim": ("swimming", "swims", "swim"),
    "ski": ("skiing", "skis", "ski"),
    "umbrella": ("walking with an umbrella", "walks with an umbrella", "walk with an umbrella"),
    "coffee": ("drinking coffee", "drinks coffee", "drink coffee"),
    "read": ("reading a book", "reads a book", "read a book"),
    "bike": ("riding a bike", "rides a bike", "ride a bike"),
    "sleep": ("sleeping", "sleeps", "sleep"),
}
ANIMAL_ACTIONS = {"dog": ("run", "sit", "play", "jump"), "cat": ("sit", "sleep", "walk")}


@dataclass(frozen=True)
class SceneKind:
    """How a theme's photos look and are described: every place phrase holds a scene word."""

    places: tuple[str, ...]
    extras: tuple[str, ...]  # clauses about the background
    actions: tuple[str, ...]  # what its people do
    animals: tuple[str, ...]  # dog / cat on the ground
    birds: bool  # birds may fly in its sky
    people: tuple[float, ...]  # probabilities of 0, 1, 2, 3, 4 people
    ground: float  # where the ground begins, as a fraction of the height


SCENE_KINDS: dict[str, SceneKind] = {
    "summer_sea": SceneKind(
        ("on the beach", "by the sea", "on the sand", "near the ocean", "on a sunny beach", "by the water"),
        ("near the waves", "on a sunny summer day", "by the blue ocean"),
        ("walk", "run", "stand", "play", "swim"), ("dog",), True, (0.15, 0.35, 0.25, 0.15, 0.1), 0.6),
    "winter_snow": SceneKind(
        ("in the snow", "on a snowy hill", "on the white snow", "in a snowy field", "on the ice"),
        ("on a cold winter day", "near snowy trees", "as snow falls"),
        ("walk", "run", "stand", "play", "ski"), ("dog",), False, (0.15, 0.35, 0.25, 0.15, 0.1), 0.5),
    "night_city": SceneKind(
        ("on a city street at night", "on a dark street", "in the city at night", "on the street",
         "in front of a building at night"),
        ("under the neon lights", "under the city lights", "near tall buildings"),
        ("walk", "stand", "run"), ("cat", "dog"), False, (0.15, 0.35, 0.25, 0.15, 0.1), 0.62),
    "rainy_day": SceneKind(
        ("in the rain", "on a rainy street", "on a wet sidewalk", "near a puddle", "on a gray rainy day"),
        ("while it rains", "under a gray sky", "near a big puddle"),
        ("umbrella", "umbrella", "walk", "run", "stand"), ("dog",), False, (0.15, 0.4, 0.25, 0.15, 0.05), 0.58),
    "nature_walk": SceneKind(
        ("in the park", "on a forest path", "on the grass", "in a field of flowers", "under the trees",
         "in a green field"),
        ("near tall trees", "among the flowers", "on a path through the park"),
        ("walk", "run", "sit", "play", "stand"), ("dog", "cat"), True, (0.15, 0.35, 0.25, 0.15, 0.1), 0.5),
    "party_dance": SceneKind(
        ("at a party", "at a concert", "on the stage", "in front of the crowd", "at a music festival"),
        ("under colorful lights", "as the music plays", "with a crowd of people"),
        ("dance", "dance", "jump", "stand"), (), False, (0.0, 0.3, 0.3, 0.2, 0.2), 0.6),
    "cafe_rest": SceneKind(
        ("in a cafe", "at a table in a cafe", "in a restaurant", "at a cafe table", "at a coffee table"),
        ("with a cup of coffee", "near the window", "next to a table"),
        ("sit", "coffee", "read"), ("cat", "dog"), False, (0.15, 0.45, 0.35, 0.05, 0.0), 0.64),
    "drive_travel": SceneKind(
        ("on the road", "on a mountain road", "by the highway", "on a road trip", "on a country road"),
        ("next to a {car} car", "near the mountains", "on a long trip"),
        ("walk", "stand", "bike", "bike"), ("dog",), True, (0.15, 0.4, 0.25, 0.15, 0.05), 0.5),
}


@dataclass(frozen=True)
class Person:
    kind: str  # man, woman, boy, girl
    colour: str  # of the shirt or dress
    dress: bool


@dataclass
class Scene:
    """Everything drawn in one image; captions describe exactly this."""

    theme: str
    people: list[Person]
    action: str  # of the people
    animal: str | None  # dog or cat on the ground
    animal_colour: str
    n_animals: int
    animal_action: str
    bird: str | None  # colour of a bird in the sky
    side: str  # where the subjects stand: left, center, right
    car: str  # colour of the car (drive_travel)
    seed: list[int] = field(default_factory=list)  # of the renderer's noise

    def subjects(self) -> list[tuple[str, Person | None]]:
        """("person", p) for each person, then ("animal", None) for each animal, in drawing slots."""
        return [("person", p) for p in self.people] + [("animal", None)] * self.n_animals

    def summary(self) -> dict:
        """What the truth file records of a scene."""
        return {"people": [p.kind for p in self.people], "colours": [p.colour for p in self.people],
                "action": self.action if self.people else None,
                "animal": self.animal, "animal_colour": self.animal_colour if self.animal else None,
                "n_animals": self.n_animals, "bird": self.bird, "side": self.side}


def _pick(rng: np.random.Generator, seq):
    return seq[rng.integers(len(seq))]


def plan_scene(theme: str, rng: np.random.Generator) -> Scene:
    """Draw what a photo of `theme` shows."""
    kind = SCENE_KINDS[theme]
    n_people = int(rng.choice(5, p=kind.people))
    shared = _pick(rng, SHIRT_COLOURS) if rng.random() < 0.6 else None  # a group dressed alike
    people = []
    for _ in range(n_people):
        who = _pick(rng, PERSON_KINDS)
        people.append(Person(who, shared or _pick(rng, SHIRT_COLOURS), who in ("woman", "girl") and rng.random() < 0.4))
    animal = None
    if kind.animals and (n_people == 0 or rng.random() < 0.35):
        animal = _pick(rng, kind.animals)
    n_animals = 0 if animal is None else (2 if rng.random() < 0.25 else 1)
    return Scene(
        theme=theme, people=people, action=_pick(rng, kind.actions),
        animal=animal, animal_colour=_pick(rng, ANIMAL_COLOURS[animal or "dog"]), n_animals=n_animals,
        animal_action=_pick(rng, ANIMAL_ACTIONS[animal or "dog"]),
        bird=_pick(rng, ANIMAL_COLOURS["bird"]) if kind.birds and rng.random() < 0.3 else None,
        side=_pick(rng, ("left", "center", "center", "right")), car=_pick(rng, SHIRT_COLOURS),
        seed=[int(x) for x in rng.integers(0, 2**31, 2)],
    )


# ---------------------------------------------------------------------------------------------
# Captions


def _people_phrase(people: list[Person], rng, detail: bool) -> str:
    kinds, n = [p.kind for p in people], len(people)
    if n == 1:
        phrase = "a person" if rng.random() < 0.15 else f"a {kinds[0]}"
    elif n == 2 and kinds[0] != kinds[1]:
        phrase = f"a {kinds[0]} and a {kinds[1]}"
    elif len(set(kinds)) == 1 and rng.random() < 0.8:
        phrase = f"{NUMBERS[n]} {PLURAL[kinds[0]]}"
    else:
        phrase = "a group of people" if n >= 3 and rng.random() < 0.5 else f"{NUMBERS[n]} people"
    colours = {p.colour for p in people}
    if detail and len(colours) == 1:
        garment = "dress" if all(p.dress for p in people) else "shirt"
        worn = f"a {colours.pop()} {garment}" if n == 1 else f"{colours.pop()} {PLURAL[garment]}"
        phrase += f" {_pick(rng, ('in', 'wearing'))} {worn}"
    return phrase


def _animal_phrase(scene: Scene, rng, detail: bool) -> str:
    colour = f"{scene.animal_colour} " if detail else ""
    if scene.n_animals == 1:
        return f"a {colour}{scene.animal}"
    return f"two {colour}{PLURAL[scene.animal]}"


def _verb(action: str, plural: bool, form: str) -> str:
    ing, singular, base = ACTIONS[action]
    if form == "ing":
        return ing
    if form == "be_ing":
        return f"{'are' if plural else 'is'} {ing}"
    return base if plural else singular


def caption_scene(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """`n` varied captions, without final punctuation; each names the main subject drawn and a place,
    the first also its colours (of a group dressed alike) and the animal beside people."""
    kind = SCENE_KINDS[scene.theme]
    captions = []
    for k in range(n):
        detail = k == 0 or rng.random() < 0.5  # the first names the colours
        if scene.people:
            subject, plural, action = _people_phrase(scene.people, rng, detail), len(scene.people) > 1, scene.action
            if scene.animal and (k == 0 or rng.random() < 0.4):
                subject += f" with {_animal_phrase(scene, rng, detail)}"
        else:
            subject, plural, action = _animal_phrase(scene, rng, detail), scene.n_animals > 1, scene.animal_action
        if scene.side != "center" and rng.random() < 0.2:
            subject += f" on the {scene.side}"
        place = _pick(rng, kind.places)
        extra = _pick(rng, [e for e in kind.extras if place.split()[-1] not in e] or kind.extras).format(car=scene.car)
        if scene.bird and rng.random() < 0.4:
            extra = f"as a {scene.bird} bird flies overhead" if rng.random() < 0.5 else "with a bird in the sky"
        elif scene.people and scene.animal and rng.random() < 0.3:
            animal = _animal_phrase(scene, rng, False)
            extra = f"while {animal} {_verb(scene.animal_action, scene.n_animals > 1, 'present')}"
        form = _pick(rng, ("be_ing", "be_ing", "present", "ing"))
        words = [subject, _verb(action, plural, form), place]
        if rng.random() < 0.5:
            words.append(extra)
        text = " ".join(words)
        if form != "ing" and rng.random() < 0.2:  # "On the beach , a man walks"
            text = f"{place} , {subject} {_verb(action, plural, form)}"
        captions.append(text)
    return captions


# ---------------------------------------------------------------------------------------------
# Drawing. Coordinates are fractions of the image scaled on use, so any size works.


class _Canvas:
    def __init__(self, size: tuple[int, int], rng: np.random.Generator):
        self.image = Image.new("RGB", size)
        self.draw = ImageDraw.Draw(self.image, "RGBA")
        self.w, self.h = size
        self.rng = rng

    def jitter(self, colour: RGB, amount: int = 12) -> RGB:
        return tuple(int(np.clip(c + self.rng.integers(-amount, amount + 1), 0, 255)) for c in colour)

    def gradient(self, top: RGB, bottom: RGB, y0: float, y1: float) -> None:
        """Horizontal bands from top colour to bottom colour between heights y0 and y1 (fractions)."""
        top, bottom = self.jitter(top), self.jitter(bottom)
        a, b = int(y0 * self.h), max(int(y1 * self.h), int(y0 * self.h) + 1)
        for y in range(a, b):
            t = (y - a) / max(b - a - 1, 1)
            colour = tuple(int(p + (q - p) * t) for p, q in zip(top, bottom, strict=True))
            self.draw.line([(0, y), (self.w, y)], fill=colour)

    def box(self, x0, y0, x1, y1, colour, **kw) -> None:
        self.draw.rectangle(self._xy(x0, y0, x1, y1), fill=colour, **kw)

    def ellipse(self, x0, y0, x1, y1, colour) -> None:
        self.draw.ellipse(self._xy(x0, y0, x1, y1), fill=colour)

    def polygon(self, points, colour) -> None:
        self.draw.polygon([(x * self.w, y * self.h) for x, y in points], fill=colour)

    def line(self, points, colour, width: float) -> None:
        self.draw.line([(x * self.w, y * self.h) for x, y in points], fill=colour,
                       width=max(1, round(width * self.h)))

    def _xy(self, x0, y0, x1, y1):
        return [x0 * self.w, y0 * self.h, max(x1, x0) * self.w, max(y1, y0) * self.h]

    def u(self, lo: float, hi: float, size=None):
        return self.rng.uniform(lo, hi, size)


def _paint_summer_sea(c: _Canvas, g: float) -> None:
    c.gradient((95, 170, 235), (190, 225, 250), 0, 0.4)
    x, r = c.u(0.1, 0.9), 0.06
    c.ellipse(x - r, 0.06, x + r, 0.06 + 2 * r * c.w / c.h * 0.75, (255, 230, 90))
    c.gradient((25, 95, 170), (60, 150, 200), 0.4, g)
    for _ in range(8):  # wave crests
        x, y = c.u(0, 1), c.u(0.42, g - 0.02)
        c.line([(x - 0.06, y), (x, y - 0.01), (x + 0.06, y)], (240, 245, 250, 200), 0.012)
    c.gradient((225, 205, 150), (240, 220, 170), g, 1)


def _paint_winter_snow(c: _Canvas, g: float) -> None:
    c.gradient((170, 185, 205), (215, 222, 232), 0, g)
    c.polygon([(0, g), (0.3, g - c.u(0.08, 0.2)), (0.65, g), (0.85, g - c.u(0.05, 0.15)), (1, g)], (232, 238, 246))
    c.gradient((238, 242, 250), (250, 252, 255), g, 1)
    for _ in range(int(c.rng.integers(1, 5))):  # snowy pines
        x, s = c.u(0, 1), c.u(0.05, 0.09)
        c.polygon([(x - s, g + 0.02), (x, g - 3 * s), (x + s, g + 0.02)], (25, 80, 45))
        c.polygon([(x - s / 3, g - 2 * s), (x, g - 3 * s), (x + s / 3, g - 2 * s)], (245, 248, 252))


def _paint_night_city(c: _Canvas, g: float) -> None:
    c.gradient((8, 10, 30), (35, 30, 70), 0, g)
    for x, y in zip(c.u(0, 1, 15), c.u(0, 0.3, 15), strict=True):
        c.box(x, y, x + 0.005, y + 0.006, (230, 230, 200))
    x = c.u(-0.05, 0.05)
    while x < 1:  # buildings with lit windows
        bw, top = c.u(0.1, 0.2), c.u(0.12, 0.45)
        c.box(x, top, x + bw, g, c.jitter((45, 45, 60), 15))
        for wx in np.arange(x + 0.02, x + bw - 0.02, 0.04):
            for wy in np.arange(top + 0.03, g - 0.04, 0.06):
                if c.rng.random() < 0.55:
                    c.box(wx, wy, wx + 0.02, wy + 0.025, (250, 215, 110))
        x += bw + c.u(0, 0.03)
    for _ in range(2):  # neon signs
        x, y = c.u(0.05, 0.85), c.u(0.3, g - 0.1)
        c.box(x, y, x + 0.1, y + 0.04, _pick(c.rng, ((255, 40, 160), (40, 240, 255), (170, 60, 255))))
    c.gradient((45, 45, 52), (70, 70, 78), g, 1)
    for x in (c.u(0.05, 0.3), c.u(0.7, 0.95)):  # street lamps
        c.line([(x, g + 0.05), (x, g - 0.3)], (90, 90, 95), 0.015)
        c.ellipse(x - 0.03, g - 0.34, x + 0.03, g - 0.28, (255, 225, 130, 230))


def _paint_rainy_day(c: _Canvas, g: float) -> None:
    c.gradient((120, 125, 135), (165, 170, 178), 0, g)
    for _ in range(4):
        x, y = c.u(0, 1), c.u(0, 0.25)
        c.ellipse(x - 0.2, y - 0.06, x + 0.2, y + 0.08, (100, 104, 112, 200))
    for x in np.arange(c.u(-0.1, 0), 1, 0.22):  # dim houses with windows
        top = c.u(0.25, 0.4)
        c.box(x, top, x + 0.18, g, c.jitter((95, 95, 105), 10))
        c.box(x + 0.05, top + 0.06, x + 0.12, top + 0.14, (170, 190, 205))
    c.gradient((95, 100, 108), (125, 130, 138), g, 1)
    for _ in range(3):  # puddles
        x, y = c.u(0, 1), c.u(g + 0.08, 0.95)
        c.ellipse(x - 0.12, y - 0.025, x + 0.12, y + 0.025, (70, 80, 100, 220))


def _paint_nature_walk(c: _Canvas, g: float) -> None:
    c.gradient((110, 175, 235), (200, 230, 245), 0, g)
    c.gradient((70, 155, 55), (100, 185, 70), g, 1)
    x = c.u(0.3, 0.7)
    c.polygon([(x - 0.02, g), (x + 0.02, g), (x + 0.35, 1), (x - 0.35, 1)], (200, 180, 135))
    for _ in range(int(c.rng.integers(3, 7))):  # trees
        x, s = c.u(0, 1), c.u(0.06, 0.12)
        c.box(x - 0.012, g - 0.12, x + 0.012, g + 0.03, (95, 65, 35))
        c.ellipse(x - s, g - 0.12 - 2 * s, x + s, g - 0.1, c.jitter((35, 120, 40), 20))
    for x, y in zip(c.u(0, 1, 25), c.u(g + 0.03, 1, 25), strict=True):  # flowers
        colour = _pick(c.rng, ((250, 240, 90), (240, 90, 130), (250, 250, 250)))
        c.ellipse(x - 0.008, y - 0.01, x + 0.008, y + 0.01, colour)


def _paint_party_dance(c: _Canvas, g: float) -> None:
    c.gradient((20, 5, 35), (50, 15, 60), 0, g)
    c.box(0.1, g - 0.18, 0.9, g - 0.05, (35, 25, 30))  # stage
    for _ in range(4):  # spotlight cones
        x, spread = c.u(0, 1), c.u(0.08, 0.2)
        colour = _pick(c.rng, ((255, 60, 200), (60, 200, 255), (255, 230, 60), (120, 255, 120)))
        c.polygon([(x, 0), (x - spread, 1), (x + spread, 1)], colour + (70,))
    c.gradient((40, 25, 50), (60, 40, 70), g, 1)
    for x, y in zip(c.u(0, 1, 40), c.u(0, 1, 40), strict=True):  # confetti
        c.box(x, y, x + 0.01, y + 0.012, _pick(c.rng, ((255, 80, 80), (255, 240, 80), (80, 200, 255))))


def _paint_cafe_rest(c: _Canvas, g: float) -> None:
    c.gradient((190, 155, 115), (215, 185, 145), 0, g)
    x = c.u(0.05, 0.55)
    c.box(x, 0.1, x + 0.35, 0.45, (90, 60, 35))
    c.box(x + 0.02, 0.12, x + 0.33, 0.43, (175, 210, 230))  # window
    c.gradient((125, 85, 50), (150, 105, 65), g, 1)
    for tx in (c.u(0.05, 0.4), c.u(0.6, 0.9)):  # tables with cups
        c.box(tx - 0.12, g + 0.05, tx + 0.12, g + 0.08, (95, 60, 30))
        c.box(tx - 0.015, g + 0.08, tx + 0.015, g + 0.3, (80, 50, 25))
        c.box(tx - 0.03, g + 0.01, tx, g + 0.05, (250, 250, 245))


def _paint_drive_travel(c: _Canvas, g: float) -> None:
    c.gradient((100, 165, 230), (195, 220, 240), 0, g)
    x = c.u(-0.2, 0.2)
    while x < 1:  # mountains
        s = c.u(0.2, 0.35)
        c.polygon([(x, g), (x + s / 2, g - c.u(0.12, 0.3)), (x + s, g)], c.jitter((95, 110, 120), 20))
        x += s * 0.7
    c.gradient((90, 150, 70), (110, 170, 80), g, 1)
    x = c.u(0.4, 0.6)
    c.polygon([(x - 0.03, g), (x + 0.03, g), (x + 0.45, 1), (x - 0.45, 1)], (80, 80, 85))
    for t in np.arange(0.1, 1, 0.2):  # dashed centre line
        c.line([(x, g + (1 - g) * t), (x, g + (1 - g) * (t + 0.08))], (240, 240, 240), 0.01 + 0.02 * t)


_PAINTERS = {
    "summer_sea": _paint_summer_sea, "winter_snow": _paint_winter_snow, "night_city": _paint_night_city,
    "rainy_day": _paint_rainy_day, "nature_walk": _paint_nature_walk, "party_dance": _paint_party_dance,
    "cafe_rest": _paint_cafe_rest, "drive_travel": _paint_drive_travel,
}


def _draw_car(c: _Canvas, x: float, y: float, colour: RGB) -> None:
    """A side-view car whose wheels touch y, centred on x."""
    c.box(x - 0.16, y - 0.13, x + 0.16, y - 0.04, colour)
    c.polygon([(x - 0.09, y - 0.13), (x - 0.05, y - 0.21), (x + 0.07, y - 0.21), (x + 0.11, y - 0.13)], colour)
    c.box(x - 0.045, y - 0.195, x + 0.06, y - 0.14, (180, 210, 230))
    for wx in (x - 0.1, x + 0.1):
        c.ellipse(wx - 0.04, y - 0.08, wx + 0.04, y, (20, 20, 20))


def _draw_person(c: _Canvas, p: Person, x: float, y: float, h: float, pose: str) -> None:
    """A person whose feet touch (x, y), h high (fractions of the image), in the pose of an action."""
    skin, hair, pants = _pick(c.rng, SKIN), _pick(c.rng, HAIR), _pick(c.rng, PANTS)
    shirt = c.jitter(COLOURS[p.colour], 10)
    r = 0.1 * h  # head radius (in heights; x spans are scaled by the aspect ratio)
    k = c.h / c.w
    if pose in ("sit", "coffee", "read"):
        y -= 0.18 * h  # seated: hips at chair height
        c.box(x - 0.12 * h * k, y - 0.05 * h, x + 0.12 * h * k, y, (90, 60, 30))  # chair
    hip, shoulder, head = y - 0.45 * h, y - 0.78 * h, y - h + r
    if pose == "swim":  # head and arms above the water
        c.ellipse(x - r * k, head - r, x + r * k, head + r, skin)
        c.line([(x - 0.3 * h * k, head), (x - 0.1 * h * k, head + 1.5 * r)], skin, 0.05 * h)
        return
    if p.kind in ("woman", "girl"):  # long hair behind the head
        c.box(x - 1.1 * r * k, head - r, x + 1.1 * r * k, shoulder + 0.1 * h, hair)
    if pose in ("sit", "coffee", "read"):
        legs = [(x, hip + 0.05 * h), (x + 0.25 * h * k, hip + 0.05 * h), (x + 0.25 * h * k, y + 0.15 * h)]
        c.line(legs, pants, 0.07 * h)
    else:
        spread = {"walk": 0.12, "run": 0.22, "dance": 0.16, "jump": 0.1, "ski": 0.08, "bike": 0.1}.get(pose, 0.05)
        lift = 0.08 * h if pose == "jump" else 0.0
        for side in (-1, 1):
            c.line([(x + side * 0.04 * h * k, hip - lift), (x + side * spread * h * k, y - lift)], pants, 0.07 * h)
    if p.dress:
        c.polygon([(x - 0.1 * h * k, shoulder), (x + 0.1 * h * k, shoulder), (x + 0.17 * h * k, hip + 0.15 * h),
                   (x - 0.17 * h * k, hip + 0.15 * h)], shirt)
    else:
        c.box(x - 0.12 * h * k, shoulder, x + 0.12 * h * k, hip, shirt)
    hand_y = {"dance": shoulder - 0.25 * h, "jump": shoulder - 0.2 * h, "umbrella": shoulder - 0.1 * h,
              "coffee": shoulder + 0.1 * h, "read": shoulder + 0.12 * h}.get(pose, hip)
    swing = 0.22 if pose == "run" else 0.16
    for side in (-1, 1):
        c.line([(x + side * 0.12 * h * k, shoulder + 0.02 * h), (x + side * swing * h * k, hand_y)], skin, 0.05 * h)
    c.ellipse(x - r * k, head - r, x + r * k, head + r, skin)
    c.box(x - r * k, head - r, x + r * k, head - 0.4 * r, hair)
    if pose == "umbrella":
        colour = _pick(c.rng, list(COLOURS.values()))
        c.line([(x + 0.16 * h * k, hand_y), (x + 0.16 * h * k, head - 2 * r)], (40, 40, 40), 0.02 * h)
        c.draw.pieslice([(x + 0.16 * h * k - 0.35 * h * k) * c.w, (head - 3.5 * r) * c.h,
                         (x + 0.16 * h * k + 0.35 * h * k) * c.w, (head - 0.5 * r) * c.h], 180, 360, fill=colour)
    elif pose == "coffee":
        c.box(x + 0.14 * h * k, hand_y - 0.06 * h, x + 0.2 * h * k, hand_y, (250, 250, 245))
    elif pose == "read":
        cover = _pick(c.rng, ((180, 40, 40), (40, 60, 160)))
        c.box(x + 0.1 * h * k, hand_y - 0.08 * h, x + 0.26 * h * k, hand_y, cover)
    elif pose == "ski":
        c.line([(x - 0.25 * h * k, y), (x + 0.3 * h * k, y - 0.02 * h)], (200, 30, 30), 0.025 * h)
    elif pose == "bike":
        for wx in (x - 0.2 * h * k, x + 0.2 * h * k):
            c.draw.ellipse(c._xy(wx - 0.13 * h * k, y - 0.26 * h, wx + 0.13 * h * k, y), outline=(30, 30, 30),
                           width=max(1, round(0.025 * h * c.h)))


def _draw_animal(c: _Canvas, animal: str, colour: RGB, x: float, y: float, s: float, pose: str) -> None:
    """A dog or cat whose feet touch (x, y), s high, facing right."""
    k = c.h / c.w
    body = 1.0 if animal == "dog" else 0.8
    if pose == "jump":
        y -= 0.3 * s
    if pose == "sleep":  # curled up
        c.ellipse(x - 0.7 * s * k, y - 0.35 * s, x + 0.7 * s * k, y, colour)
        c.ellipse(x + 0.3 * s * k, y - 0.45 * s, x + 0.75 * s * k, y - 0.05 * s, colour)
        return
    top = y - (0.85 if pose == "sit" else 0.7) * s
    spread = 0.25 if pose in ("run", "play", "jump") else 0.1
    for dx in (-0.5, 0.45):
        for side in (-1, 1):
            hip, paw = x + dx * s * k * body, x + (dx + side * spread) * s * k * body
            c.line([(hip, top + 0.2 * s), (paw, y)], colour, 0.08 * s)
    c.ellipse(x - 0.6 * s * k * body, top, x + 0.6 * s * k * body, top + 0.35 * s, colour)
    hx = x + 0.65 * s * k * body
    c.ellipse(hx - 0.22 * s * k, top - 0.3 * s, hx + 0.22 * s * k, top + 0.1 * s, colour)
    if animal == "cat":
        for ex in (-0.14, 0.08):
            c.polygon([(hx + ex * s * k, top - 0.22 * s), (hx + (ex + 0.06) * s * k, top - 0.45 * s),
                       (hx + (ex + 0.12) * s * k, top - 0.22 * s)], colour)
        c.line([(x - 0.6 * s * k, top + 0.1 * s), (x - 0.8 * s * k, top - 0.4 * s)], colour, 0.06 * s)
    else:
        c.ellipse(hx - 0.05 * s * k, top - 0.3 * s, hx + 0.15 * s * k, top + 0.05 * s,
                  tuple(max(0, v - 50) for v in colour))  # ear
        c.line([(x - 0.6 * s * k, top + 0.1 * s), (x - 0.85 * s * k, top - 0.15 * s)], colour, 0.07 * s)


def _draw_bird(c: _Canvas, colour: RGB, x: float, y: float, s: float) -> None:
    k = c.h / c.w
    c.ellipse(x - 0.5 * s * k, y - 0.15 * s, x + 0.5 * s * k, y + 0.15 * s, colour)
    c.polygon([(x - 0.2 * s * k, y), (x + 0.1 * s * k, y - 0.6 * s), (x + 0.2 * s * k, y)], colour)
    c.polygon([(x + 0.5 * s * k, y - 0.05 * s), (x + 0.7 * s * k, y), (x + 0.5 * s * k, y + 0.05 * s)], (240, 170, 40))


# half the width of a person in each pose (arms, bike wheels, umbrella, skis), in person heights
_HALF_WIDTH = {"run": 0.24, "dance": 0.22, "bike": 0.36, "umbrella": 0.5, "ski": 0.3, "sit": 0.27, "coffee": 0.27,
               "read": 0.27}
PERSON_HEIGHT, ANIMAL_HEIGHT = 0.45, 0.2  # of the frame's height, nearest subject, adults (children: 0.7 of it)


def layout_subjects(c: _Canvas, scene: Scene, centre: float, g: float):
    """Where subjects stand, side by side without overlapping, all inside the photo's central square
    (what a photographer frames, and what a centre crop keeps): x of each centre, y of its feet, its
    height; nearer (lower) subjects are bigger."""
    subjects, k = scene.subjects(), c.h / c.w
    fx0, fy0 = 0.5 - 0.5 * min(1.0, k), 0.5 - 0.5 * min(1.0, 1 / k)  # the central square's corner
    frame = 1 - 2 * fy0  # its height, as a fraction of the image height
    n = len(subjects)
    low = frame * 0.03
    feet = c.u(min(max(g + 0.1, fy0 + 0.55 * frame), 1 - fy0 - 2 * low), 1 - fy0 - low, n)  # (n,)
    depth = 1 + 0.5 * (feet - (1 - fy0))  # (n,) nearer is bigger: 1 at the frame's bottom
    sizes = np.array([frame * depth[i] * (ANIMAL_HEIGHT if what == "animal" else
                                          PERSON_HEIGHT * (0.7 if p.kind in ("boy", "girl") else 1.0))
                      for i, (what, p) in enumerate(subjects)])  # (n,)
    half = np.array([sizes[i] * k * (0.9 if what == "animal" else _HALF_WIDTH.get(scene.action, 0.2))
                     for i, (what, _) in enumerate(subjects)])  # (n,) half widths, in image widths
    gaps = c.u(0.01, 0.04, max(n - 1, 0)) * min(1.0, k)  # (n-1,)
    span = 2 * half.sum() + gaps.sum()
    room = 1 - 2 * fx0 - 0.02
    squeeze = min(1.0, room / span) if n else 1.0  # a crowd too wide for the frame stands closer
    left_edges = np.concatenate([[0.0], np.cumsum(2 * half[:-1] + gaps)]) * squeeze  # (n,)
    xs = left_edges + half * squeeze
    start = np.clip(centre - span * squeeze / 2, fx0 + 0.01, max(fx0 + 0.01, 1 - fx0 - 0.01 - span * squeeze))
    return xs + start, feet, sizes


def render_scene(scene: Scene, size: tuple[int, int]) -> Image.Image:
    """Draw a scene as a (width, height) RGB image, with pixel noise, blur and a colour cast."""
    rng = np.random.default_rng(scene.seed)
    c, g = _Canvas(size, rng), SCENE_KINDS[scene.theme].ground
    g = float(np.clip(g + rng.normal(0, 0.04), 0.35, 0.75))
    _PAINTERS[scene.theme](c, g)
    centre = {"left": 0.28, "center": 0.5, "right": 0.72}[scene.side] + rng.normal(0, 0.04)
    if scene.theme == "drive_travel":
        _draw_car(c, float(np.clip(1 - centre + rng.normal(0, 0.05), 0.2, 0.8)), g + 0.1, COLOURS[scene.car])
    if scene.theme == "party_dance":
        for x in np.linspace(0, 1, 14):  # the crowd's heads in front
            r = c.u(0.035, 0.05)
            c.ellipse(x - r, 0.9 - r * c.w / c.h, x + r, 1.02, (15, 10, 20))
    subjects = scene.subjects()
    xs, feet, sizes = layout_subjects(c, scene, centre, g)  # (n,) each
    for i in np.argsort(feet):  # farther (higher) subjects first
        what, person = subjects[i]
        if what == "person":
            if scene.action == "swim":  # in the sea, above the sand
                feet[i] = rng.uniform(g - 0.12, g - 0.02) + 0.45 * sizes[i]
            _draw_person(c, person, float(xs[i]), float(feet[i]), float(sizes[i]), scene.action)
        else:
            _draw_animal(c, scene.animal, c.jitter(COLOURS[scene.animal_colour], 10), float(xs[i]), float(feet[i]),
                         float(sizes[i]), scene.animal_action)
    if scene.bird:
        _draw_bird(c, COLOURS[scene.bird], c.u(0.15, 0.85), c.u(0.08, g - 0.15), 0.07)
    if scene.theme == "rainy_day":
        for x, y in zip(c.u(-0.1, 1, 120), c.u(-0.1, 1, 120), strict=True):  # rain streaks over everything
            c.line([(x, y), (x + 0.015, y + 0.07)], (215, 220, 230, 150), 0.006)
    if scene.theme == "winter_snow":
        for x, y in zip(c.u(0, 1, 60), c.u(0, 1, 60), strict=True):
            c.ellipse(x - 0.006, y - 0.008, x + 0.006, y + 0.008, (255, 255, 255, 220))
    return _add_noise(c.image, rng)


def _add_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Camera-like nuisance: slight blur, a colour cast, brightness and per-pixel noise."""
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.9)))
    a = np.asarray(image, dtype=np.float32)  # (H, W, 3)
    a = a * rng.uniform(0.8, 1.15) + rng.normal(0, 10, 3)  # brightness, colour cast
    a += rng.normal(0, rng.uniform(3, 10), a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
