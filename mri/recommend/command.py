"""What `python recommend.py` does: build the song index and/or answer photos, as text or JSON."""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from mri.data.images import IMAGE_SUFFIXES, image_paths
from mri.recommend.bridge import text_keywords
from mri.recommend.loading import build_index, checkpoints, load_recommender
from mri.recommend.pipeline import PhotoError, PhotoResult, Recommender
from mri.recommend.wandb_table import log_recommendations
from mri.utils.names import json_text, printable, report_skipped


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
