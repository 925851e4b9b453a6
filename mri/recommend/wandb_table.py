"""A W&B table of recommendations: photo, caption, weighted tags and songs, one row per photo."""
from __future__ import annotations

from pathlib import Path

from mri.recommend.pipeline import PhotoResult
from mri.utils.loggers import wandb_offline


def log_recommendations(results: list, save_dir: str | Path, project: str = "mri") -> str:
    """Log the answered photos of `results` as one W&B run (offline without credentials); returns its folder."""
    import wandb

    offline = wandb_offline(False, save_dir)
    run = wandb.init(project=project, dir=str(save_dir), job_type="recommend", mode="offline" if offline else None)
    table = wandb.Table(columns=["photo", "caption", "tags", "songs"])
    for r in results:
        if isinstance(r, PhotoResult):
            tags = ", ".join(f"{tag} {w:.2f}" for tag, w in r.trail.weights.items())
            songs = "\n".join(f"{s.title} - {s.artist} ({s.genre}) {s.score:.3f}" for s in r.songs)
            table.add_data(wandb.Image(r.path), r.caption, tags, songs)
    run.log({"recommendations": table})
    folder = run.dir
    run.finish()
    return folder
