"""Captioning time per image on CPU: greedy vs beam search (3 beams), batch 1 vs batch 32.

    python experiments/caption_speed/bench.py [--ckpt logs/train/runs/<run>/checkpoints/best.ckpt]
        [--threads 2] [--images 64] [overrides for the model config, e.g. model.net.attention=true]

Without --ckpt the network of the default model config (`model=captioner`) has random weights: it
never writes EOS, so every caption runs the full max_len steps (an upper bound of the time). With a
trained checkpoint captions end when they end, as in use.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir

from mri.models.captioner_module import load_captioner

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def build(ckpt: str | None, overrides: list[str]) -> tuple[torch.nn.Module, int, int]:
    """(network in eval mode, image side, max_len) from a checkpoint or the default model config."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=captioner", *overrides])
    if ckpt:
        module = load_captioner(ckpt)
        return module.net, module.preprocessing.crop, module.hparams.max_len
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model.net).eval(), cfg.data.preprocessing.crop, cfg.model.max_len


def seconds_per_image(decode, images: torch.Tensor, batch_size: int, repeats: int) -> float:
    decode(images[:batch_size])  # warm-up
    best = float("inf")
    for _ in range(repeats):  # the best of a few passes: the least disturbed by other processes
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            decode(images[i:i + batch_size])
        best = min(best, time.perf_counter() - start)
    return best / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="a captioner checkpoint; default: random weights of the model config")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the model config")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, size, max_len = build(args.ckpt, args.overrides)
    images = torch.randn(args.images, 3, size, size)
    decoders = {"greedy": lambda x: net.greedy(x, max_len), "beam3": lambda x: net.beam_search(x, 3, max_len)}
    print(f"{'ms per image':14}{'batch 1':>10}{'batch 32':>10}   ({args.threads} threads, {size}x{size} images, "
          f"max_len {max_len}, {'checkpoint' if args.ckpt else 'random weights'})")
    table = {name: {b: 1000 * seconds_per_image(fn, images, b, args.repeats) for b in (1, 32)}
             for name, fn in decoders.items()}
    for name, row in table.items():
        print(f"{name:14}{row[1]:10.2f}{row[32]:10.2f}")
    print(f"{'beam3/greedy':14}{table['beam3'][1] / table['greedy'][1]:9.2f}x"
          f"{table['beam3'][32] / table['greedy'][32]:9.2f}x")


if __name__ == "__main__":
    main()
