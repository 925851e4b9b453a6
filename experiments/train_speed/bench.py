"""Training speed: the same model, data and batch size through Lightning and through a plain PyTorch loop.

    python experiments/train_speed/bench.py [--model squeezenet] [--steps 60] [--rounds 3]

Prints samples/s (pairs, or songs with song batches) of: the data loader alone, a plain loop (forward,
the module's MSE, backward, AdamW step), and
Lightning's fit loop (TagMelModule, same optimiser, no validation), alternating the two loops for
`rounds` rounds and taking medians, then the ratio Lightning / plain (target >= 0.9) and data / plain
(how much faster data comes than the model consumes it: > 1 means data loading is not the bottleneck).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from mri.models.tag_mel_module import batch_loss
from mri.utils.config import compose_config

HERE = Path(__file__).resolve().parent


class StepTimer(Callback):
    """Wall time of the training steps after `warmup` of them, over as many epochs as they span."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.end = time.perf_counter()


def batches(loader, n: int):
    """The first n batches of a loader, cycling if it is shorter."""
    while True:
        for batch in loader:
            if n == 0:
                return
            n -= 1
            yield batch


def data_rate(loader, steps: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in batches(loader, steps):
        pass
    return steps * batch_size / (time.perf_counter() - start)


def plain_rate(cfg, loader, steps: int, warmup: int, batch_size: int) -> float:
    net = hydra.utils.instantiate(cfg.model.net)
    optimizer = hydra.utils.instantiate(cfg.model.optimizer)(params=net.parameters())
    net.train()
    for i, batch in enumerate(batches(loader, warmup + steps)):
        if i == warmup:
            start = time.perf_counter()
        loss = batch_loss(net, batch)  # the module's loss function; the loop around it is what is compared
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def lightning_rate(cfg, datamodule, steps: int, warmup: int, batch_size: int) -> float:
    model = hydra.utils.instantiate(cfg.model)
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=warmup + steps,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, callbacks=[timer],
                        enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    return steps * batch_size / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    cfg = compose_config("train", [f"model={args.model}", "logger=[]", "callbacks=none"],
                         HERE / "run", Path(args.data_dir).resolve())
    L.seed_everything(0)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader, batch_size = datamodule.train_dataloader(), cfg.data.batch_size

    rates = {"data": [], "plain": [], "lightning": []}
    for _ in range(args.rounds):
        rates["data"].append(data_rate(loader, args.steps, batch_size))
        rates["plain"].append(plain_rate(cfg, loader, args.steps, args.warmup, batch_size))
        rates["lightning"].append(lightning_rate(cfg, datamodule, args.steps, args.warmup, batch_size))
    median = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "model": args.model, "backbone": cfg.model.net.backbone, "batch_size": batch_size,
        "steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "samples_per_s": median, "all_rounds": rates,
        "lightning_over_plain": median["lightning"] / median["plain"],
        "data_over_plain": median["data"] / median["plain"],
    }
    print(f"{'':12}{'samples/s':>12}")
    for k, v in median.items():
        print(f"{k:12}{v:12.0f}")
    print(f"lightning / plain = {result['lightning_over_plain']:.3f}   (target >= 0.9)")
    print(f"data / plain      = {result['data_over_plain']:.1f}     (> 1: data loading is not the bottleneck)")
    (HERE / f"results_{args.model}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
