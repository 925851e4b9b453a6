"""TagMelDataModule: Melon playlists and mel features -> (query tag, song) pairs for the tag–mel regressor.

Training draws fresh (tag, song) pairs every epoch from training songs only. Validation and test
batches are songs: the model scores every query tag for each song, so ranking metrics see the
whole (T, N) matrix of a split. Songs are split song-disjointly: val and test songs never train.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from mri.data.features import FeatureSpec, MelFeatures, build_features
from mri.data.melon import DataRootError, check_playlist_songs, check_root, read_playlists, read_song_ids
from mri.data.pairs import SongTags, split_songs
from mri.data.synthetic.features import write_feature_store
from mri.data.synthetic.melon import generate_melon
from mri.data.tags import PlaylistTags, TagSimilarity, TagVocabulary

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """`size` (tag, song) pairs an epoch, every training song equally often; a share of the tags are the song's own.

    Tags are drawn from numpy's global RNG, which Lightning's `seed_everything(workers=True)` seeds
    per process, per worker and per epoch: runs repeat, epochs differ.
    """

    def __init__(self, store: MelFeatures, rows: np.ndarray, songs: np.ndarray, song_tags: SongTags,
                 sim: np.ndarray, size: int, own_tag_fraction: float):
        self.store, self.rows, self.songs = store, rows, songs
        self.song_tags, self.sim = song_tags, sim
        self.size, self.own_tag_fraction = size, own_tag_fraction

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        j = i % len(self.songs)
        song = int(self.songs[j])
        own = self.song_tags.own_tags(song)
        own = own[own < len(self.sim)]  # only query tags can be asked for
        if len(own) and np.random.random() < self.own_tag_fraction:
            tag = int(own[np.random.randint(len(own))])
        else:
            tag = np.random.randint(len(self.sim))
        target = self.song_tags.targets(self.sim[tag:tag + 1], song)[0]
        mel = torch.from_numpy(self.store.standardized(self.rows[j:j + 1]))  # (1, 48, k)
        return tag, mel, torch.tensor(target, dtype=torch.float32)


class SongDataset(Dataset):
    """The songs of one split, each with its targets for every query tag."""

    def __init__(self, store: MelFeatures, rows: np.ndarray, songs: np.ndarray, song_tags: SongTags, sim: np.ndarray):
        self.store, self.rows, self.songs, self.song_tags, self.sim = store, rows, songs, song_tags, sim

    def __len__(self) -> int:
        return len(self.songs)

    def __getitem__(self, i: int):
        mel = torch.from_numpy(self.store.standardized(self.rows[i:i + 1]))  # (1, 48, k)
        target = torch.from_numpy(self.song_tags.targets(self.sim, int(self.songs[i])))  # (T,)
        return mel, target, i


class TagMelDataModule(LightningDataModule):
    """Melon data (real or generated) for TagMelModule.

    root: a Melon root. With `generate` set, Melon-format data is generated there on first use.
    num_tags: query tags = the `num_tags` most frequent normalised tags (the model's embedding size).
    similarity_dim: tag vectors are smoothed to this many latent axes before the cosine (None: raw cosine).
    similarity_cache_dir: where the tag similarity is kept once computed, for later runs and the recommender
    (None: not kept).
    train_batches: "pairs" ((tag, song, target) triples, the slides' input) or "songs" (each training song
    with its targets for every query tag: far more signal per forward for a two-tower model).
    """

    def __init__(self, root: str, cache_dir: str, generate: dict | None = None, features: dict | None = None,
                 num_tags: int = 64, min_tag_count: int = 1, similarity_dim: int | None = 16, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, split_seed: int = 0, pairs_per_epoch: int = 20000,
                 own_tag_fraction: float = 0.2, train_batches: str = "pairs", batch_size: int = 256,
                 eval_batch_size: int = 512, num_workers: int = 0, report_dir: str | None = None,
                 similarity_cache_dir: str | None = None):
        super().__init__()
        if train_batches not in ("pairs", "songs"):
            raise ValueError(f"data.train_batches must be 'pairs' or 'songs', not {train_batches!r}")
        self.save_hyperparameters(logger=False)
        if root is None:
            raise DataRootError(None, "is given (data.root)")
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.spec = FeatureSpec(**(features or {}))
        self.datasets: dict[str, Dataset] = {}

    def prepare_data(self) -> None:
        """Generate (if configured and absent) and featurise, once per node."""
        if self.hparams.generate is not None:
            generate_melon(self.root, **self.hparams.generate)
        check_root(self.root)
        self._features()

    def _features(self) -> MelFeatures:
        """The feature store: built from the mels, or written directly for a generated root without mels."""
        if self.hparams.generate is not None and self.hparams.generate.get("write_mels") is False:
            return write_feature_store(self.root, self.spec, self.cache_dir)
        return build_features(self.root, self.spec, self.cache_dir, read_song_ids(self.root))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        check_root(self.root)
        song_ids = read_song_ids(self.root)  # (S,) sorted
        playlists = read_playlists(self.root, "train")
        check_playlist_songs(self.root, "train", playlists, song_ids)
        self.store = self._features()
        vocab = TagVocabulary.from_playlists(playlists, hp.min_tag_count)
        if len(vocab) == 0:
            raise ValueError(f"no playlist in {self.root / 'train.json'} carries a tag; tags are the queries")
        self.vocab = vocab
        self.query_tags = vocab.tags[:hp.num_tags]
        flat = PlaylistTags(playlists, vocab)
        del playlists  # ~1 GB of Python objects at the real size; workers must not inherit them
        counts = flat.song_tag_counts(n_songs=int(song_ids[-1]) + 1)  # (S, V) the costly part, done once
        similarity = TagSimilarity.cached(vocab, flat, hp.similarity_dim, hp.similarity_cache_dir,
                                          self.root / "train.json", counts)
        self.sim = similarity.matrix(range(len(self.query_tags)))  # (T, V)
        self.song_tags = SongTags.from_playlists(flat, vocab, len(counts.indptr) - 1, song_counts=counts)
        del flat, counts, similarity
        usable = self.song_tags.tagged(self.store.song_ids)  # have features and tags
        self.splits = split_songs(usable, hp.val_fraction, hp.test_fraction, hp.split_seed)
        rows = {name: self.store.positions(ids) for name, ids in self.splits.items()}
        self.datasets = {name: SongDataset(self.store, rows[name], self.splits[name], self.song_tags, self.sim)
                         for name in ("train", "val", "test")}
        if hp.train_batches == "pairs":
            self.datasets["train"] = PairDataset(self.store, rows["train"], self.splits["train"], self.song_tags,
                                                 self.sim, hp.pairs_per_epoch, hp.own_tag_fraction)
        if hp.report_dir is not None:
            self._write_reports(Path(hp.report_dir))
        log.info("Melon %s: %d query tags of %d; songs train/val/test %d/%d/%d; %s", self.root,
                 len(self.query_tags), len(vocab), *(len(self.splits[n]) for n in ("train", "val", "test")),
                 self.store.meta["report"])

    def _write_reports(self, folder: Path) -> None:
        """Copy the mel report into the run folder and say what the data was."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.store.folder / "report.json", folder / "mel_report.json")
        summary = {"root": str(self.root), "features": str(self.store.folder), "query_tags": list(self.query_tags),
                   "explained_variance": self.store.meta["explained_variance"],
                   "songs": {n: len(s) for n, s in self.splits.items()}, "mel_report": self.store.meta["report"]}
        (folder / "data.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))

    def popularity(self, split: str) -> np.ndarray:
        """Training playlists holding each song of a split, in the split's order: (N,)."""
        return self.song_tags.popularity[self.splits[split]]

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(self.datasets[split], batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
