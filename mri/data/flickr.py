"""Readers of Flickr8k (Hodosh et al., JAIR 2013) in every layout people download.

`find_flickr(root)` looks anywhere under root for, in this order of preference:

- the original release, or Kaggle's "flickr8k-sau" copy of it: Flickr8k.token.txt
  (`name.jpg#N<TAB>caption`) beside Flickr_8k.{train,dev,test}Images.txt;
- Karpathy's split: dataset_flickr8k.json (split train/val/test; restval counts as train);
- Kaggle "adityajn105/flickr8k": captions.txt, a CSV with header `image,caption` and no split
  files (a seeded 6000/1000/1000-proportional split is drawn);

and the image folder (Flickr8k_Dataset/, Flicker8k_Dataset/, Images/, ...) that holds most of the
captioned images. Quirks of the real files are reported, never fatal: caption entries naming images
in no split or without a file, split entries without captions, malformed lines (the layouts: README,
"Real datasets").
"""
from __future__ import annotations

import json
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mri.data.report import SkipReport
from mri.data.melon import SPLITS, DataRootError

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
KARPATHY_FILE = "dataset_flickr8k.json"
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
CSV_FILE = "captions.txt"
CSV_HEADER = "image,caption"
CSV_SPLIT = (6000, 1000, 1000)  # the official split sizes, as proportions
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_DIR_NAMES = ("Flickr8k_Dataset", "Flicker8k_Dataset", "Images")  # as released; any folder is accepted
_SKIP_DIRS = ("__MACOSX",)  # macOS zip junk (._name.jpg files)
CAPTION_REASONS = ("no_split", "no_file", "no_captions", "bad_line")


class CaptionReport(SkipReport):
    """Caption or split entries that lead to no usable (image, captions) pair; items are image names.

    no_split: captioned image in no split; no_file: captioned image without a file; no_captions:
    split entry without captions; bad_line: a line that could not be parsed (item: file:line).
    """

    REASONS = CAPTION_REASONS


class FlickrRootError(DataRootError):
    """A Flickr root that is missing or holds none of the layouts find_flickr knows."""

    dataset = "Flickr8k"

    def advice(self) -> str:
        return (f"Looked for: the original release ({TOKEN_FILE} + {', '.join(SPLIT_FILES.values())} + an image "
                f"folder such as {', '.join(IMAGE_DIR_NAMES)}), Kaggle flickr8k-sau (Flickr_Data/Flickr_TextData/"
                f"...), Kaggle {CSV_FILE} ({CSV_HEADER}) or Karpathy's {KARPATHY_FILE}. Run `python train.py "
                "model=captioner` (data=captions: generated Flickr8k-format data) or pass data=flickr8k "
                "data.root=<the folder you unpacked>.")


@dataclass
class FlickrFiles:
    """What a Flickr root holds: per split, (image file name, [captions]) in file order; images in image_dir."""

    layout: str  # "original", "sau", "karpathy" or "captions_csv"
    image_dir: Path
    splits: dict[str, list[tuple[str, list[str]]]]
    report: CaptionReport = field(default_factory=CaptionReport)

    def image_path(self, name: str) -> Path:
        return self.image_dir / name

    def captions(self, split: str) -> list[str]:
        """Every caption of a split, flat."""
        return [c for _, captions in self.splits[split] for c in captions]


def clean_caption(text: str) -> str:
    """Whitespace collapsed and the trailing " ." of the release dropped."""
    return " ".join(text.split()).rstrip(" .")


# ---------------------------------------------------------------------------------------------
# Finding the files


