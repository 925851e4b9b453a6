"""ModelCheckpoint for runs that resume into a new run folder, as every `train.py ckpt_path=...` run does."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from mri.utils.atomic import write_atomically


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, except that resuming from a checkpoint written in another folder keeps the
    best score so far and copies that run's best checkpoint into this run's folder.

    Lightning's own forgets the best score when the folder changes: the resumed run's first validation then
    becomes "best" whatever it scores, and `trainer.test(ckpt_path="best")` tests another model than an
    uninterrupted run would.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        previous = state_dict.get("dirpath", self.dirpath)
        best = Path(state_dict.get("best_model_path") or "")
        if previous == self.dirpath or self.dirpath is None or not best.is_file():
            super().load_state_dict(state_dict)
            return
        here = Path(self.dirpath) / best.name
        if not here.is_file():  # every process of a DDP run may get here: each writes whole, then renames
            with open(best, "rb") as source:
                write_atomically(here, lambda f: shutil.copyfileobj(source, f))
        score = state_dict["best_model_score"]
        self.best_model_path = self.kth_best_model_path = str(here)
        self.best_model_score = self.kth_value = score
        self.best_k_models = {str(here): score} if score is not None else {}
