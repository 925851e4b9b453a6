"""Captioner training steps on this CPU, side by side: float32 or bf16 autocast, fused or per-word LSTM.

    python experiments/train_speed/captioner_step.py [--steps 20] [--rounds 3] [overrides ...]

`model=captioner_plain` (plain_cnn trained end to end; or with Hydra overrides such as
model.net.encoder=plain_cnn_deep data.preprocessing.resize=64 data.preprocessing.crop=64) on batches of its
own generated data: forward, cross-entropy, backward and AdamW step (the module's `batch_loss`), alternating
the variants for `rounds` rounds; prints the median ms per step of each and their ratios.

- precision: configs/model/captioner.yaml trains in bf16 only where ${mri.fast_precision:cpu} finds
  native bf16 (AVX512-BF16 or AMX); on other CPUs bf16 is emulated and its ratio falls below 1.
- LSTM: without attention, teacher forcing runs the decoder's LSTM over whole captions in one call
  (`CaptionDecoder.teacher_forced`); "per-word" runs it one word at a time (`CaptionDecoder.stepped`,
  how it ran before, and still runs with attention).
"""
from __future__ import annotations

import argparse
import statistics
import time
from itertools import cycle, islice
from pathlib import Path

import hydra
import torch

from mri.models.captioner_module import batch_loss
from mri.utils.config import compose_config
from mri.utils.precision import cpu_has_native_bf16

HERE = Path(__file__).resolve().parent


VARIANTS = {"float32, per-word LSTM": (False, False), "float32": (False, True),
            "bf16, per-word LSTM": (True, False), "bf16": (True, True)}  # name: (bf16, fused LSTM)


def ms_per_step(net, optimizer, batches: list, bf16: bool, fused: bool) -> float:
    if not fused:
        net.decoder.teacher_forced = net.decoder.stepped  # an instance attribute, deleted below
    start = time.perf_counter()
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as Lightning's bf16-mixed
            loss = batch_loss(net, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    if not fused:
        del net.decoder.teacher_forced
    return elapsed / len(batches) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = compose_config("train", ["model=captioner_plain", "logger=[]", *args.overrides], HERE / "run",
                         Path(args.data_dir).resolve())
    torch.manual_seed(0)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches = list(islice(cycle(datamodule.train_dataloader()), args.steps))
    net = hydra.utils.instantiate(cfg.model.net).train()
    optimizer = hydra.utils.instantiate(cfg.model.optimizer)(params=net.parameters())
    if net.decoder.attention is not None:
        raise SystemExit("with model.net.attention=true teacher forcing always runs per word: nothing to compare")
    for bf16, fused in VARIANTS.values():  # warm up every kernel's caches
        ms_per_step(net, optimizer, batches[:3], bf16, fused)

    times = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (bf16, fused) in VARIANTS.items():
            times[name].append(ms_per_step(net, optimizer, batches, bf16, fused))
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"encoder {cfg.model.net.encoder}, {cfg.data.batch_size} images ({cfg.data.preprocessing.crop} px) per step, "
          f"{torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    for k, v in median.items():
        print(f"{k:24}{v:8.0f} ms/step")
    for a, b in [("float32", "float32, per-word LSTM"), ("bf16", "bf16, per-word LSTM"), ("bf16", "float32"),
                 ("bf16", "float32, per-word LSTM")]:
        print(f"{a} / {b} time = {median[a] / median[b]:.2f}")


if __name__ == "__main__":
    main()
