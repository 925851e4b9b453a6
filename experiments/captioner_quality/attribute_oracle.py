"""BLEU-4 of describers that know only some attributes of each test scene: what a captioner must see.

    python experiments/captioner_quality/attribute_oracle.py [data/flickr8k-synth-n1500-s0]

For each set of attributes (theme; theme + number of people; ...), every test photo gets the consensus
caption (the one that scores best against its own other four) of a random training photo that agrees
with it on those attributes (on the theme alone when none does), and the corpus BLEU-4 of these
captions against the test references is printed. The attributes come from `mri_synthetic.json`, which
the generator writes beside the Flickr files, so this runs on generated data only. Rows with many
attributes match few training photos and fall back to the theme, so they understate what knowing
them is worth; the last row is a describer that knows everything (against four references, not five).
"""
from __future__ import annotations

import argparse
import random

from scene_attributes import load_scenes

from mri.data.flickr import clean_caption
from mri.metrics.captioning import corpus_bleu

ATTRIBUTE_SETS = (
    ("theme",),
    ("theme", "n_people"),
    ("theme", "kinds"),
    ("theme", "kinds", "action"),
    ("theme", "kinds", "colours"),
    ("theme", "n_people", "colours", "action", "animal", "n_animals"),
    ("theme", "kinds", "colours", "action", "animal", "n_animals"),
)


def consensus(captions: list[list[str]]) -> list[str]:
    """The caption with the highest BLEU-4 against the image's other captions."""
    return max(captions, key=lambda c: corpus_bleu([c], [[r for r in captions if r is not c]])["bleu4"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="data/flickr8k-synth-n1500-s0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    files, attrs = load_scenes(args.root)
    captions = {name: [clean_caption(c).split() for c in caps] for split in files.splits.values()
                for name, caps in split}
    train = [name for name, _ in files.splits["train"] if name in attrs]
    test = [name for name, _ in files.splits["test"] if name in attrs]
    described = {name: consensus(captions[name]) for name in train}
    rng = random.Random(args.seed)

    print(f"{len(test)} test photos, {len(train)} training photos; references: the test photos' captions")
    for keys in ATTRIBUTE_SETS:
        def key(name: str, keys=keys) -> tuple:
            return tuple(attrs[name][k] for k in keys)
        by_key, by_theme = {}, {}
        for name in train:
            by_key.setdefault(key(name), []).append(name)
            by_theme.setdefault(attrs[name]["theme"], []).append(name)
        hypotheses, matched = [], 0
        for name in test:
            pool = by_key.get(key(name))
            matched += pool is not None
            hypotheses.append(described[rng.choice(pool or by_theme[attrs[name]["theme"]])])
        bleu4 = corpus_bleu(hypotheses, [captions[name] for name in test])["bleu4"]
        print(f"{' + '.join(keys):62s} matched {matched:4d}/{len(test)}   BLEU-4 {bleu4:.3f}")
    own = [consensus(captions[name]) for name in test]
    others = [[r for r in captions[name] if r is not c] for name, c in zip(test, own, strict=True)]
    print(f"{'everything (its own consensus caption vs the other four)':62s} {'':16s}BLEU-4 "
          f"{corpus_bleu(own, others)['bleu4']:.3f}")


if __name__ == "__main__":
    main()
