"""The image models' threads in the server: one batch worker per core, each on one torch thread.

torch parallelises an op over its intra-op threads (OpenMP). In the server's batcher thread, waking the
helper threads for each of EfficientNet-Lite0's ops costs more than the work of one photo, and while a batch
is in the captioner's beam search (small ops, Python between them) the second core waits. Measured on the
2-core Intel Xeon with the default models (photo tagger + EfficientNet-Lite0 captioner):

- `describe` in a worker thread, ms per batch of 1 / 2 / 4 / 8 / 16 photos: 41-42 / 68-70 / 111-117 / 218-235 /
  417-460 on one torch thread, 64-67 / 75-76 / 106-107 / 173-188 / 297-326 on two;
- the page at 16 clients (160-320 uploads, real photos): one worker on two threads 31-34 photos/s, p99
  550-660 ms; two workers on one thread each 40-42 photos/s, p99 416-433 ms (max_batch 4); at one client p50
  52-54 ms against 74 ms.

    describe = on_torch_threads(recommender.describe, threads=1)   # the run of a Batcher with workers=2
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def on_torch_threads(run: Callable[..., Any], threads: int) -> Callable[..., Any]:
    """run, with torch's intra-op thread count of the calling thread set to `threads` first (a thread's count
    is its own)."""
    if threads < 1:
        raise ValueError(f"torch threads must be >= 1, got {threads}")

    def run_on_threads(*args: Any, **kwargs: Any) -> Any:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return run(*args, **kwargs)

    return run_on_threads


def split_cores(workers: int | None, cores: int | None = None) -> tuple[int, int]:
    """(workers, torch threads of each) for `cores` (None: torch's count now); workers None: one per core."""
    cores = cores or torch.get_num_threads()
    workers = workers or cores
    return workers, max(cores // workers, 1)
