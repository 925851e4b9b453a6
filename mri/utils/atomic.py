"""Files that appear whole or not at all: written beside their place, flushed to disk, renamed into it."""
from __future__ import annotations

import os
import socket
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` through `write(binary file)`; a crash at any moment leaves the old file or none, never half.

    The temporary name carries host and pid: several machines may write into one shared folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def write_arrays(path: str | os.PathLike, key: str, arrays: dict[str, np.ndarray]) -> None:
    """A cache file of arrays (.npz, written atomically) stamped with the key of what they were computed from."""
    write_atomically(path, lambda f: np.savez(f, key=np.array(key), **arrays))


def read_arrays(path: str | os.PathLike, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of write_arrays' file when it is there, whole and stamped with this key; else None (recompute).
    No pickles: a planted file cannot run code."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files if name != "key"} if str(f["key"]) == key else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, truncated or another file
        return None
