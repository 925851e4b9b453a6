"""EfficientNet-Lite0 with its batch norms folded into its convolutions, against the same network unfolded.

    python experiments/serve_load/folding.py [--batches 1 4 16] [--repeats 10]

Both copies channels-last in eval mode (as the page runs them), on the real photos of experiments/real_photos/
preprocessed as the photo tagger does; the two are run in turn on the same batch, `repeats` times per batch size
after a warm-up. Prints the median ms a photo of each, their ratio, and the largest logit difference.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from mri.data.images import load_image
from mri.models.backbones import for_inference
from mri.models.imagenet import load_classifier

PHOTOS = Path(__file__).resolve().parents[1] / "real_photos" / "photos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    unfolded = for_inference(load_classifier("efficientnet_lite0"))
    folded = copy.deepcopy(unfolded)
    for_inference(folded, lambda: folded(folded.preprocessing.example()))
    photos = torch.stack([unfolded.preprocessing(load_image(p)) for p in sorted(PHOTOS.glob("*.jpg"))])
    print(f"{torch.get_num_threads()} threads; {len(photos)} real photos at {tuple(photos.shape[2:])}")
    with torch.inference_mode():
        print(f"largest logit difference, folded - unfolded: {(folded(photos) - unfolded(photos)).abs().max():.2e}")
        for size in args.batches:
            batch = photos[:size].contiguous(memory_format=torch.channels_last)
            times: dict[str, list[float]] = {"unfolded": [], "folded": []}
            for _ in range(args.repeats + 1):  # the first round warms up
                for name, net in (("unfolded", unfolded), ("folded", folded)):
                    start = time.perf_counter()
                    net(batch)
                    times[name].append(1000 * (time.perf_counter() - start) / size)
            a, b = (statistics.median(times[n][1:]) for n in ("unfolded", "folded"))
            print(f"batch {size:>2}: unfolded {a:6.1f} ms a photo, folded {b:6.1f} ms a photo, {a / b:.2f}x")


if __name__ == "__main__":
    main()
