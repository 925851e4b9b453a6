"""What every entry point does around its job: extras, config printing, metrics.json, closing loggers."""
from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

from mri.utils.atomic import write_text_atomically
from mri.utils.errors import InputError
from mri.utils.loggers import close_loggers

log = logging.getLogger(__name__)


def task_wrapper(task: Callable[[DictConfig], tuple[dict, dict]]) -> Callable[[DictConfig], tuple[dict, dict]]:
    """Run a task so that loggers are always closed (W&B runs of one multirun never merge) and failures are logged."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> tuple[dict, dict]:
        try:
            return task(cfg)
        except InputError as err:  # bad data or settings: the message says it all
            log.error("%s failed: %s", cfg.get("task_name", "task"), err)
            raise SystemExit(f"Error: {err}") from None
        except Exception:
            log.exception("%s failed; its output folder is %s", cfg.get("task_name", "task"),
                          cfg.get("paths", {}).get("output_dir"))
            raise
        finally:
            close_loggers()

    return wrapped


def apply_extras(cfg: DictConfig) -> None:
    """Optional niceties before a run: refuse untagged runs, print the composed config."""
    extras = cfg.get("extras") or {}
    if extras.get("enforce_tags") and not cfg.get("tags"):
        raise ValueError("extras.enforce_tags is on and the run has no tags: pass tags=[...]")
    if extras.get("print_config"):
        print_config(cfg)


def print_config(cfg: DictConfig) -> None:
    """The resolved config as a tree, one branch per group."""
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    for key, value in cfg.items():
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key)).add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def write_metrics(metrics: dict[str, Any], path: str | Path) -> dict[str, float]:
    """Write final metrics as JSON (atomically: never a half-written file) and return them as floats."""
    values = {k: float(v) for k, v in metrics.items()}
    write_text_atomically(path, json.dumps({k: (None if math.isnan(v) else v) for k, v in sorted(values.items())},
                                           indent=1))
    return values


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweep optimises, with an error that lists what there is when it is missing."""
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"metric {name!r} was not logged; logged: {', '.join(sorted(metrics))}")
    return metrics[name]
