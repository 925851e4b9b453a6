"""What the bridge takes from a Melon root's training playlists (train.json): the tag vocabulary with its tag
similarity, and the playlist titles that describe each query tag; read from train.json, or from the copy a song
index keeps.

    settings = TagSideSettings.of(checkpoint_facts, bridge_config)   # the tag-mel model's own, unless overridden
    tag_side = TagSide.load(root, query_tags, settings, index_folder)  # the index's copy while train.json is unchanged
    tag_side.similarity.nearest("드라이브"); tag_side.descriptions["드라이브"]  # its playlists' most frequent titles

At the real size reading train.json takes 7.5 s and the tag similarity 15-30 s to compute (unless training left it
in the similarity cache): a recommender's first start on a root no training had seen took 42 s. Building the song
index (`python recommend.py build_index=true`) therefore writes them into the index folder (tag_side.npz), stamped
with train.json's size and modification time, the settings and the query tags: a start then reads one file. Another
train.json, other settings or an index built before it kept them: train.json is read, with a log line saying how to
start without it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mri.data.melon import read_playlists
from mri.data.tags import TagSimilarity, TagVocabulary
from mri.recommend.bridge import tag_descriptions
from mri.recommend.catalogue import source_stamp
from mri.utils.atomic import read_arrays, write_arrays

log = logging.getLogger(__name__)

FILE = "tag_side.npz"
VERSION = 1
SIMILARITY_KEYS = ("min_tag_count", "similarity_dim")  # the tag similarity's settings, as checkpoints name them
TAG_SIDE_KEYS = (*SIMILARITY_KEYS, "similarity_cache_dir")  # bridge config keys read here


@dataclass(frozen=True)
class TagSideSettings:
    """min_tag_count, similarity_dim: the tag similarity's (TagMelDataModule's); titles_per_tag: per query tag."""

    min_tag_count: int = 1
    similarity_dim: int | None = 16
    titles_per_tag: int = 30

    @classmethod
    def of(cls, trained: Mapping, bridge: Mapping | None) -> TagSideSettings:
        """The tag-mel checkpoint's own similarity settings (its data facts) unless the bridge config names others
        (non-null min_tag_count, similarity_dim); titles_per_tag from bridge.embedding."""
        bridge = bridge or {}
        named = {k: trained[k] for k in SIMILARITY_KEYS if k in trained}
        named |= {k: bridge[k] for k in SIMILARITY_KEYS if bridge.get(k) is not None}
        titles = (bridge.get("embedding") or {}).get("titles_per_tag")
        return cls(**named, **({} if titles is None else {"titles_per_tag": titles}))


@dataclass(frozen=True)
class TagSide:
    similarity: TagSimilarity  # over the vocabulary (similarity.vocab)
    descriptions: dict[str, list[str]]  # query tag -> the most frequent titles of the playlists that carry it

    @classmethod
    def read(cls, root: str | os.PathLike, query_tags: Sequence[str], settings: TagSideSettings,
             similarity_cache_dir: str | os.PathLike | None = None) -> TagSide:
        """From train.json (the similarity from similarity_cache_dir when computed before, see TagSimilarity.cached)."""
        playlists = read_playlists(root, "train")
        vocab = TagVocabulary.from_playlists(playlists, settings.min_tag_count)
        similarity = TagSimilarity.cached(vocab, playlists, settings.similarity_dim, similarity_cache_dir,
                                          Path(root) / "train.json")
        return cls(similarity, tag_descriptions(playlists, query_tags, settings.titles_per_tag))

    @classmethod
    def load(cls, root: str | os.PathLike, query_tags: Sequence[str], settings: TagSideSettings,
             index_folder: str | os.PathLike | None = None,
             similarity_cache_dir: str | os.PathLike | None = None) -> TagSide:
        """The copy in index_folder when it was made from root's train.json as it is now, with these settings and
        query tags; else read (see read)."""
        if index_folder is not None and (Path(root) / "train.json").is_file():  # else read says what is missing
            if (arrays := read_arrays(Path(index_folder) / FILE, _key(root, query_tags, settings))) is not None:
                return cls._from_arrays(arrays)
            log.warning("song index %s keeps no tag side of %s/train.json as it is now with these settings (%s): "
                        "reading train.json (7.5 s at the real size, and the tag similarity if not cached); rebuild "
                        "the index (python recommend.py build_index=true) to start without it",
                        index_folder, root, asdict(settings))
        return cls.read(root, query_tags, settings, similarity_cache_dir)

    def write(self, folder: str | os.PathLike, root: str | os.PathLike, query_tags: Sequence[str],
              settings: TagSideSettings) -> None:
        """Keep this tag side in folder (atomically), stamped for load; root: the Melon root it was read from."""
        vocab = self.similarity.vocab
        text = json.dumps({"tags": vocab.tags, "counts": vocab.counts, "descriptions": self.descriptions},
                          ensure_ascii=False)
        write_arrays(Path(folder) / FILE, _key(root, query_tags, settings),
                     {"text": np.array(text), **self.similarity.to_arrays()})

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> TagSide:
        text = json.loads(str(arrays.pop("text")))
        vocab = TagVocabulary(tuple(text["tags"]), tuple(text["counts"]))
        return cls(TagSimilarity.from_arrays(vocab, arrays), text["descriptions"])


def _key(root: str | os.PathLike, query_tags: Sequence[str], settings: TagSideSettings) -> str:
    """What a kept tag side was made from: train.json's (size, mtime_ns), the settings, the query tags' digest."""
    tags = hashlib.sha1(json.dumps(list(query_tags), ensure_ascii=False).encode()).hexdigest()
    return json.dumps([VERSION, source_stamp(root, ("train.json",)), asdict(settings), tags])
