"""The Batcher: concurrent submissions gathered into batches, each its own result, a full queue refused at once."""
import asyncio
import threading

import pytest

from mri.serve.batching import Batcher, BatchSettings, Busy


def test_items_that_arrive_together_run_as_one_batch():
    batches = []

    def run(items):
        batches.append(list(items))
        return [item * 10 for item in items]

    batcher = Batcher(run, BatchSettings(max_batch=4, window_ms=200, max_queue=16))

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(6)))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]  # each its own result, in order
    assert [len(b) for b in batches] == [4, 2] and sorted(sum(batches, [])) == list(range(6))
    assert batcher.batch_sizes == {4: 1, 2: 1}
    batcher.close()


def test_a_full_queue_is_refused_and_the_rest_answered():
    running, release = threading.Event(), threading.Event()

    def run(items):
        running.set()
        release.wait(10)
        return [-item for item in items]

    batcher = Batcher(run, BatchSettings(max_batch=1, window_ms=0, max_queue=1))

    async def main():
        first = asyncio.ensure_future(batcher.submit(1))
        while not running.is_set():  # the worker holds item 1 in run
            await asyncio.sleep(0.005)
        second = asyncio.ensure_future(batcher.submit(2))  # waits in the queue
        await asyncio.sleep(0.01)
        with pytest.raises(Busy):
            await batcher.submit(3)
        release.set()
        return await first, await second

    assert asyncio.run(main()) == (-1, -2)
    batcher.close()


def test_an_error_of_the_models_reaches_every_request_of_its_batch():
    def run(items):
        raise RuntimeError("model failed")

    batcher = Batcher(run, BatchSettings(max_batch=8, window_ms=100))

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    errors = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) and str(e) == "model failed" for e in errors)
    assert asyncio.run(asyncio.wait_for(Batcher(lambda items: items).submit("again"), 5)) == "again"
    batcher.close()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch"):
        BatchSettings(max_batch=0)
    with pytest.raises(ValueError, match="workers"):
        BatchSettings(workers=0)


def test_workers_run_batches_side_by_side_and_all_stop():
    inside, both = threading.Barrier(2, timeout=10), []

    def run(items):
        if items[0] < 5:
            inside.wait()  # returns only when two batches are in run at once
        both.append(threading.current_thread().name)
        return [item + 1 for item in items]

    batcher = Batcher(run, BatchSettings(max_batch=1, window_ms=0, workers=2))
    others = {t for t in threading.enumerate() if t.name.startswith("mri-batcher")}  # other tests' batchers

    async def main():
        return await asyncio.gather(batcher.submit(1), batcher.submit(2))

    assert asyncio.run(main()) == [2, 3]
    assert len(set(both)) == 2  # two worker threads
    batcher.close()
    assert {t for t in threading.enumerate() if t.name.startswith("mri-batcher")} == others
    assert asyncio.run(asyncio.wait_for(batcher.submit(5), 5)) == 6  # started again after close
    batcher.close()
