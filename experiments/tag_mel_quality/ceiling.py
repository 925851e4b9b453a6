"""How far can a tag-mel model get on generated data? Two reference rankers on the test split.

- oracle: knows each test song's true theme mix (from mri_synthetic.json) and predicts the mean
  targets of training songs of the same themes -- the ceiling for anything that hears the mood;
- ridge: a linear regression from the 48x20 features to all query-tag targets -- a floor to beat.

    python experiments/tag_mel_quality/ceiling.py [data=tag_mel overrides ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from sklearn.linear_model import Ridge

from mri.data.synthetic.melon import read_truth
from mri.metrics.ranking import rank_metrics
from mri.utils.config import compose_config

HERE = Path(__file__).resolve().parent


def targets(dm, split: str) -> np.ndarray:
    return np.stack([dm.song_tags.targets(dm.sim, int(s)) for s in dm.splits[split]])  # (N, T)


def theme_mix(truth: dict, song: int, k: int, names: list[str]) -> np.ndarray:
    """(k,) the song's theme weights: primary 1 - w, secondary w (a 'noise' song sounds like its secondary)."""
    mix = np.zeros(k)
    w, secondary = truth["weight"][song], truth["secondary"][song]
    mix[names.index(truth["theme"][song])] += 1.0 - (w if secondary else 0.0)
    if secondary:
        mix[names.index(secondary)] += w
    return mix


def main() -> None:
    cfg = compose_config("train", ["model=squeezenet", *sys.argv[1:]], HERE / "run", Path("data").resolve())
    dm = hydra.utils.instantiate(cfg.data, report_dir=None)
    dm.prepare_data()
    dm.setup()
    truth = read_truth(dm.root)["songs"]
    names = sorted(set(truth["theme"]))
    y_train, y_test = targets(dm, "train"), targets(dm, "test")
    mix_train = np.stack([theme_mix(truth, int(s), len(names), names) for s in dm.splits["train"]])
    mix_test = np.stack([theme_mix(truth, int(s), len(names), names) for s in dm.splits["test"]])
    theme_targets = np.linalg.lstsq(mix_train, y_train, rcond=None)[0]  # (k, T) mean targets per theme
    features = {s: dm.store.standardized(dm.store.positions(dm.splits[s])).reshape(len(dm.splits[s]), -1)
                for s in ("train", "test")}
    ridge = Ridge(alpha=100.0).fit(features["train"], y_train)
    rows = {
        "oracle (true theme mix)": mix_test @ theme_targets,
        "ridge on features": ridge.predict(features["test"]),
    }
    print(f"{'':26}" + "".join(f"{k:>13}" for k in ("mse", "ndcg@10", "ndcg", "kendall_tau")))
    for name, pred in rows.items():
        m = rank_metrics(torch.tensor(pred.T), torch.tensor(y_test.T))
        print(f"{name:26}" + "".join(f"{m[k]:13.3f}" for k in ("mse", "ndcg@10", "ndcg", "kendall_tau")))


if __name__ == "__main__":
    main()
