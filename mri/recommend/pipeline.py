"""Photo -> caption -> keywords -> weighted Melon tags -> top-k songs, with every step kept for display.

    recommender = Recommender.load(tag_mel_ckpt, captioner_ckpt, index_dir)
    for result in recommender.recommend([Path("beach.jpg")], k=10):
        print(result.to_dict())  # PhotoResult (caption, trail, songs) or PhotoError (why the photo was unusable)

The two-tower index scores the whole catalogue in one matrix product; an early-fusion checkpoint may rerank
its top candidates (every candidate through the network, once per weighted tag).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from mri.caption import caption_files
from mri.data.features import MelFeatures
from mri.data.images import BadImage
from mri.data.melon import genre_name, read_genres, read_playlists, read_songs
from mri.data.tags import TagSimilarity, TagVocabulary
from mri.models.captioner_module import CaptionerModule, load_captioner
from mri.models.tag_mel_module import TagMelModule
from mri.recommend.bridge import Bridge, Lexicon, Trail
from mri.recommend.ann import SearchSettings
from mri.recommend.index import SongIndex


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

    def to_dict(self) -> dict:
        return {"path": self.path, "caption": self.caption, "trail": self.trail.to_dict(),
                "songs": [asdict(s) for s in self.songs]}


@dataclass
class PhotoError:
    path: str
    error: str  # "<reason>: <detail>" as BadImage says it
    reason: str  # one of BAD_IMAGE_REASONS

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error, "reason": self.reason}


class Catalogue:
    """Title, artists and genre names of the songs of a Melon root, looked up by song id."""

    def __init__(self, root: str | Path):
        self.root = Path(root)  # where the songs' mel files are (mel_path)
        genres = read_genres(root)
        self.songs = {s.id: (s.name, ", ".join(s.artists), ", ".join(genre_name(genres, g) for g in s.genres))
                      for s in read_songs(root)}

    def describe(self, song_id: int) -> tuple[str, str, str]:
        return self.songs.get(song_id, ("?", "?", "?"))


def load_tag_mel(ckpt_path: str | Path) -> TagMelModule:
    module = TagMelModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=False)
    if not module.query_tags:
        raise ValueError(f"{ckpt_path} holds no query tags: train it with `python train.py model=squeezenet`")
    return module.eval()


def make_bridge(root: str | Path, query_tags: Sequence[str], lexicon: str | None = None, similarity_dim: int | None = 16,
                min_tag_count: int = 1, **options) -> Bridge:
    """A Bridge over the tags of a Melon root's training playlists; options: Bridge's widening settings."""
    playlists = read_playlists(root, "train")
    similarity = TagSimilarity(TagVocabulary.from_playlists(playlists, min_tag_count), playlists, similarity_dim)
    return Bridge(Lexicon.load(lexicon), similarity, query_tags, **options)


class Recommender:
    """Everything loaded once; `recommend` answers photos."""

    def __init__(self, captioner: CaptionerModule, index: SongIndex, bridge: Bridge, catalogue: Catalogue,
                 store: MelFeatures | None = None, reranker: TagMelModule | None = None, rerank_top: int = 50,
                 beam_size: int | None = None, batch_size: int = 16):
        if reranker is not None:
            if store is None:
                raise ValueError("reranking needs the feature store the index was built from")
            if list(reranker.query_tags) != list(index.query_tags):
                raise ValueError("the rerank checkpoint was trained on other query tags than the index's model: "
                                 "train both on the same data.root and data.num_tags")
        self.captioner, self.index, self.bridge, self.catalogue = captioner, index, bridge, catalogue
        self.store, self.reranker, self.rerank_top = store, reranker, rerank_top
        self.beam_size, self.batch_size = beam_size, batch_size

    @classmethod
    def load(cls, captioner_ckpt: str | Path, tag_mel_ckpt: str | Path, index_dir: str | Path,
             rerank_ckpt: str | Path | None = None, bridge: dict | None = None, search: SearchSettings | None = None,
             **options) -> "Recommender":
        """Load the models, open (and check) the index, and build the bridge from the index's Melon root;
        search: the index's search settings (None: the kind it was built with)."""
        index = SongIndex.open(index_dir, tag_mel_ckpt, search)
        store = index.features()
        root = store.meta["root"]
        return cls(load_captioner(captioner_ckpt), index, make_bridge(root, index.query_tags, **(bridge or {})),
                   Catalogue(root), store, load_tag_mel(rerank_ckpt) if rerank_ckpt else None, **options)

    def recommend(self, paths: Sequence[Path], k: int = 10) -> Iterator[PhotoResult | PhotoError]:
        """One result per path, in order; an unusable photo gives a PhotoError and the others go on."""
        for path, caption in caption_files(self.captioner, list(paths), self.batch_size, self.beam_size):
            if isinstance(caption, BadImage):
                yield PhotoError(str(path), str(caption), caption.reason)
            else:
                trail = self.bridge(caption)
                yield PhotoResult(str(path), caption, trail, self.songs(trail, k))

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
