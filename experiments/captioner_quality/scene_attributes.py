"""What the generator drew in each photo (`mri_synthetic.json` beside the Flickr files), for the analyses here."""
from __future__ import annotations

import json
from pathlib import Path

from mri.data.flickr import FlickrFiles, find_flickr
from mri.data.synthetic.scenes import ACTIONS, COLOURS, PERSON_KINDS

SIDES = ("left", "center", "right")
ANIMALS = ("dog", "cat", None)


def load_scenes(root: str | Path) -> tuple[FlickrFiles, dict[str, dict]]:
    """The root's files and, per generated photo, its scene: the generator's fields plus theme, n_people, kinds."""
    root = Path(root)
    meta = json.loads((root / "mri_synthetic.json").read_text())
    scenes = {name: {**scene, "theme": meta["images"][name], "n_people": len(scene["people"]),
                     "kinds": tuple(sorted(scene["people"])), "colours": tuple(scene["colours"])}
              for name, scene in meta["scenes"].items()}
    return find_flickr(root), scenes


def _one_hot(value, values) -> list[float]:
    return [float(value == v) for v in values]


def attribute_vector(scene: dict, themes: list[str], known: set[str]) -> list[float]:
    """A scene as numbers: theme, then what `known` names of people (per-kind counts, else only their
    number), colours, action and animals (kind, number, colour, birds, side)."""
    vector = _one_hot(scene["theme"], themes)
    if "people" in known:
        vector += [x for kind in PERSON_KINDS for x in _one_hot(min(scene["people"].count(kind), 4), range(5))]
    else:
        vector += _one_hot(scene["n_people"], range(5))
    if "colours" in known:
        vector += [float(c in scene["colours"]) for c in COLOURS]
    if "action" in known:
        vector += _one_hot(scene["action"] if scene["people"] else None, [*ACTIONS, None])
    if "animals" in known:
        vector += _one_hot(scene["animal"], ANIMALS) + _one_hot(scene["n_animals"], range(3))
        vector += _one_hot(scene["animal"] and scene["animal_colour"], COLOURS) + _one_hot(scene["bird"], COLOURS)
        vector += _one_hot(scene["side"], SIDES)
    return vector
