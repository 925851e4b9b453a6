"""SkipReport: what a reader skipped and why, counted per reason and listed; mergeable, written atomically.

Subclasses name their reasons: ImageReport (mri.data.images), CaptionReport (mri.data.flickr),
MelReport (mri.data.melon).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mri.utils.atomic import write_text_atomically


@dataclass
class SkipReport:
    """What a reader skipped and why: counts per reason and (item, reason, detail) entries; mergeable.

    Subclasses name their reasons in REASONS and the type of their items in ITEM (str: file or image
    names; MelReport: int song ids).
    """

    REASONS: ClassVar[tuple[str, ...]] = ()
    ITEM: ClassVar[Callable[[Any], Any]] = str
    counts: dict[str, int] = field(default_factory=dict)
    entries: list[tuple[Any, str, str]] = field(default_factory=list)  # (item, reason, detail)

    def __post_init__(self):
        self.counts = {**dict.fromkeys(self.REASONS, 0), **self.counts}

    def add(self, item, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}; known: {', '.join(self.REASONS)}")
        self.counts[reason] += 1
        self.entries.append((self.ITEM(item), reason, detail))

    def merge(self, other: SkipReport) -> SkipReport:
        """Add another report's counts and entries to this one; returns self."""
        for reason, n in other.counts.items():
            self.counts[reason] += n
        self.entries.extend(other.entries)
        return self

    @property
    def n_skipped(self) -> int:
        return sum(self.counts.values())

    def items(self, reason: str) -> list:
        """The items skipped for `reason`, in the order they were met."""
        return [item for item, r, _ in self.entries if r == reason]

    def summary(self) -> str:
        bad = ", ".join(f"{r} {n}" for r, n in self.counts.items() if n)
        return f"skipped: {self.n_skipped}" + (f" ({bad})" if bad else "")

    def write(self, path: str | os.PathLike) -> None:
        """Write the report as JSON, atomically (mri.utils.atomic)."""
        write_text_atomically(path, json.dumps({"counts": self.counts, "entries": self.entries},
                                               ensure_ascii=False, indent=1))

    @classmethod
    def read(cls, path: str | os.PathLike):
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(d["counts"], [tuple(e) for e in d["entries"]])