class _Tree:
    """One walk of root: where each file name lies, and the image names of each folder."""

    def __init__(self, root: Path):
        self.files: dict[str, list[Path]] = defaultdict(list)
        self.images: dict[Path, set[str]] = {}
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
            folder = Path(folder)
            for name in names:
                self.files[name].append(folder / name)
            images = {n for n in names if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")}
            if images:
                self.images[folder] = images

    def first(self, name: str) -> Path | None:
        """The shallowest file called `name` (ties: the first in sorted order)."""
        paths = self.files.get(name)
        return min(paths, key=lambda p: (len(p.parts), str(p))) if paths else None

    def image_dir(self, names: set[str]) -> Path | None:
        """The folder holding most of `names` (ties: the shallowest); None when none holds any."""
        scored = [(len(names & images), -len(folder.parts), folder) for folder, images in self.images.items()]
        best = max(scored, key=lambda s: s[:2], default=None)
        return best[2] if best and best[0] else None


def find_flickr(root: str | os.PathLike, split_seed: int = 0, layout: str | None = None) -> FlickrFiles:
    """Find and read a Flickr8k copy anywhere under `root` (see the module docstring).

    split_seed: seed of the split drawn for captions.txt; layout: force "original" (also "sau"),
    "karpathy" or "captions_csv" when a root holds several.
    """
    root = Path(root)
    if not root.is_dir():
        raise FlickrRootError(root, "does not exist")
    tree = _Tree(root)
    token, karpathy, csv = tree.first(TOKEN_FILE), tree.first(KARPATHY_FILE), _find_csv(tree)
    found = {"original": token, "karpathy": karpathy, "captions_csv": csv}
    if layout is not None:
        key = "original" if layout == "sau" else layout
        if key not in found:
            raise ValueError(f"unknown layout {layout!r}; known: original, sau, karpathy, captions_csv")
        found = {key: found[key]}
    kind, path = next(((k, p) for k, p in found.items() if p is not None), (None, None))
    if kind is None:
        raise FlickrRootError(root, "holds no Flickr8k caption file" if any(tree.files) else "is empty")
    report = CaptionReport()
    if kind == "original":
        captions = _read_token_file(path, report)
        split_names = _read_split_files(path.parent, root)
        kind = "sau" if path.parent.name == "Flickr_TextData" else "original"
    elif kind == "karpathy":
        captions, split_names = _read_karpathy(path)
    else:
        captions = _read_captions_csv(path, report)
    image_dir = tree.image_dir(set(captions))
    if image_dir is None:
        raise FlickrRootError(root, f"has captions ({path}) but no folder holding their images")
    files = tree.images[image_dir]
    if kind == "captions_csv":
        split_names = _seeded_split(sorted(n for n in captions if n in files), split_seed)
    splits = _assemble(captions, split_names, files, report)
    return FlickrFiles(kind, image_dir, splits, report)


def _find_csv(tree: _Tree) -> Path | None:
    """The shallowest captions.txt whose first line is the Kaggle header."""
    for path in sorted(tree.files.get(CSV_FILE, ()), key=lambda p: (len(p.parts), str(p))):
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            if f.readline().strip().replace(" ", "") == CSV_HEADER:
                return path
    return None


# ---------------------------------------------------------------------------------------------
# Parsing


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


_TOKEN_LINE = re.compile(r"^(?P<name>\S+?)#\d+\s+(?P<caption>.*)$")


def _read_token_file(path: Path, report: CaptionReport) -> dict[str, list[str]]:
    """Flickr8k.token.txt: `name.jpg#N<TAB>caption`; blank lines skipped, malformed ones reported."""
    captions: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        m = _TOKEN_LINE.match(line.strip())
        if m is None or not clean_caption(m["caption"]):
            report.add(f"{path.name}:{number}", "bad_line", line[:200])
            continue
        captions[m["name"]].append(clean_caption(m["caption"]))
    return dict(captions)


def _read_split_files(folder: Path, root: Path) -> dict[str, list[str]]:
    """Flickr_8k.{train,dev,test}Images.txt beside the token file: one image name a line."""
    split_names = {}
    for split, name in SPLIT_FILES.items():
        if not (folder / name).is_file():
            raise FlickrRootError(root, f"has {TOKEN_FILE} in {folder} but not {name} beside it")
        split_names[split] = [line.strip() for line in _read_lines(folder / name) if line.strip()]
    return split_names


def _read_karpathy(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """dataset_flickr8k.json -> (captions by image, image names by split); restval joins train."""
    with open(path, encoding="utf-8") as f:
        images = json.load(f)["images"]
    captions, split_names = {}, {split: [] for split in SPLITS}
    for image in images:
        name = image["filename"]
        captions[name] = [clean_caption(s["raw"]) for s in image.get("sentences", ()) if clean_caption(s["raw"])]
        split = KARPATHY_SPLITS.get(image.get("split"))
        if split is not None:
            split_names[split].append(name)
    return captions, split_names


def _read_captions_csv(path: Path, report: CaptionReport) -> dict[str, list[str]]:
    """Kaggle captions.txt: `image,caption` lines; a caption holding commas may be wrapped in quotes."""
    captions: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(_read_lines(path)[1:], 2):
        if not line.strip():
            continue
        name, comma, caption = line.strip().partition(",")
        caption = caption.strip()
        if len(caption) >= 2 and caption[0] == caption[-1] == '"':  # CSV quoting, "" inside
            caption = caption[1:-1].replace('""', '"')
        if not comma or not name or not clean_caption(caption):
            report.add(f"{path.name}:{number}", "bad_line", line[:200])
            continue
        captions[name.strip()].append(clean_caption(caption))
    return dict(captions)


def _seeded_split(names: list[str], seed: int) -> dict[str, list[str]]:
    """Shuffle names with `seed` and cut them in the proportions of the official split."""
    names = list(names)
    random.Random(seed).shuffle(names)
    total = sum(CSV_SPLIT)
    n_train = round(len(names) * CSV_SPLIT[0] / total)
    n_val = round(len(names) * CSV_SPLIT[1] / total)
    return {"train": names[:n_train], "val": names[n_train:n_train + n_val], "test": names[n_train + n_val:]}


def _assemble(captions: dict[str, list[str]], split_names: dict[str, list[str]], files: set[str],
              report: CaptionReport) -> dict[str, list[tuple[str, list[str]]]]:
    """(name, captions) per split for images with captions and a file; report every other entry."""
    in_split = {name for names in split_names.values() for name in names}
    for name, caps in captions.items():
        if name not in files:
            report.add(name, "no_file", f"{len(caps)} captions")
        elif name not in in_split:
            report.add(name, "no_split", f"{len(caps)} captions")
    splits = {}
    for split in SPLITS:
        pairs, seen = [], set()
        for name in split_names[split]:
            if name in seen:
                continue
            seen.add(name)
            if not captions.get(name):
                report.add(name, "no_captions", split)
            elif name in files:
                pairs.append((name, captions[name]))
        splits[split] = pairs
    return splits
