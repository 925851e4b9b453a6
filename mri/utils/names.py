"""File names as text that any UTF-8 output can carry, and JSON that stays valid whatever the names.

A name that is not valid UTF-8 reaches Python as str with each undecodable byte 0xXY held as the lone
surrogate U+DCXY (os.fsdecode, "surrogateescape"). Such a character cannot be written as UTF-8, so it is
written as the escape `\\udcXY`: in JSON that escape reads back as the same str, so
`os.fsencode(json.loads(text)[i]["path"])` gives the original bytes; in plain text it is shown as is.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(name: str) -> str:
    """name with every lone surrogate (an undecodable byte of a file name) written as the escape \\udcXY."""
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def json_text(value: Any, **options) -> str:
    """json.dumps with non-ASCII text as it is (Korean tags stay readable) and lone surrogates escaped."""
    return printable(json.dumps(value, ensure_ascii=False, **options))  # a surrogate only occurs inside a string


def report_skipped(skipped: Sequence[tuple[Path, str]]) -> None:
    """One line on stderr for every entry of a folder that is not read: `path: skipped: why`."""
    for entry, why in skipped:
        print(f"{printable(str(entry))}: skipped: {why}", file=sys.stderr, flush=True)
