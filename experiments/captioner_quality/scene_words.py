"""Share of test captions that name their photo's scene, and the right number of people (generated data).

    python experiments/captioner_quality/scene_words.py <captioner best.ckpt> [--root <generated Flickr8k root>]

A caption names the scene when it holds one of the scene words of the photo's theme
(mri.data.synthetic.themes). Its number of people is read from the generator's phrasing ("a man",
"two girls", "a boy and a woman", "a group of people" = three or more) and compared with the people the
generator drew (mri_synthetic.json); "a person" counts one.
"""
from __future__ import annotations

import argparse
from collections import Counter

from scene_attributes import load_scenes

from mri.checkpoints import read_checkpoint
from mri.data.caption_datamodule import CaptionDataModule
from mri.data.synthetic.scenes import NUMBERS, PERSON_KINDS, PLURAL
from mri.data.synthetic.themes import get_theme
from mri.models.captioner_module import load_captioner

PEOPLE_WORDS = {*PERSON_KINDS, *(PLURAL[k] for k in PERSON_KINDS), "person", "people"}
GROUP = range(3, len(NUMBERS))  # "a group of people": three or more (the generator draws up to four)


def people_named(caption: str) -> range:
    """The numbers of people a caption allows: the number words before its people nouns, summed."""
    if "group of people" in caption:
        return GROUP
    words = caption.split()
    pairs = zip(words, words[1:], strict=False)  # each word and the next: one pair fewer than words
    n = sum(NUMBERS.index(w) for w, noun in pairs if noun in PEOPLE_WORDS and w in NUMBERS)
    return range(n, n + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="generated Flickr8k-format root (default: the checkpoint's)")
    args = parser.parse_args()
    args.root = args.root or read_checkpoint(args.ckpt)["datamodule_hyper_parameters"]["root"]
    model = load_captioner(args.ckpt)
    data = CaptionDataModule(root=args.root, generate=None, preprocessing=model.preprocessing.to_dict())
    data.setup("test")
    if data.themes is None:
        raise SystemExit(f"{args.root} has no generated themes (mri_synthetic.json): use generated data")
    _, scenes = load_scenes(args.root)
    scene_hits = count_hits = total = 0
    counts = Counter()  # (people drawn, people named) -> photos
    for images, _, index in data.test_dataloader():
        for caption, i in zip(model.caption(images), index.tolist(), strict=True):
            name = data.image_names["test"][i]
            scene_hits += bool(set(get_theme(data.themes[name]).scene_words) & set(caption.split()))
            drawn, named = scenes[name]["n_people"], people_named(caption)
            count_hits += drawn in named
            counts[drawn, "3+" if named == GROUP else str(named.start)] += 1
            total += 1
    print(f"{args.root}: {total} test captions")
    print(f"scene word in {scene_hits}: {scene_hits / total:.3f}")
    print(f"right number of people in {count_hits}: {count_hits / total:.3f}")
    print("people drawn -> named (photos):", ", ".join(f"{d}->{n} {c}" for (d, n), c in sorted(counts.items())))


if __name__ == "__main__":
    main()
