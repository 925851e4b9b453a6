"""What `python recommend.py` does: find the checkpoints, build the song index, answer photos as text or JSON."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mri.checkpoints import KINDS, CheckpointError, latest_checkpoint
from mri.data.features import MelFeatures
from mri.data.images import IMAGE_SUFFIXES, image_paths
from mri.models.tag_mel_module import TagMelModule
from mri.recommend.ann import SearchSettings
from mri.recommend.bridge import text_keywords
from mri.recommend.index import SongIndex
from mri.recommend.pipeline import PhotoError, PhotoResult, Recommender, load_tag_mel
from mri.recommend.wandb_table import log_recommendations
from mri.utils.names import json_text, printable, report_skipped

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
    index = SongIndex.build(index_dir(cfg, tag_mel_ckpt), module.net, store, module.query_tags, tag_mel_ckpt,
                            config=module.hparams.net, dtype=cfg.index_dtype, settings=search_settings(cfg))
    log.info("song index %s: %d songs x %d dims (%s), search %s, built in %.1f s", index.folder, len(index),
             index.dim, index.meta["dtype"], index.built["kind"], index.meta["build_seconds"])
    return index


def search_settings(cfg: DictConfig) -> SearchSettings:
    """The `index` block of the config (exact search where it is absent)."""
    return SearchSettings.from_dict(OmegaConf.to_container(cfg.index) if cfg.get("index") else None)


def quote_text_argument(argv: list[str]) -> list[str]:
    """argv with text=<words> quoted for Hydra, whose override grammar refuses spaces and Hangul unquoted:
    `python recommend.py text="비 오는 밤"` reaches Python as text=비 오는 밤."""
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("text", "+text", "++text") and value and value[0] not in "'\"":
            value = "'" + value.replace("'", "\\'") + "'"
            arg = f"{key}={value}"
        out.append(arg)
    return out


def recommend(cfg: DictConfig) -> int:
    """Build the index (build_index=true) and/or answer cfg.image; returns the exit status: 0 when some photo was
    answered (or only the index was built), 1 when none was."""
    ckpts = checkpoints(cfg, photos=bool(cfg.get("image")))
    if cfg.build_index:
        build_index(cfg, ckpts["tag_mel"])
    if not cfg.get("image"):
        if not cfg.build_index:
            raise FileNotFoundError("nothing to do: pass image=<photo or folder> (and/or build_index=true)")
        return 0
    paths, skipped = image_paths(cfg.image)
    report_skipped(skipped)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {cfg.image}")
    text_keywords(cfg.text or "", ())  # a text over the limit is refused before any model loads
    recommender = load_recommender(cfg, ckpts)
    results = list(_answer(recommender, paths, cfg))
    if cfg.output == "json":
        print(json_text([r.to_dict() for r in results], indent=1))  # valid JSON whatever the file names
    if cfg.get("wandb"):
        log_recommendations(results, cfg.paths.output_dir)
    answered = sum(isinstance(r, PhotoResult) for r in results)
    return 0 if answered else 1


def load_recommender(cfg: DictConfig, ckpts: dict[str, Path | None]) -> Recommender:
    """The Recommender of these checkpoints, with the index, bridge and search settings of cfg."""
    return Recommender.load(ckpts["captioner"], ckpts["tag_mel"], index_dir(cfg, ckpts["tag_mel"]), ckpts["rerank"],
                            bridge=OmegaConf.to_container(cfg.bridge, resolve=True), search=search_settings(cfg),
                            rerank_top=cfg.rerank_top,
                            beam_size=cfg.get("beam_size"), batch_size=cfg.batch_size,
                            tagger=OmegaConf.to_container(cfg.tagger),
                            generated_caption_weight=cfg.generated_caption_weight)


def _answer(recommender: Recommender, paths: list[Path], cfg: DictConfig):
    """Results as they come; in table mode printed at once (errors: one line on stderr)."""
    for result in recommender.recommend(paths, cfg.k, text=cfg.text or ""):
        if isinstance(result, PhotoError):
            print(f"{printable(result.path)}: cannot recommend: {printable(result.error)}", file=sys.stderr, flush=True)
        elif cfg.output != "json":
            print(format_result(result), flush=True)
        yield result


def format_result(result: PhotoResult) -> str:
    """A readable block: what the tagger saw, caption, keywords and how they reached tags, tag weights, songs."""
    t = result.trail
    lines = [f"== {printable(result.path)}"]
    if result.photo_tags:
        lines.append("classes   " + ", ".join(f"{c} {p:.2f}" for c, p in result.photo_tags.classes))
        lines.append("light     " + ", ".join(f"{m} {x:.2f}" for m, x in result.photo_tags.light.items()))
    if result.caption:
        lines.append(f"caption   {result.caption}")
    words = []
    for w in t.keywords:
        weight = f" {t.keyword_weights[w]:.2f}" if t.keyword_weights.get(w, 1) != 1 else ""
        if w in t.mapped:
            words.append(f"{w}{weight} -{t.how[w]}-> " + ", ".join(
                f"{tag}" + (f" {x:g}" if x != 1 else "") for tag, x in t.mapped[w]))
        elif w in t.embedded:
            words.append(f"{w}{weight} -embedding-> " + ", ".join(
                f"{tag} (score {s:.2f}, cos {c:.2f})" for tag, s, c in t.embedded[w]))
    lines.append(f"keywords  {'; '.join(words) or '(none reached a tag)'}")
    from_text = [w for w in t.keywords if "text" in t.sources.get(w, [])]
    if from_text:
        lines.append(f"from text {', '.join(from_text)}")
    lines += [f"note      {n}" for n in t.notes]
    if t.unknown_words:
        lines.append(f"no tag    {', '.join(t.unknown_words)}")
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
