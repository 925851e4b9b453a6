"""What every entry point does around its job: extras, config printing, metrics.json, closing loggers, exit statuses."""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from mri.utils.atomic import write_text_atomically
from mri.utils.errors import InputError
from mri.utils.loggers import close_loggers
from mri.utils.names import printable

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


# The exit statuses of the entry points that answer photos (recommend.py, caption.py; serve.py uses 2)
ANSWERED, NONE_ANSWERED, BAD_ARGUMENTS = 0, 1, 2
_task_started = False  # whether Hydra got as far as the entry point's task


class ExitStatus(SystemExit):
    """An entry point's own exit status, raised through Hydra (which lets SystemExit through)."""


def exit_with(name: str, task: Callable[[], int], errors: tuple[type[BaseException], ...]) -> NoReturn:
    """Exit with task()'s status, or with BAD_ARGUMENTS and one line `name: why` on stderr (no traceback) when
    it raises one of errors (a missing file, a bad value, an unusable checkpoint) or a required key is unset."""
    global _task_started
    _task_started = True
    try:
        status = task()
    except MissingMandatoryValue as err:
        status = _refuse(name, f"{err.full_key} has no value: pass {err.full_key}=...", err)
    except errors as err:
        status = _refuse(name, str(err), err)
    raise ExitStatus(status)


def _refuse(name: str, why: str, err: BaseException) -> int:
    log.debug("%s: %s", name, why, exc_info=err)  # the traceback, for HYDRA_VERBOSE / debug logging
    print(f"{name}: {printable(why)}", file=sys.stderr, flush=True)
    return BAD_ARGUMENTS


def run_entry_point(main: Callable[[], Any]) -> None:
    """Call a @hydra.main function whose task ends in exit_with. When Hydra stops before the task starts (a
    config it cannot compose: an unknown key, a bad override) it exits 1; that becomes BAD_ARGUMENTS."""
    global _task_started
    _task_started = False
    try:
        main()
    except ExitStatus:
        raise
    except SystemExit as stop:
        if stop.code == 1 and not _task_started:
            raise SystemExit(BAD_ARGUMENTS) from None
        raise


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
