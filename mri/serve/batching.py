"""Batching across requests: photos that arrive together go through the image models as one batch.

A request awaits `batcher.submit(photo)`. One worker thread takes the first waiting photo, gathers the ones
already waiting and those arriving within `window_ms` (at most `max_batch` in all), runs `run(batch)` once
and hands each request its own result. At most `max_queue` photos wait; one more is refused at once
(`Busy`: the page answers 503 with Retry-After). The worker is the only caller of `run`: the models see one
batch at a time, while requests read and preprocess their photos in their own threads.
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
    max_batch: int = 16  # photos per run of the models
    window_ms: float = 2.0  # how long the first photo of a batch waits for others
    max_queue: int = 64  # photos waiting at most; one more is refused (503)
    retry_after_s: int = 1  # what a refused client is told to wait

    def __post_init__(self):
        if self.max_batch < 1 or self.max_queue < 1 or self.window_ms < 0 or self.retry_after_s < 0:
            raise ValueError(f"batching: max_batch and max_queue must be >= 1, window_ms and retry_after_s >= 0 "
                             f"(got {self})")


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
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()
        self._stopping = False
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
        """Stop the worker after the batches already waiting."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker, self._stopping = None, False

    def _ensure_worker(self) -> None:
        with self._start:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="mri-batcher", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while (batch := self._gather()) is not None:
            jobs = [job for job in batch if not job.future.cancelled()]  # their clients hung up
            if not jobs:
                continue
            self.batch_sizes[len(jobs)] += 1
            try:
                results = self.run([job.item for job in jobs])
            except Exception as err:  # every request of the batch gets the error
                for job in jobs:
                    job.loop.call_soon_threadsafe(_settle, job.future, None, err)
                continue
            for job, result in zip(jobs, results, strict=True):
                job.loop.call_soon_threadsafe(_settle, job.future, result, None)

    def _gather(self) -> list[_Job] | None:
        """The next batch: the first job, then others until the window closes or the batch is full; None: stop."""
        first = None if self._stopping else self._queue.get()
        if first is None:
            return None
        batch, deadline = [first], time.monotonic() + self.settings.window_ms / 1000
        while len(batch) < self.settings.max_batch:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0)) if time.monotonic() < deadline \
                    else self._queue.get_nowait()  # past the window: only those already waiting
            except queue.Empty:
                break
            if job is None:
                self._stopping = True  # after this batch
                break
            batch.append(job)
        return batch


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_exception(error) if error is not None else future.set_result(result)
