"""Hub tags of the embedding bridge: how evenly words spread over the tags, and whether they reach the right ones.

    python experiments/real_photos/hubs.py [--melon data/melon-synth-n2000-s0] [--num-tags 64]

Probe words: every word the tagger can give (ImageNet class names of no group, group and pixel words) and the
lexicon's words. For each hub correction (none, csls, centre) and tag description (the tag's word alone, or
word_weight x its word + the rest x the mean of its playlists' titles): how many distinct tags are some probe
word's nearest, the share of the biggest hub, the entropy of the nearest-tag counts, and, for the lexicon's
words, the share whose nearest tag belongs to a theme their lexicon tags belong to (the curated lexicon as labels).
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from mri.data.melon import read_playlists
from mri.data.synthetic.themes import THEMES
from mri.data.tags import TagVocabulary, normalize_tag
from mri.models.imagenet import load_classifier
from mri.recommend.bridge import Lexicon, tag_descriptions
from mri.recommend.embedding import HUB_CORRECTIONS, SentenceEncoder, TagEmbeddings
from mri.recommend.tagger import PhotoTagger

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--melon", default=str(ROOT / "data/melon-synth-n2000-s0"))
    parser.add_argument("--num-tags", type=int, default=64, help="query tags: the most frequent (data.num_tags)")
    parser.add_argument("--cache-dir", default=str(ROOT / "data/cache/tag_embeddings"))
    args = parser.parse_args()
    playlists = read_playlists(args.melon, "train")
    tags = list(TagVocabulary.from_playlists(playlists).tags[:args.num_tags])
    lexicon = Lexicon.load()
    probes = sorted(set(PhotoTagger(load_classifier()).vocabulary()) | set(lexicon.entries))
    theme_of = {normalize_tag(t): th.name for th in THEMES for t in th.tags}
    labelled = {w: {theme_of[normalize_tag(t)] for t, _ in ts if normalize_tag(t) in theme_of}
                for w, ts in lexicon.entries.items()}
    labelled = {w: themes for w, themes in labelled.items() if themes}
    encoder = SentenceEncoder()
    titled = tag_descriptions(playlists, tags)
    print(f"{len(probes)} probe words, {len(tags)} query tags, {len(labelled)} lexicon words with a theme")
    print(f"{'description':24}{'hubs':>8}{'distinct':>10}{'top hubs (share)':>44}{'entropy':>9}{'theme ok':>10}")
    for label, descriptions, word_weight in (("tag word alone", {t: [] for t in tags}, 1.0),
                                             ("word 0.3 + titles", titled, 0.3), ("word 0.1 + titles", titled, 0.1)):
        built = TagEmbeddings.build(encoder, descriptions, probes, args.cache_dir, word_weight=word_weight)
        for hubs in HUB_CORRECTIONS:
            e = built.with_hubs(hubs)
            nearest = [r[0][0] for r in e.nearest(probes, k=1, min_score=-9)]
            counts = Counter(nearest)
            p = np.array(list(counts.values())) / len(nearest)
            top = ", ".join(f"{t} {n / len(nearest):.2f}" for t, n in counts.most_common(3))
            by_word = dict(zip(probes, nearest, strict=True))
            ok = np.mean([theme_of.get(normalize_tag(by_word[w])) in themes for w, themes in labelled.items()])
            print(f"{label:24}{hubs:>8}{len(counts):>10}{top:>44}{-(p * np.log(p)).sum():9.2f}{ok:10.3f}")


if __name__ == "__main__":
    main()
