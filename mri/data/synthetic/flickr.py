"""Generator of Flickr8k-format data: the original release's layout, file names and line formats.

Images are rendered scenes of the themes (mri.data.synthetic.scenes) with five captions each; split
files hold 75/12.5/12.5% of them like the real 6000/1000/1000, and, as in the release, a few caption
entries name images that are in no split or have no file. The theme of every image lies beside the
Flickr files in `mri_synthetic.json`; the readers never need it.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mri.data.flickr import SPLIT_FILES, TOKEN_FILE
from mri.data.synthetic.atomic import MARKER, generate_atomically  # noqa: F401 (MARKER: re-exported)
from mri.data.synthetic.scenes import ACTIONS, PLURAL, Scene, caption_scene, plan_scene, render_scene
from mri.data.synthetic.themes import THEME_NAMES

TRUTH_FILE = "mri_synthetic.json"
FORMAT_VERSION = 2  # 2: subjects framed in the central square, bigger, never overlapping
IMAGE_DIR = "Flickr8k_Dataset"
TEXT_DIR = "Flickr8k_text"
LEMMA_FILE = "Flickr8k.lemma.token.txt"
CAPTIONS_PER_IMAGE = 5
SPLIT_SHARES = (0.75, 0.125)  # train, dev; test the rest (real: 6000 / 1000 / 1000)
# Caption entries for images in no split (file present) or without a file (named like the real
# "2258277193_586949ec62.jpg.1"); at least one of each when quirks=True.
QUIRK_RATES = {"no_split": 0.002, "no_file": 0.001}
PORTRAIT_RATE = 0.15  # real photos are mostly landscape
JPEG_QUALITY = 90

# Stream of the per-item random generators: rng = default_rng([seed, stream, item]).
_PLAN, _SCENE = range(2)

# Lemmas of the inflected words the captions use, as in Flickr8k.lemma.token.txt ("is walking" -> "be walk").
_LEMMAS = {
    "is": "be", "are": "be",
    **{plural: word for word, plural in PLURAL.items()},
    **{w: b for ing, singular, base in ACTIONS.values() for form in (ing, singular)
       for w, b in zip(form.split(), base.split(), strict=True) if w != b},
    "waves": "wave", "lights": "light", "buildings": "building", "trees": "tree", "flowers": "flower",
    "mountains": "mountain", "falls": "fall", "rains": "rain", "plays": "play", "flies": "fly",
}


def _rng(seed: int, stream: int, item: int = 0) -> np.random.Generator:
    """Independent generator per (seed, stream, item): output never depends on the order of work."""
    return np.random.default_rng([seed, stream, item])


def lemmatize(caption: str) -> str:
    return " ".join(_LEMMAS.get(w, _LEMMAS.get(w.lower(), w)) for w in caption.split())


def _image_names(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct names like the real ones: <9-10 digit Flickr id>_<10 hex digits>.jpg."""
    ids: set[int] = set()
    while len(ids) < n:
        ids.update(int(i) for i in rng.integers(100_000_000, 3_800_000_000, n - len(ids)))
    return [f"{i}_{rng.bytes(5).hex()}.jpg" for i in rng.permutation(sorted(ids))]


def _format(caption: str, rng: np.random.Generator) -> str:
    """As typed by the release's annotators: mostly capitalised and ending in " .", not always."""
    if rng.random() < 0.9:
        caption = caption[0].upper() + caption[1:]
    r = rng.random()
    return caption + (" ." if r < 0.9 else "." if r < 0.95 else "")


class _Plan:
    """Names, themes, splits and quirks of every image, drawn once from the seed."""

    def __init__(self, n_images: int, seed: int, rates: dict[str, float]):
        rng = _rng(seed, _PLAN)
        counts = {q: max(1, round(r * n_images)) if r > 0 else 0 for q, r in rates.items()}
        n_files = n_images + counts["no_split"]  # images with a file
        self.names = _image_names(rng, n_files)
        self.themes = [THEME_NAMES[t] for t in rng.integers(len(THEME_NAMES), size=n_files)]
        self.portrait = rng.random(n_files) < PORTRAIT_RATE
        order = rng.permutation(n_images)  # split files list images in no particular order
        n_train, n_dev = round(SPLIT_SHARES[0] * n_images), round(SPLIT_SHARES[1] * n_images)
        cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_dev], "test": order[n_train + n_dev:]}
        self.splits = {split: [self.names[i] for i in idx] for split, idx in cuts.items()}
        self.no_split = self.names[n_images:]
        # no file: another image's name + ".1", with captions of a scene never drawn
        self.no_file = [f"{name}.1" for name in rng.choice(self.names[:n_images], counts["no_file"], replace=False)]
        self.no_file_themes = [THEME_NAMES[t] for t in rng.integers(len(THEME_NAMES), size=counts["no_file"])]


