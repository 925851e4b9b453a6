"""Table of the test metrics of a multirun's jobs (or of any run folders), beside their baselines.

    python experiments/tag_mel_quality/collect.py logs/train/multiruns/<date>_<time>
    python experiments/tag_mel_quality/collect.py logs/train/runs/<run a> logs/train/runs/<run b>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

COLUMNS = ("ndcg@10", "ndcg", "kendall_tau", "mse")


def runs(paths: list[str]) -> list[Path]:
    """Run folders (those holding metrics.json) at or one level below the given paths."""
    found = []
    for path in map(Path, paths):
        found += [path] if (path / "metrics.json").is_file() else sorted(p.parent for p in path.glob("*/metrics.json"))
    return found


def row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
    name = " ".join(o for o in overrides if not o.startswith(("paths.", "hydra.", "extras."))) or run.name
    cells = [f"{metrics.get(f'test/{c}', float('nan')):.3f}" for c in COLUMNS]
    cells += [f"{metrics.get(f'test/random/{c}', float('nan')):.3f}" for c in ("ndcg@10", "kendall_tau")]
    cells += [f"{metrics.get(f'test/popularity/{c}', float('nan')):.3f}" for c in ("ndcg@10", "kendall_tau")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    header = [*COLUMNS, "random ndcg@10", "random tau", "popularity ndcg@10", "popularity tau"]
    print("| run | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for run in runs(sys.argv[1:]):
        print(row(run))


if __name__ == "__main__":
    main()
