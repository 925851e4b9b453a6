"""The recommender a config names, for recommend.py and serve.py alike: its checkpoints (given, or the latest
runs under paths.log_dir), its song index (built or opened) and the search, bridge and tagger settings."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mri.checkpoints import KINDS, CheckpointError, latest_checkpoint
from mri.data.features import MelFeatures
from mri.models.tag_mel_module import TagMelModule
from mri.recommend.ann import SearchSettings
from mri.recommend.index import SongIndex
from mri.recommend.pipeline import Recommender, load_tag_mel
from mri.recommend.tag_side import TagSide, TagSideSettings

log = logging.getLogger(__name__)


def checkpoints(cfg: DictConfig, photos: bool) -> dict[str, Path | None]:
    """The checkpoints a run uses: explicit paths, or the latest runs under paths.log_dir.

    photos: whether photos are answered. The captioner is optional when the photo tagger is on (none trained:
    None); without the tagger it is needed.
    """
    def pick(key: str, kind: str) -> Path:
        path = Path(cfg[key]) if cfg.get(key) else latest_checkpoint(cfg.paths.log_dir, kind)
        if path.is_dir():
            raise CheckpointError(f"{key}={path} is a folder, not a checkpoint file: pass the checkpoint itself, "
                                  "e.g. <run folder>/checkpoints/best.ckpt")
        if not path.is_file():
            raise CheckpointError(f"{key}={path} does not exist: train one with `{KINDS[kind][1]}`")
        return path

    captioner = None
    if photos:
        try:
            captioner = pick("captioner_ckpt", "captioner")
        except CheckpointError:
            if cfg.get("captioner_ckpt") or not cfg.tagger.enabled:
                raise
            log.info("no captioner checkpoint: the photo tagger alone gives the photos' keywords")
    return {"tag_mel": pick("tag_mel_ckpt", "two_tower"), "captioner": captioner,
            "rerank": pick("rerank_ckpt", "early_fusion") if cfg.get("rerank") else None}


def index_dir(cfg: DictConfig, tag_mel_ckpt: Path) -> Path:
    """cfg.index_dir, or song_index/ in the run folder of the tag-mel checkpoint."""
    return Path(cfg.index_dir) if cfg.get("index_dir") else tag_mel_ckpt.resolve().parents[1] / "song_index"


def feature_store(cfg: DictConfig, module: TagMelModule, tag_mel_ckpt: Path) -> MelFeatures:
    """cfg.features, or the store the checkpoint says it was trained on."""
    folder = cfg.get("features") or module.facts.get("features")
    if not folder:
        raise CheckpointError(f"{tag_mel_ckpt} does not say which feature store it was trained on: pass "
                              "features=<feature store folder>")
    folder = Path(folder)
    return MelFeatures(folder if folder.is_absolute() else Path(cfg.paths.root_dir) / folder)


def build_index(cfg: DictConfig, tag_mel_ckpt: Path) -> SongIndex:
    module = load_tag_mel(tag_mel_ckpt)
    store = feature_store(cfg, module, tag_mel_ckpt)
    root = store.meta.get("root")
    bridge = OmegaConf.to_container(cfg.bridge, resolve=True)
    settings = TagSideSettings.of(module.facts, bridge)

    def keep_tag_side(folder: Path) -> None:  # what the bridge needs from train.json, so that starts skip it
        TagSide.read(root, module.query_tags, settings, bridge.get("similarity_cache_dir")).write(
            folder, root, module.query_tags, settings)

    index = SongIndex.build(index_dir(cfg, tag_mel_ckpt), module.net, store, module.query_tags, tag_mel_ckpt,
                            config=module.hparams.net, dtype=cfg.index_dtype, settings=search_settings(cfg),
                            keep=keep_tag_side if root else None)
    log.info("song index %s: %d songs x %d dims (%s)%s, search %s, built in %.1f s", index.folder, len(index),
             index.dim, index.meta["dtype"], ", their titles and the tag side" if root else "", index.built["kind"],
             index.meta["build_seconds"])
    return index


def search_settings(cfg: DictConfig) -> SearchSettings:
    """The `index` block of the config (exact search where it is absent)."""
    return SearchSettings.from_dict(OmegaConf.to_container(cfg.index) if cfg.get("index") else None)


def load_recommender(cfg: DictConfig, ckpts: dict[str, Path | None]) -> Recommender:
    """The Recommender of these checkpoints, with the index, bridge and search settings of cfg."""
    return Recommender.load(ckpts["captioner"], ckpts["tag_mel"], index_dir(cfg, ckpts["tag_mel"]), ckpts["rerank"],
                            bridge=OmegaConf.to_container(cfg.bridge, resolve=True), search=search_settings(cfg),
                            rerank_top=cfg.rerank_top,
                            beam_size=cfg.get("beam_size"), batch_size=cfg.batch_size,
                            tagger=OmegaConf.to_container(cfg.tagger),
                            generated_caption_weight=cfg.generated_caption_weight)
