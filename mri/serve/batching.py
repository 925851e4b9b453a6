"""Batching across requests: photos that arrive together go through the image models as one batch.

A request awaits `batcher.submit(photo)`. A worker thread takes the first waiting photo, gathers the ones
already waiting and those arriving within `window_ms` (at most `max_batch` in all), runs `run(batch)` once
and hands each request its own result. `workers` threads do so side by side, each with its own batch, so
that one batch's convolutions can use a core while another's beam search holds the other (mri.serve.threads).
At most `max_queue` photos wait; one more is refused at once (`Busy`: the page answers 503 with Retry-After).
The workers are the only callers of `run`, while requests read and preprocess their photos in their own
threads.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchSettings:
    max_batch: int = 4  # photos per run of the models
    window_ms: float = 2.0  # how long the first photo of a batch waits for others
    max_queue: int = 64  # photos waiting at most; one more is refused (503)
    retry_after_s: int = 1  # what a refused client is told to wait
    workers: int | None = 1  # batches run side by side; None: the caller decides (the page: one per core)

    def __post_init__(self):
        counts = (self.max_batch, self.max_queue, 1 if self.workers is None else self.workers)
        if min(counts) < 1 or min(self.window_ms, self.retry_after_s) < 0:
            raise ValueError(f"batching: max_batch, max_queue and workers must be >= 1, window_ms and retry_after_s "
                             f">= 0 (got {self})")


class Busy(Exception):
    """The queue of photos waiting for the models is full."""


@dataclass
class _Job:
    item: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Batcher:
    """run(items) -> one result per item, called on batches gathered from concurrent `submit`s."""

    def __init__(self, run: Callable[[Sequence[Any]], Sequence[Any]], settings: BatchSettings = BatchSettings()):
        self.run, self.settings = run, settings
        self._queue: queue.Queue[_Job | None] = queue.Queue(settings.max_queue)
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.batch_sizes: Counter[int] = Counter()  # batch size -> runs of it so far (the load test reports them)

    async def submit(self, item: Any) -> Any:
        """run's result for this item; Busy at once when max_queue items are waiting."""
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        job = _Job(item, loop, loop.create_future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self.settings.max_queue} photos are waiting for the models") from None
        return await job.future

    @property
    def waiting(self) -> int:
        """Photos in the queue, not yet in a batch."""
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the workers after the batches already waiting."""
        for _ in self._workers:
            self._queue.put(None)  # one stop for each worker
        for worker in self._workers:
            worker.join()
        self._workers = []

    def _ensure_worker(self) -> None:
        with self._lock:
            if not self._workers:
                self._workers = [threading.Thread(target=self._work, name=f"mri-batcher-{i}", daemon=True)
                                 for i in range(self.settings.workers or 1)]
                for worker in self._workers:
                    worker.start()

    def _work(self) -> None:
        stop = False
        while not stop and (first := self._queue.get()) is not None:
            batch, stop = self._gather(first)
            self._run([job for job in batch if not job.future.cancelled()])  # those whose clients did not hang up

    def _run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        with self._lock:
            self.batch_sizes[len(jobs)] += 1
        try:
            results = self.run([job.item for job in jobs])
        except Exception as err:  # every request of the batch gets the error
            for job in jobs:
                job.loop.call_soon_threadsafe(_settle, job.future, None, err)
            return
        for job, result in zip(jobs, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, result, None)

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The batch of first: others until the window closes or the batch is full; and whether a stop came."""
        batch, deadline = [first], time.monotonic() + self.settings.window_ms / 1000
        while len(batch) < self.settings.max_batch:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0)) if time.monotonic() < deadline \
                    else self._queue.get_nowait()  # past the window: only those already waiting
            except queue.Empty:
                break
            if job is None:
                return batch, True  # this worker stops after the batch
            batch.append(job)
        return batch, False


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_exception(error) if error is not None else future.set_result(result)
