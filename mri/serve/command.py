"""What `python serve.py` does: load the Recommender as recommend.py does and serve the page with uvicorn."""
from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from omegaconf import DictConfig

from mri.recommend.loading import build_index, checkpoints, load_recommender
from mri.serve.app import make_app
from mri.serve.batching import BatchSettings
from mri.serve.examples import example_photos
from mri.serve.server import ServerLimits, uvicorn_config
from mri.serve.uploads import UploadLimits

log = logging.getLogger(__name__)


def app_from_config(cfg: DictConfig) -> FastAPI:
    """The page's app on cfg's checkpoints and index (built first when cfg.build_index)."""
    ckpts = checkpoints(cfg, photos=True)
    if cfg.build_index:
        build_index(cfg, ckpts["tag_mel"])
    return make_app(load_recommender(cfg, ckpts), cfg.k, UploadLimits(**cfg.upload),
                    example_photos(tuple(cfg.examples.size), cfg.examples.seed), BatchSettings(**cfg.batching))


def serve(cfg: DictConfig) -> None:
    """Serve until interrupted (Ctrl+C)."""
    limits = ServerLimits(**cfg.server)  # checked before the models load
    app = app_from_config(cfg)
    log.info("MRI page: http://%s:%d (Ctrl+C stops it)", cfg.host, cfg.port)
    config = uvicorn_config(app, limits, cfg.host, cfg.port, log_config=None)  # Hydra's logging
    uvicorn.Server(config).run()
