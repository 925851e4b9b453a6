"""Real photographs -> songs: do the top-10 songs' generated themes fit what the photo shows?

    python experiments/real_photos/evaluate.py [--tag-mel CKPT] [--index DIR] [--captioner CKPT]
        [--caption-weight W] [--k 10]

The photos and the themes that fit each (labelled before any result was seen) are labels.tsv's. A song fits a
photo when its generated theme (mri_synthetic.json of the Melon root) is one of the photo's. Printed per photo:
the tagger's classes, the keywords, the heaviest tags and the themes of the top-k songs; then the mean share
of fitting songs in the top k for each path, beside a random pick (the catalogue's share of fitting songs) and
beside always answering the most labelled theme's songs (what the labels' imbalance alone gives):

- tagger: the default without a captioner (`python train.py model=squeezenet` only);
- tagger, lexicon only: the bridge without its embedding stage;
- tagger, hubs none / csls: the embedding stage with other hub corrections;
- captioner only / tagger + captioner (a captioner of generated scenes: its words at generated_caption_weight
  on photos unlike its training photos, fully on the others): with --captioner.

Checkpoints default to the latest runs under logs/ (as recommend.py picks them); the index must be built.
"""
from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mri.checkpoints import latest_checkpoint
from mri.data.synthetic.melon import read_truth
from mri.recommend.pipeline import Recommender

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def read_labels(path: Path) -> list[tuple[str, set[str]]]:
    """(photo file name, themes that fit it) per row of labels.tsv."""
    with open(path, encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    return [(r[0], set(r[1].split(","))) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag-mel", default=None)
    parser.add_argument("--index", default=None, help="default: song_index/ in the tag-mel run folder")
    parser.add_argument("--captioner", default=None, help="a captioner checkpoint for the captioner paths")
    parser.add_argument("--cache-dir", default=str(ROOT / "data/cache/tag_embeddings"))
    parser.add_argument("--caption-weight", type=float, default=None,
                        help="generated_caption_weight: the words' weight of a captioner of generated scenes only "
                             "(default: Recommender.load's)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--quiet", action="store_true", help="the summary only")
    args = parser.parse_args()
    tag_mel = Path(args.tag_mel or latest_checkpoint(ROOT / "logs", "two_tower"))
    index_dir = args.index or tag_mel.resolve().parents[1] / "song_index"
    started = time.perf_counter()
    weight = {} if args.caption_weight is None else {"generated_caption_weight": args.caption_weight}
    rec = Recommender.load(args.captioner, tag_mel, index_dir, bridge={"embedding": {"cache_dir": args.cache_dir}},
                           **weight)
    print(f"loaded in {time.perf_counter() - started:.1f} s; tag-mel {tag_mel}; captioner {args.captioner}")
    song_theme = np.array(read_truth(rec.store.meta["root"])["songs"]["theme"])  # by song id
    catalogue = Counter(song_theme[rec.index.song_ids])  # theme -> songs in the index

    labels = read_labels(HERE / "labels.tsv")
    names = [name for name, _ in labels]
    findings = list(rec.stage.run([HERE / "photos" / n for n in names]))
    embeddings = rec.bridge.embeddings
    paths = {"tagger": lambda f: {"tags": f["tags"]}, "tagger, lexicon only": lambda f: {"tags": f["tags"]},
             "tagger, hubs none": lambda f: {"tags": f["tags"]}, "tagger, hubs csls": lambda f: {"tags": f["tags"]}}
    variants = {"tagger, lexicon only": None, "tagger, hubs none": embeddings.with_hubs("none"),
                "tagger, hubs csls": embeddings.with_hubs("csls")}
    if args.captioner:
        paths["captioner only"] = lambda f: {"caption": f["caption"]}
        paths["tagger + captioner"] = lambda f: f
    shares: dict[str, list[float]] = {p: [] for p in paths}
    for (name, fits), found in zip(labels, findings, strict=True):
        for path, pick in paths.items():
            rec.bridge.embeddings = variants.get(path, embeddings)
            result = rec.answer(name, pick(found), args.k)
            themes = Counter(song_theme[s.song_id] for s in result.songs)
            shares[path].append(sum(n for t, n in themes.items() if t in fits) / args.k)
            if path == "tagger" and not args.quiet:
                t = result.trail
                print(f"\n== {name}  fits: {', '.join(sorted(fits))}  share {shares[path][-1]:.1f}")
                print("  classes  " + ", ".join(f"{c} {p:.2f}" for c, p in found["tags"].classes[:3]))
                print("  keywords " + ", ".join(f"{w} {t.keyword_weights[w]:.2f}" for w in t.keywords[:8]))
                embedded = [f"{w}->{'/'.join(tag for tag, _, _ in tags)}" for w, tags in t.embedded.items()]
                if embedded:
                    print("  embedded " + ", ".join(embedded[:6]))
                print("  tags     " + ", ".join(f"{tag} {x:.2f}" for tag, x in list(t.weights.items())[:6]))
                print("  songs    " + ", ".join(f"{th} {n}" for th, n in themes.most_common()))
            if path == "captioner only" and not args.quiet:
                like = f", like its training photos {found['familiarity']:.2f}" if "familiarity" in found else ""
                print(f"  caption  {found['caption']!r}: share {shares[path][-1]:.1f}{like}")
    rec.bridge.embeddings = embeddings

    n_songs = sum(catalogue.values())
    random = [sum(catalogue[t] for t in fits) / n_songs for _, fits in labels]
    common = Counter(t for _, fits in labels for t in fits).most_common(1)[0][0]
    print(f"\n{len(labels)} photos, {n_songs} songs; mean share of the top-{args.k} songs whose theme fits the photo")
    for path, values in shares.items():
        print(f"  {path:28} {np.mean(values):.3f}")
    print(f"  {'random':28} {np.mean(random):.3f}")
    print(f"  {'always ' + common:28} {np.mean([common in fits for _, fits in labels]):.3f}  (labels' imbalance)")
    if rec.caption_trust.familiarity is not None:
        print(rec.caption_trust.familiarity.summary([f["familiarity"] for f in findings]))


if __name__ == "__main__":
    main()
