"""Image -> music end to end on generated data: are the top-10 songs of a test photo from the photo's theme?

    python experiments/recommend_e2e/evaluate.py [--tag-mel CKPT] [--captioner CKPT] [--index DIR]
        [--flickr data/flickr8k-synth-n1500-s0] [--k 10]

Checkpoints default to the latest runs under logs/ (as `python recommend.py` picks them); the index must
have been built (`python recommend.py build_index=true`). A song is relevant to a photo when its generated
theme (mri_synthetic.json of the Melon root) is the photo's. Per test photo: P@k, R@k and the reciprocal rank
of the first relevant song, averaged; beside them a random ranking (expected values) and a popularity
ranking (songs by training playlists), and the same pipeline fed the photo's first reference caption instead
of the captioner's, which separates captioning errors from bridge and tag-mel errors.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mri.checkpoints import latest_checkpoint
from mri.data.flickr import find_flickr
from mri.data.images import BadImage
from mri.data.melon import read_playlists
from mri.data.synthetic.flickr import image_themes
from mri.data.synthetic.melon import read_truth
from mri.recommend.pipeline import Recommender

ROOT = Path(__file__).resolve().parents[2]


def rank_metrics(ranked: np.ndarray, relevant: np.ndarray, k: int) -> tuple[float, float, float]:
    """(P@k, R@k, reciprocal rank) of one ranked list of song ids against a boolean relevance by song id."""
    hits = relevant[ranked]
    first = np.flatnonzero(hits)
    return hits[:k].sum() / k, hits[:k].sum() / max(relevant.sum(), 1), 1.0 / (first[0] + 1) if len(first) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag-mel", default=None)
    parser.add_argument("--captioner", default=None)
    parser.add_argument("--index", default=None, help="default: song_index/ in the tag-mel run folder")
    parser.add_argument("--flickr", default=str(ROOT / "data/flickr8k-synth-n1500-s0"))
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    tag_mel = Path(args.tag_mel or latest_checkpoint(ROOT / "logs", "two_tower"))
    captioner = args.captioner or latest_checkpoint(ROOT / "logs", "captioner")
    index_dir = args.index or tag_mel.resolve().parents[1] / "song_index"
    rec = Recommender.load(captioner, tag_mel, index_dir)
    melon_root = rec.store.meta["root"]
    song_theme = np.array(read_truth(melon_root)["songs"]["theme"])  # by song id
    ids = rec.index.song_ids  # the catalogue: songs with features
    popularity = np.zeros(len(song_theme))
    for p in read_playlists(melon_root, "train"):
        popularity[list(p.songs)] += 1
    popular = ids[np.argsort(-popularity[ids], kind="stable")]

    flickr = find_flickr(args.flickr)
    themes = image_themes(args.flickr)
    test = flickr.splits["test"]
    rows = {"model (tagger + captioner)": [], "model (captioner)": [], "model (tagger)": [],
            "model (reference caption)": [], "popularity": [], "random": []}
    rng = np.random.default_rng(0)
    findings = list(rec.stage.run([flickr.image_path(name) for name, _ in test]))
    for (name, references), found in zip(test, findings, strict=True):
        relevant = song_theme == themes[name]
        relevant[np.setdiff1d(np.arange(len(song_theme)), ids)] = False  # only songs of the catalogue count
        if not isinstance(found, BadImage):
            paths = {"model (tagger + captioner)": found, "model (captioner)": {"caption": found["caption"]},
                     "model (tagger)": {"tags": found["tags"]}}
            for row, seen in paths.items():
                songs = rec.answer(name, seen, len(ids)).songs
                rows[row].append(rank_metrics(np.array([s.song_id for s in songs]), relevant, args.k))
        reference = rec.songs(rec.bridge(references[0]), k=len(ids))
        reference_ids = np.array([s.song_id for s in reference])
        rows["model (reference caption)"].append(rank_metrics(reference_ids, relevant, args.k))
        rows["popularity"].append(rank_metrics(popular, relevant, args.k))
        rows["random"].append(np.mean([rank_metrics(rng.permutation(ids), relevant, args.k) for _ in range(20)], 0))

    print(f"{len(test)} test photos, {len(ids)} songs; tag-mel {tag_mel}; captioner {captioner}")
    if rec.caption_trust.familiarity is not None:
        read = [f for f in findings if not isinstance(f, BadImage)]
        print(rec.caption_trust.familiarity.summary([f["familiarity"] for f in read]))
    print(f"{'':28}{'P@' + str(args.k):>8}{'R@' + str(args.k):>8}{'MRR':>8}")
    for name, values in rows.items():
        print(f"{name:28}" + "".join(f"{v:8.3f}" for v in np.mean(values, 0)))


if __name__ == "__main__":
    main()
