"""Photo -> top-10 songs with the models loaded: how long one photo takes, tagger and bridge included.

    python experiments/real_photos/latency.py [--tag-mel CKPT] [--index DIR] [--threads 2] [--rounds 3]

Each of the real photos (JPEG bytes in memory) goes alone through the whole path a request takes: read and
preprocess, the tagger (EfficientNet-Lite0 + light and colour), the bridge (lexicon, embedding of the words the
cache does not hold, widening) and the song search. Printed: the median and 90th percentile per photo, per step,
without text and with a text of words never seen before (each is embedded at query time); then the same photos
as a phone writes them (4032 x 3024 JPEGs, quality 92, 1.4-4 MB), read as the recommender reads them (libjpeg's
reduced decode, load_image's min_side) and, side by side, decoded whole. The tag vectors and the tagger's words
are embedded once when the recommender loads (cached on disk), not per photo.
"""
from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mri.checkpoints import latest_checkpoint
from mri.data.images import ImageSource, load_image
from mri.models.image_stage import PreparedPhoto
from mri.recommend.pipeline import Recommender

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Korean and English words for texts no query has used before: a new text is embedded at query time.
TEXT_WORDS = ("새벽", "감성", "드라이브", "산책", "여름밤", "첫눈", "바닷가", "퇴근길", "주말", "햇살", "소나기",
              "벚꽃", "quiet", "evening", "lonely", "sunrise", "breeze", "harbor", "city", "lights", "autumn", "picnic")


PHONE = (4032, 3024)


def phone_sized(photo: bytes) -> bytes:
    """The photo as a 12-megapixel phone JPEG."""
    out = io.BytesIO()
    Image.open(io.BytesIO(photo)).convert("RGB").resize(PHONE, Image.Resampling.BICUBIC).save(out, "JPEG", quality=92)
    return out.getvalue()


def decoded_whole(rec: Recommender, photo: ImageSource) -> PreparedPhoto:
    """rec.prepare without the reduced decode: every pixel of the JPEG decoded, then preprocessed."""
    return rec.stage.preprocess(load_image(photo, rec.stage.max_pixels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag-mel", default=None)
    parser.add_argument("--index", default=None, help="default: song_index/ in the tag-mel run folder")
    parser.add_argument("--cache-dir", default=str(ROOT / "data/cache/tag_embeddings"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tag_mel = Path(args.tag_mel or latest_checkpoint(ROOT / "logs", "two_tower"))
    rec = Recommender.load(None, tag_mel, args.index or tag_mel.resolve().parents[1] / "song_index",
                           bridge={"embedding": {"cache_dir": args.cache_dir, "threads": args.threads}})
    photos = [p.read_bytes() for p in sorted((HERE / "photos").glob("*.jpg"))]
    phones = [phone_sized(photo) for photo in photos]
    rng = np.random.default_rng(0)
    modes = {"photo": (photos, rec.prepare, False), "photo + new text": (photos, rec.prepare, True),
             "phone photo": (phones, rec.prepare, False),
             "phone photo, decoded whole": (phones, lambda p: decoded_whole(rec, p), False)}
    timings: dict[str, list[list[float]]] = {mode: [] for mode in modes}
    rec.answer("warm-up", rec.describe([rec.prepare(photos[0])])[0], 10, "warm up")
    seen = set()
    for _ in range(args.rounds):
        for i in range(len(photos)):
            for mode, (sources, prepare, with_text) in modes.items():
                text = ""
                while with_text and (not text or text in seen):
                    text = " ".join(rng.choice(TEXT_WORDS, 2, replace=False)) + f" {rng.integers(1000)}번째"
                seen.add(text)
                t0 = time.perf_counter()
                prepared = prepare(sources[i])
                t1 = time.perf_counter()
                findings = rec.describe([prepared])[0]
                t2 = time.perf_counter()
                result = rec.answer("photo", findings, 10, text)
                t3 = time.perf_counter()
                assert len(result.songs) == 10
                timings[mode].append([t1 - t0, t2 - t1, t3 - t2, t3 - t0])
    load = os.getloadavg()
    print(f"{len(photos)} photos x {args.rounds} rounds, torch threads {args.threads}, phone JPEGs "
          f"{min(map(len, phones)) / 1e6:.1f}-{max(map(len, phones)) / 1e6:.1f} MB, "
          f"{len(rec.index)} songs; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'ms per photo (median / p90)':34}{'read+prep':>14}{'tagger':>14}{'bridge+songs':>14}{'total':>14}")
    for mode, rows in timings.items():
        a = np.array(rows) * 1000  # (N, 4) ms
        cells = "".join(f"{np.median(a[:, j]):7.1f}/{np.percentile(a[:, j], 90):6.1f}" for j in range(4))
        print(f"{mode:34}{cells}")
    whole, reduced = (np.median(np.array(timings[m])[:, 3]) for m in ("phone photo, decoded whole", "phone photo"))
    print(f"phone photo, median total: decoded whole / reduced decode = {whole / reduced:.2f}x")


if __name__ == "__main__":
    main()
