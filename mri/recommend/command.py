"""What `python recommend.py` does: find the checkpoints, build the song index, answer photos as text or JSON."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mri.caption import IMAGE_SUFFIXES, image_paths
from mri.data.features import MelFeatures
from mri.recommend.ann import SearchSettings
from mri.recommend.index import SongIndex
from mri.checkpoints import read_checkpoint
from mri.recommend.pipeline import PhotoError, PhotoResult, Recommender, load_tag_mel
from mri.recommend.wandb_table import log_recommendations

log = logging.getLogger(__name__)

# kind -> (what identifies its runs' config, the command that trains one)
KINDS = {
    "two_tower": (("model", "net", "_target_"), "TwoTowerNet", "python train.py model=squeezenet"),
    "early_fusion": (("model", "net", "_target_"), "EarlyFusionNet", "python train.py model=squeezenet_early"),
    "captioner": (("model", "_target_"), "CaptionerModule", "python train.py model=captioner"),
}


def latest_checkpoint(log_dir: str | Path, kind: str) -> Path:
    """best.ckpt of the latest training run of this kind under log_dir/train/runs; an error naming the command."""
    keys, target, command = KINDS[kind]
    runs = Path(log_dir) / "train" / "runs"
    for run in sorted(runs.glob("*"), reverse=True):  # run folders are named by start time
        ckpt, config = run / "checkpoints" / "best.ckpt", run / ".hydra" / "config.yaml"
        if ckpt.is_file() and config.is_file():
            node = OmegaConf.load(config)
            for key in keys:
                node = node.get(key) if node is not None else None
            if isinstance(node, str) and node.endswith(target):
                return ckpt
    raise FileNotFoundError(f"no {kind} checkpoint under {runs}: train one with `{command}` "
                            f"or pass its path")


def checkpoints(cfg: DictConfig, photos: bool) -> dict[str, Path | None]:
    """The checkpoints a run uses: explicit paths, or the latest runs under paths.log_dir.

    photos: whether photos are answered (the captioner is needed then).
    """
    def pick(key: str, kind: str) -> Path:
        path = Path(cfg[key]) if cfg.get(key) else latest_checkpoint(cfg.paths.log_dir, kind)
        if not path.is_file():
            raise FileNotFoundError(f"{key}={path} does not exist: train one with `{KINDS[kind][2]}`")
        return path

    return {"tag_mel": pick("tag_mel_ckpt", "two_tower"),
            "captioner": pick("captioner_ckpt", "captioner") if photos else None,
            "rerank": pick("rerank_ckpt", "early_fusion") if cfg.get("rerank") else None}


def index_dir(cfg: DictConfig, tag_mel_ckpt: Path) -> Path:
    """cfg.index_dir, or song_index/ in the run folder of the tag-mel checkpoint."""
    return Path(cfg.index_dir) if cfg.get("index_dir") else tag_mel_ckpt.resolve().parents[1] / "song_index"


def feature_store(cfg: DictConfig, tag_mel_ckpt: Path) -> MelFeatures:
    """cfg.features, or the store the checkpoint was trained on (its run's data.json)."""
    if cfg.get("features"):
        return MelFeatures(cfg.features)
    data_json = tag_mel_ckpt.resolve().parents[1] / "data.json"
    if not data_json.is_file():
        raise FileNotFoundError(f"{data_json} is missing, so the feature store {tag_mel_ckpt} was trained on is "
                                "unknown: pass features=<feature store folder>")
    folder = Path(json.loads(data_json.read_text(encoding="utf-8"))["features"])
    return MelFeatures(folder if folder.is_absolute() else Path(cfg.paths.root_dir) / folder)


def build_index(cfg: DictConfig, tag_mel_ckpt: Path) -> SongIndex:
    module = load_tag_mel(tag_mel_ckpt)
    store = feature_store(cfg, tag_mel_ckpt)
    index = SongIndex.build(index_dir(cfg, tag_mel_ckpt), module.net, store, module.query_tags, tag_mel_ckpt,
                            config=read_checkpoint(tag_mel_ckpt)["hyper_parameters"].get("net", {}), dtype=cfg.index_dtype,
                            settings=search_settings(cfg))
    log.info("song index %s: %d songs x %d dims (%s), search %s, built in %.1f s", index.folder, len(index),
             index.dim, index.meta["dtype"], index.built["kind"], index.meta["build_seconds"])
    return index


def search_settings(cfg: DictConfig) -> SearchSettings:
    """The `index` block of the config (exact search where it is absent)."""
    return SearchSettings.from_dict(OmegaConf.to_container(cfg.index) if cfg.get("index") else None)


def recommend(cfg: DictConfig) -> int:
    """Build the index (build_index=true) and/or answer cfg.image; returns the exit status."""
    ckpts = checkpoints(cfg, photos=bool(cfg.get("image")))
    if cfg.build_index:
        build_index(cfg, ckpts["tag_mel"])
    if not cfg.get("image"):
        if not cfg.build_index:
            raise FileNotFoundError("nothing to do: pass image=<photo or folder> (and/or build_index=true)")
        return 0
    paths = image_paths(cfg.image)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    recommender = load_recommender(cfg, ckpts)
    results = list(_answer(recommender, paths, cfg))
    if cfg.output == "json":
        json.dump([r.to_dict() for r in results], sys.stdout, ensure_ascii=False, indent=1)
        print()
    if cfg.get("wandb"):
        log_recommendations(results, cfg.paths.output_dir)
    answered = sum(isinstance(r, PhotoResult) for r in results)
    return 0 if answered else 1


def load_recommender(cfg: DictConfig, ckpts: dict[str, Path | None]) -> Recommender:
    """The Recommender of these checkpoints, with the index, bridge and search settings of cfg."""
    return Recommender.load(ckpts["captioner"], ckpts["tag_mel"], index_dir(cfg, ckpts["tag_mel"]), ckpts["rerank"],
                            bridge=OmegaConf.to_container(cfg.bridge), search=search_settings(cfg),
                            rerank_top=cfg.rerank_top,
                            beam_size=cfg.get("beam_size"), batch_size=cfg.batch_size)


def _answer(recommender: Recommender, paths: list[Path], cfg: DictConfig):
    """Results as they come; in table mode printed at once (errors: one line on stderr)."""
    for result in recommender.recommend(paths, cfg.k):
        if isinstance(result, PhotoError):
            print(f"{result.path}: cannot recommend: {result.error}", file=sys.stderr, flush=True)
        elif cfg.output != "json":
            print(format_result(result), flush=True)
        yield result


def format_result(result: PhotoResult) -> str:
    """A readable block: caption, keywords and their tags, tag weights, and the songs as a table."""
    t = result.trail
    words = [f"{w} -> " + ", ".join(f"{tag}" + (f" {x:g}" if x != 1 else "") for tag, x in t.mapped[w])
             for w in t.keywords if w in t.mapped]
    lines = [f"== {result.path}", f"caption   {result.caption}",
             f"keywords  {'; '.join(words) or '(none known)'}"]
    if t.unknown_words:
        lines.append(f"no entry  {', '.join(t.unknown_words)}")
    if t.unknown_tags:
        lines.append(f"tags absent from this catalogue  {', '.join(t.unknown_tags)}")
    if t.widened:
        lines.append("widened   " + ", ".join(f"{a}->{b} +{w:.2f}" for a, b, w in t.widened))
    label = "tags      " + ("(fallback: no known keyword, most frequent tags) " if t.fallback else "")
    lines.append(label + "  ".join(f"{tag} {w:.2f}" for tag, w in t.weights.items()))
    lines.append(f"{'#':>3}  {'score':>6}  {'title':<28} {'artist':<18} genre")
    lines += [f"{i:>3}  {s.score:6.3f}  {s.title[:28]:<28} {s.artist[:18]:<18} {s.genre}"
              for i, s in enumerate(result.songs, 1)]
    return "\n".join(lines) + "\n"
