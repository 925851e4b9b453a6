"""The image models' threads: batches side by side, each worker on its share of torch's threads."""
import threading

import pytest
import torch

from mri.serve.threads import on_torch_threads, split_cores


def in_thread(fn):
    """fn() in a thread of its own (torch's thread count is per thread: the test's stays as it is)."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join()
    return out["value"]


def test_a_run_sets_the_torch_threads_of_its_thread_and_passes_its_result():
    run = on_torch_threads(lambda batch: (torch.get_num_threads(), [x * 2 for x in batch]), threads=1)
    before = torch.get_num_threads()
    assert in_thread(lambda: run([1, 2])) == (1, [2, 4])
    assert in_thread(lambda: on_torch_threads(torch.get_num_threads, threads=2)()) == 2
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        on_torch_threads(print, threads=0)


def test_the_cores_are_shared_among_the_workers():
    assert split_cores(None, cores=2) == (2, 1)  # one worker per core, one thread each
    assert split_cores(1, cores=2) == (1, 2)
    assert split_cores(2, cores=8) == (2, 4)
    assert split_cores(4, cores=2) == (4, 1)  # never fewer than one thread
