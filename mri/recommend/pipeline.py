"""Photo -> keywords (photo tagger, caption, the user's words) -> weighted Melon tags -> top-k songs, with every
step kept for display.

    recommender = Recommender.load(captioner_ckpt, tag_mel_ckpt, index_dir)  # captioner_ckpt may be None
    for result in recommender.recommend([Path("beach.jpg"), photo_bytes], k=10, text="비 오는 밤"):
        print(result.to_dict())  # PhotoResult (caption, trail, songs) or PhotoError (why the photo was unusable)

The photo tagger (an ImageNet classifier that ships offline, plus light and colour) gives every photo keywords
without a trained captioner. A captioner's caption adds its words; a captioner trained only on generated scenes
has never seen a real photograph, so on a photo unlike its training photos its words weigh
`generated_caption_weight` (0.1) of a keyword of the tagger's: they complete the tagger's keywords on a real
photo and cannot drown them; on a photo like its training photos (mri.models.familiarity, from the features
its checkpoint keeps) they count fully. Whether its data was generated is read from the checkpoint
(checkpoint["mri"]["data"]["generated"], else its datamodule's `generate`).

A photo goes through three steps that a server may run apart (`recommend` chains them):
`prepare` (read and preprocess, no model), `describe` (the image models, on a batch of prepared
photos at once) and `answer` (bridge and song search, per photo).

The two-tower index scores the whole catalogue in one matrix product; an early-fusion checkpoint may rerank
its top candidates (every candidate through the network, once per weighted tag).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mri.checkpoints import KINDS, CheckpointError, expect_kind, load_module, read_checkpoint
from mri.data.features import MelFeatures
from mri.data.images import BadImage, ImageSource
from mri.models.captioner_module import load_captioner
from mri.models.familiarity import Familiarity
from mri.models.image_stage import CaptionModel, FamiliarityModel, ImageStage, PreparedPhoto
from mri.models.imagenet import load_classifier
from mri.models.tag_mel_module import TagMelModule
from mri.recommend.ann import SearchSettings
from mri.recommend.bridge import Bridge, Keyword, Lexicon, Trail, caption_keywords, text_keywords
from mri.recommend.catalogue import Catalogue
from mri.recommend.embedding import SentenceEncoder, TagEmbeddings
from mri.recommend.index import SongIndex
from mri.recommend.tag_side import TAG_SIDE_KEYS, TagSide, TagSideSettings
from mri.recommend.tagger import PhotoTagger, PhotoTags


@dataclass
class SongHit:
    song_id: int
    title: str
    artist: str
    genre: str
    score: float  # two-tower score, or the early-fusion one when reranked
    index_score: float  # two-tower score (weighted mean over the query's tags)


@dataclass
class PhotoResult:
    path: str
    caption: str
    trail: Trail
    songs: list[SongHit]
    photo_tags: PhotoTags | None = None  # what the photo tagger saw (classes, light and colour)

    def to_dict(self) -> dict:
        return {"path": self.path, "caption": self.caption, "trail": self.trail.to_dict(),
                "songs": [asdict(s) for s in self.songs],
                "photo_tags": self.photo_tags.to_dict() if self.photo_tags else None}


@dataclass
class PhotoError:
    path: str
    error: str  # "<reason>: <detail>" as BadImage says it
    reason: str  # one of BAD_IMAGE_REASONS

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error, "reason": self.reason}


def load_tag_mel(ckpt_path: str | Path, kind: str = "two_tower") -> TagMelModule:
    """A tag-mel model of this kind (two_tower, or early_fusion for reranking) for inference, from its checkpoint."""
    module = load_module(ckpt_path, (kind,))
    if not module.query_tags:
        raise CheckpointError(f"{ckpt_path} holds no query tags: retrain it with `{KINDS[kind][1]}`")
    return module


def make_bridge(tag_side: TagSide, query_tags: Sequence[str], lexicon: str | None = None,
                embedding: dict | None = None, probes: Sequence[str] = (), **options) -> Bridge:
    """A Bridge over a Melon root's tag side (its vocabulary, tag similarity and the query tags' titles);
    options: Bridge's widening settings.

    embedding: settings of the open-vocabulary stage (enabled, cache_dir, word_weight, hubs, threads; titles_per_tag
    is the tag side's), None or enabled=false: lexicon and catalogue tags only. probes: words queries will mostly
    ask about (the tagger's vocabulary), embedded once with the tags and cached.
    """
    lexicon = Lexicon.load(lexicon)
    embedding = None if embedding is None else dict(embedding)
    tags = None
    if embedding is not None and embedding.pop("enabled", True):
        embedding.pop("titles_per_tag", None)
        encoder = SentenceEncoder(embedding.pop("threads", 1))
        tags = TagEmbeddings.build(encoder, tag_side.descriptions, [*probes, *lexicon.entries], **embedding)
    return Bridge(lexicon, tag_side.similarity, query_tags, embeddings=tags, **options)


@dataclass(frozen=True)
class CaptionTrust:
    """The weight of a captioner's words beside the tagger's, per photo.

    generated_weight: the weight when the captioner was trained only on generated scenes and the photo is not
    like its training photos (1: the words count fully on every photo); familiarity: its training photos'
    features, when its checkpoint keeps them (a photo like them gets weight 1; without them every photo gets
    generated_weight).
    """

    generated_weight: float = 1.0
    familiarity: Familiarity | None = None

    def weigh(self, similarity: float | None) -> tuple[float, str]:
        """The weight of a photo's caption words and where the trail says they came from, given the photo's
        similarity to the captioner's training photos (None: not measured)."""
        if self.generated_weight == 1:
            return 1.0, "caption"
        if similarity is not None and self.familiarity is not None:
            threshold = self.familiarity.threshold
            if similarity >= threshold:
                return 1.0, (f"caption (a captioner of generated scenes, on a photo like them: "
                             f"similarity {similarity:.2f} >= {threshold:.2f})")
            why = f"the photo unlike them: similarity {similarity:.2f} < {threshold:.2f}, "
        else:
            why = ""
        weight = self.generated_weight
        return weight, f"caption (a captioner of generated scenes only, {why}weight {weight:g})"


def caption_trust(captioner_ckpt: str | Path, generated_weight: float) -> CaptionTrust:
    """How much to trust a captioner's words: generated_weight on photos unlike its training photos when it was
    trained only on generated scenes (checkpoint["mri"]["data"]["generated"], else its datamodule's `generate`
    setting), else fully."""
    ckpt = read_checkpoint(captioner_ckpt)
    data = (ckpt.get("mri") or {}).get("data") or {}
    generated = data["generated"] if "generated" in data else \
        (ckpt.get("datamodule_hyper_parameters") or {}).get("generate") is not None
    if not generated:
        return CaptionTrust()
    saved = data.get("familiarity")
    return CaptionTrust(generated_weight, Familiarity.from_dict(saved) if saved else None)


class Recommender:
    """Everything loaded once; `recommend` answers photos (paths, bytes or PIL images)."""

    def __init__(self, stage: ImageStage, index: SongIndex, bridge: Bridge, catalogue: Catalogue,
                 store: MelFeatures | None = None, reranker: TagMelModule | None = None, rerank_top: int = 50,
                 batch_size: int = 16, caption_trust: CaptionTrust = CaptionTrust()):
        if reranker is not None:
            if store is None:
                raise ValueError("reranking needs the feature store the index was built from")
            if list(reranker.query_tags) != list(index.query_tags):
                raise ValueError("the rerank checkpoint was trained on other query tags than the index's model: "
                                 "train both on the same data.root and data.num_tags")
        self.stage, self.index, self.bridge, self.catalogue = stage, index, bridge, catalogue
        self.store, self.reranker, self.rerank_top = store, reranker, rerank_top
        self.batch_size, self.caption_trust = batch_size, caption_trust

    @classmethod
    def load(cls, captioner_ckpt: str | Path | None, tag_mel_ckpt: str | Path, index_dir: str | Path,
             rerank_ckpt: str | Path | None = None, bridge: dict | None = None, beam_size: int | None = None,
             search: SearchSettings | None = None, tagger: dict | None = None,
             generated_caption_weight: float = 0.1, **options) -> Recommender:
        """Load the models, open (and check) the index, and build the bridge from the tag side the index keeps.

        captioner_ckpt: None leaves the captioner out of the image stage. tagger: the photo tagger's settings
        (enabled, classifier, top_k, min_probability, light_weight); enabled=false leaves it out. search: the
        index's search settings (None: the kind it was built with).
        """
        index = SongIndex.open(index_dir, tag_mel_ckpt, search)
        store = index.features()
        root = store.meta["root"]
        checkpoint = read_checkpoint(tag_mel_ckpt)
        expect_kind(checkpoint, tag_mel_ckpt, ("two_tower",))
        bridge = {k: v for k, v in (bridge or {}).items() if v is not None}
        settings = TagSideSettings.of(checkpoint["mri"].get("data") or {}, bridge)  # the model's, unless overridden
        tag_side = TagSide.load(root, index.query_tags, settings, index.folder, bridge.get("similarity_cache_dir"))
        bridge = {k: v for k, v in bridge.items() if k not in TAG_SIDE_KEYS}
        tagger = dict(tagger or {})
        photo_tagger = (PhotoTagger(load_classifier(tagger.pop("classifier", "efficientnet_lite0")), **tagger)
                        if tagger.pop("enabled", True) else None)
        models = [photo_tagger] if photo_tagger else []
        trust = CaptionTrust()  # alone, a caption's words are all there is
        if captioner_ckpt:
            models.append(CaptionModel(load_captioner(captioner_ckpt), beam_size))
            if photo_tagger:
                trust = caption_trust(captioner_ckpt, generated_caption_weight)
            if trust.familiarity is not None and models[-1].trunk is not None:  # measured on the captioner's trunk
                models.append(FamiliarityModel(models[-1], trust.familiarity))
        probes = photo_tagger.vocabulary() if photo_tagger else ()
        reranker = load_tag_mel(rerank_ckpt, "early_fusion") if rerank_ckpt else None
        return cls(ImageStage(models), index, make_bridge(tag_side, index.query_tags, probes=probes, **bridge),
                   Catalogue.load(root, index.folder), store, reranker, caption_trust=trust, **options)

    def recommend(self, photos: Sequence[ImageSource], k: int = 10, names: Sequence[str] | None = None,
                  text: str = "") -> Iterator[PhotoResult | PhotoError]:
        """One result per photo, in order; an unusable photo gives a PhotoError and the others go on.

        names: what each result's `path` says (default: the path, or "photo <i>" for one in memory).
        text: the user's words, joining every photo's keywords (TextRefused, before any photo, when too long).
        """
        text_keywords(text, self.bridge.lexicon)  # refuses a bad text before the models run
        names = names or [str(p) if isinstance(p, str | os.PathLike) else f"photo {i}" for i, p in enumerate(photos)]
        for name, found in zip(names, self.stage.run(photos, self.batch_size), strict=True):
            if isinstance(found, BadImage):
                yield PhotoError(name, str(found), found.reason)
            else:
                yield self.answer(name, found, k, text)

    def prepare(self, photo: ImageSource) -> PreparedPhoto:
        """Read and preprocess a photo for the image models (no model runs); BadImage when it cannot be used."""
        return self.stage.prepare(photo)

    def describe(self, photos: Sequence[PreparedPhoto]) -> list[dict[str, Any]]:
        """The image models on a batch of prepared photos: per photo, model key -> finding ("caption" -> str)."""
        return self.stage.describe(photos)

    def answer(self, name: str, findings: dict[str, Any], k: int = 10, text: str = "") -> PhotoResult:
        """A described photo's tags and top-k songs; text: the user's words (TextRefused when too long)."""
        caption, photo_tags = findings.get("caption", ""), findings.get("tags")
        keywords, notes = self.keywords(findings, text)
        trail = self.bridge.from_keywords(keywords, caption, notes)
        return PhotoResult(name, caption, trail, self.songs(trail, k), photo_tags)

    def keywords(self, findings: dict[str, Any], text: str = "") -> tuple[list[Keyword], list[str]]:
        """The photo's keywords (tagger's, caption's at the weight CaptionTrust gives) and the text's, with notes."""
        words, notes = text_keywords(text, self.bridge.lexicon) if text else ([], [])
        if "tags" in findings:
            words = findings["tags"].keywords + words
        if findings.get("caption"):
            weight, source = self.caption_trust.weigh(findings.get("familiarity"))
            words += caption_keywords(findings["caption"], self.bridge.lexicon, weight, source)
        return words, notes

    def songs(self, trail: Trail, k: int = 10) -> list[SongHit]:
        """The top-k songs for a trail's tag weights (reranked when a reranker is loaded)."""
        weights = self.bridge.weight_matrix([trail])  # (1, T)
        scores, rows = self.index.search(weights, max(k, self.rerank_top) if self.reranker else k)
        scores, rows = scores[0], rows[0]  # (k',)
        final = self._rerank(weights[0], rows) if self.reranker else scores
        order = torch.argsort(final, descending=True)[:k]
        hits = []
        for j in order.tolist():
            song_id = int(self.index.song_ids[rows[j]])
            hits.append(SongHit(song_id, *self.catalogue.describe(song_id), float(final[j]), float(scores[j])))
        return hits

    def _rerank(self, weights: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
        """Early-fusion scores of the candidate rows: weighted mean over the query's tags, (C,)."""
        tags = np.flatnonzero(weights)  # tags that carry weight
        song_rows = self.store.positions(self.index.song_ids[rows.numpy()])
        mels = torch.from_numpy(self.store.standardized(song_rows)).unsqueeze(1)  # (C, 1, 48, k)
        with torch.inference_mode():
            scores = self.reranker.net.score_matrix(torch.from_numpy(tags), mels)  # (T', C)
        return torch.from_numpy(weights[tags]) @ scores
