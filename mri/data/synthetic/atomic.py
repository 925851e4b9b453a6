"""A generated root appears whole or not at all: built in a temp sibling, marked complete, then renamed."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

MARKER = ".mri_complete"  # written last, holding the params: a root without it is not complete


def generate_atomically(root: str | os.PathLike, params: dict, build: Callable[[Path], None], kind: str) -> Path:
    """Return `root`, built by `build(folder)` unless a complete one is there already.

    A root whose marker holds other params is kept (with a warning); a non-empty root without the
    marker is refused (FileExistsError). `build` writes into a `.{name}.partial-*` sibling; the marker
    is written last and the folder renamed onto the root atomically (a concurrent run that finished
    first wins); the sibling is removed on any failure. kind: "Melon", "Flickr" for messages.
    """
    root = Path(root)
    if (root / MARKER).is_file():
        if json.loads((root / MARKER).read_text(encoding="utf-8")) != params:
            warnings.warn(f"{root} was generated with other parameters; keeping it (delete it to regenerate)",
                          stacklevel=1)
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists but is not a complete generated {kind} root; remove it or pick another")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))  # never mistaken for root
    try:
        os.chmod(tmp, 0o755)
        build(tmp)
        (tmp / MARKER).write_text(json.dumps(params), encoding="utf-8")
        try:
            os.replace(tmp, root)  # atomic; root is absent or an empty folder
        except OSError:
            if not (root / MARKER).is_file():  # not a concurrent run that finished first
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