def _scene(seed: int, index: int, theme: str) -> tuple[Scene, list[str]]:
    """The scene of image `index` and its formatted captions."""
    rng = _rng(seed, _SCENE, index)
    scene = plan_scene(theme, rng)
    return scene, [_format(c, rng) for c in caption_scene(scene, rng, CAPTIONS_PER_IMAGE)]


def _write_images(folder: Path, seed: int, items: list[tuple[int, str, str, bool]], size: tuple[int, int]) -> None:
    """Render and save images; items: (index, name, theme, portrait)."""
    for index, name, theme, portrait in items:
        scene, _ = _scene(seed, index, theme)
        render_scene(scene, size[::-1] if portrait else size).save(folder / name, quality=JPEG_QUALITY)


def _write_all_images(folder: Path, seed: int, plan: _Plan, size: tuple[int, int], workers: int) -> None:
    folder.mkdir()
    items = [(i, n, t, bool(p)) for i, (n, t, p) in enumerate(zip(plan.names, plan.themes, plan.portrait, strict=True))]
    if workers <= 1:
        _write_images(folder, seed, items, size)
        return
    with ProcessPoolExecutor(workers) as pool:
        chunks = [items[k::workers * 4] for k in range(workers * 4)]
        list(pool.map(_write_images, [folder] * len(chunks), [seed] * len(chunks), chunks, [size] * len(chunks)))


def _write_text(folder: Path, seed: int, plan: _Plan) -> dict:
    """Token, lemma and split files; returns the scene summaries of the images with a file."""
    folder.mkdir()
    captions, summaries = {}, {}
    for i, (name, theme) in enumerate(zip(plan.names, plan.themes, strict=True)):
        scene, captions[name] = _scene(seed, i, theme)
        summaries[name] = scene.summary()
    for j, (name, theme) in enumerate(zip(plan.no_file, plan.no_file_themes, strict=True)):
        captions[name] = _scene(seed, len(plan.names) + j, theme)[1]
    lines = [(f"{name}#{k}", c) for name in sorted(captions) for k, c in enumerate(captions[name])]
    (folder / TOKEN_FILE).write_text("".join(f"{key}\t{c}\n" for key, c in lines), encoding="utf-8")
    (folder / LEMMA_FILE).write_text("".join(f"{key}\t{lemmatize(c)}\n" for key, c in lines), encoding="utf-8")
    for split, file_name in SPLIT_FILES.items():
        (folder / file_name).write_text("".join(f"{n}\n" for n in plan.splits[split]), encoding="utf-8")
    return summaries


def read_truth(root: str | os.PathLike) -> dict:
    """The ground truth written beside generated Flickr files: params, image -> theme, scenes, quirks."""
    with open(Path(root) / TRUTH_FILE, encoding="utf-8") as f:
        return json.load(f)


def image_themes(root: str | os.PathLike) -> dict[str, str] | None:
    """Image file name -> theme of generated data; None for a root without our truth file (real data)."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = read_truth(root)
    return truth["images"] if truth.get("generator") == __name__ else None


def generate_flickr(
    root: str | os.PathLike,
    n_images: int = 1500,
    seed: int = 0,
    image_size: tuple[int, int] = (160, 120),
    *,
    quirks: bool = True,
    quirk_rates: dict[str, float] | None = None,
    workers: int = 1,
) -> Path:
    """Write a Flickr8k-format root (same seed, same files) and return it; a complete root is kept as is.

    n_images: images in the split files (the real release: 8000 of 8,092 files); image_size: (width,
    height) of landscape images, portrait ones are turned; quirk_rates: overrides of QUIRK_RATES
    (all 0 when quirks=False); workers: processes rendering images.
    """
    rates = {**QUIRK_RATES, **(quirk_rates or {})} if quirks else dict.fromkeys(QUIRK_RATES, 0.0)
    if set(rates) != set(QUIRK_RATES):
        raise ValueError(f"unknown quirks {sorted(set(rates) - set(QUIRK_RATES))}; known: {', '.join(QUIRK_RATES)}")
    params = dict(version=FORMAT_VERSION, n_images=n_images, seed=seed, image_size=list(image_size), quirk_rates=rates)

    def build(tmp: Path) -> None:
        plan = _Plan(n_images, seed, rates)
        summaries = _write_text(tmp / TEXT_DIR, seed, plan)
        _write_all_images(tmp / IMAGE_DIR, seed, plan, tuple(image_size), workers)
        truth = {"generator": __name__, "params": params, "images": dict(zip(plan.names, plan.themes, strict=True)),
                 "scenes": summaries, "quirks": {"no_split": plan.no_split, "no_file": plan.no_file}}
        (tmp / TRUTH_FILE).write_text(json.dumps(truth), encoding="utf-8")

    return generate_atomically(root, params, build, "Flickr")
