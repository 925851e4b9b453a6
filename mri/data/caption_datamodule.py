"""CaptionDataModule: Flickr8k-format data (real or generated) for the CNN-LSTM captioner.

Training samples are images with all their captions, so the encoder runs once per image, not once per
caption (it is most of a step's cost). Validation and test samples are images with all their
reference captions, so corpus BLEU and CIDEr see every reference. Every image
is read once in setup: unreadable ones are skipped, counted and listed in the run folder. Images get one
ImagePreprocessing (mri.data.images), the one captioning new photos uses. With a frozen encoder the
batches hold its cached features instead of images (`use_features`, mri.data.image_features).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from mri.data.flickr import SPLITS, FlickrFiles, FlickrRootError, find_flickr
from mri.data.image_features import ImageFeatures, build_image_features
from mri.data.images import DEFAULT_MAX_PIXELS, BadImage, ImagePreprocessing, ImageReport, load_image
from mri.data.synthetic.flickr import generate_flickr, image_themes
from mri.data.vocab import PAD_ID, Vocabulary, tokenize

log = logging.getLogger(__name__)

NO_FLIP_WORDS = frozenset({"left", "right"})  # a mirrored photo would contradict such a caption

Sample = Callable[[int, bool], torch.Tensor]  # (position in the split, mirrored) -> the encoder's input


class CaptionedImages(Dataset):
    """One training sample per image: (image, caption ids [(L_k,)]); random horizontal flips unless one of
    its captions says left or right. `sample` gives the image (3, S, S), or its cached features (P, C)."""

    def __init__(self, sample: Sample, captions: list[list[torch.Tensor]], flippable: list[bool], flip: bool):
        self.sample, self.captions, self.flippable, self.flip = sample, captions, flippable, flip

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int):
        mirrored = self.flip and self.flippable[i] and bool(torch.rand(()) < 0.5)
        return self.sample(i, mirrored), self.captions[i]


class CaptionImages(Dataset):
    """The images of a split with all their reference captions: (image (3, S, S) or features (P, C), [str],
    position)."""

    def __init__(self, sample: Sample, references: list[list[str]]):
        self.sample, self.references = sample, references

    def __len__(self) -> int:
        return len(self.references)

    def __getitem__(self, i: int):
        return self.sample(i, False), self.references[i], i


class ImageFiles:
    """Sample from the image files: read, preprocessed, mirrored when asked -> (3, S, S)."""

    def __init__(self, paths: list[Path], preprocessing: ImagePreprocessing):
        self.paths, self.preprocessing = paths, preprocessing

    def __call__(self, i: int, mirrored: bool) -> torch.Tensor:
        image = self.preprocessing.read(self.paths[i])  # (3, S, S)
        return image.flip(-1) if mirrored else image


class StoredFeatures:
    """Sample from a feature store: the frozen encoder's features (P, C) of the image or of its mirror image."""

    def __init__(self, store: ImageFeatures, names: list[str]):
        self.store, self.names = store, names

    def __call__(self, i: int, mirrored: bool) -> torch.Tensor:
        return self.store.view(self.names[i], mirrored)


def collate_captioned(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> images (B, 3, S, S), captions (C, L) long padded with PAD, lengths (C,) long incl. BOS/EOS,
    image_of (C,) long: the image row of each caption (C = all captions of the B images)."""
    images, caption_lists = zip(*batch, strict=True)
    captions = [c for caps in caption_lists for c in caps]
    image_of = torch.repeat_interleave(torch.tensor([len(caps) for caps in caption_lists]))  # (C,)
    lengths = torch.tensor([len(c) for c in captions], dtype=torch.long)  # (C,)
    return torch.stack(images), pad_sequence(captions, batch_first=True, padding_value=PAD_ID), lengths, image_of


def collate_images(batch) -> tuple[torch.Tensor, list[list[str]], torch.Tensor]:
    """-> images (B, 3, S, S), references (B lists of str), positions in the split (B,) long."""
    images, references, index = zip(*batch, strict=True)
    return torch.stack(images), list(references), torch.tensor(index, dtype=torch.long)


class CaptionDataModule(LightningDataModule):
    """Flickr8k data (any layout find_flickr reads, or generated) for the captioner.

    root: a Flickr8k root. With `generate` set (arguments of generate_flickr), Flickr8k-format data is
    generated there on first use. vocab_size: most entries of the vocabulary, specials included (the
    model's embedding size); max_caption_len: ids per caption, BOS and EOS included; seed: of the split
    drawn for a captions.txt copy; layout: force one when a root holds several (see find_flickr); flip:
    random horizontal flips of training images; max_pixels: larger images are skipped as too_large;
    report_dir: where image_report.json, caption_report.json and data.json go; preprocessing: the
    fields of the ImagePreprocessing every image gets (default: EfficientNet-Lite0's), also what
    captioning new photos needs; cache_dir: where `use_features` keeps frozen encoders' feature stores.
    After setup: `vocab`, `image_names[split]`, `themes` (image -> theme of generated data, else None);
    `preprocessing` at any time; after `use_features`, `features` (the store the batches come from).
    """

    def __init__(self, root: str, generate: dict | None = None, preprocessing: Mapping | None = None,
                 vocab_size: int = 2000, min_word_count: int = 3, max_caption_len: int = 24, batch_size: int = 32,
                 eval_batch_size: int = 64, num_workers: int = 0, seed: int = 0, report_dir: str | None = None,
                 layout: str | None = None, flip: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                 cache_dir: str | None = None):
        super().__init__()
        self.save_hyperparameters(logger=False)
        if root is None:
            raise FlickrRootError(None, "is given (data.root)")
        self.root = Path(root)
        self.preprocessing = ImagePreprocessing.from_dict(preprocessing or {})
        self.features: ImageFeatures | None = None
        self.files: FlickrFiles | None = None
        self.vocab: Vocabulary | None = None
        self.themes: dict[str, str] | None = None
        self.image_names: dict[str, list[str]] = {}
        self.datasets: dict[str, Dataset] = {}

    def prepare_data(self) -> None:
        """Generate (if configured and absent), once per node."""
        if self.hparams.generate is not None:
            generate_flickr(self.root, **self.hparams.generate)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        self.files = find_flickr(self.root, split_seed=hp.seed, layout=hp.layout)
        self.image_report = ImageReport()
        kept = {split: self._readable(split) for split in SPLITS}
        if not kept["train"]:
            raise ValueError(f"no readable training image in {self.files.image_dir}: {self.image_report.summary()}")
        self.vocab = Vocabulary.build((c for _, caps in kept["train"] for c in caps), hp.min_word_count, hp.vocab_size)
        self.image_names = {split: [name for name, _ in pairs] for split, pairs in kept.items()}
        self.themes = image_themes(self.root)
        self.datasets = {"train": self._captioned(kept["train"])}
        for split in ("val", "test"):
            self.datasets[split] = CaptionImages(self._image_files(split), [caps for _, caps in kept[split]])
        if hp.report_dir is not None:
            self._write_reports(Path(hp.report_dir))
        log.info("Flickr8k %s (%s): images train/val/test %d/%d/%d, %d training captions, vocabulary %d; "
                 "images %s; captions %s", self.root, self.files.layout,
                 *(len(self.image_names[s]) for s in SPLITS), self._train_captions(), len(self.vocab),
                 self.image_report.summary(), self.files.report.summary())

    def _readable(self, split: str) -> list[tuple[str, list[str]]]:
        """The (name, captions) of a split whose image load_image reads; the others go to the report."""
        kept = []
        for name, captions in self.files.splits[split]:
            try:
                load_image(self.files.image_path(name), self.hparams.max_pixels, self.preprocessing.resize)
            except BadImage as e:
                self.image_report.add(name, e.reason, e.detail)
                continue
            kept.append((name, captions))
        return kept

    def _image_files(self, split: str) -> ImageFiles:
        return ImageFiles([self.files.image_path(n) for n in self.image_names[split]], self.preprocessing)

    def _captioned(self, pairs: list[tuple[str, list[str]]]) -> CaptionedImages:
        encode = self.vocab.encode
        captions = [[torch.tensor(encode(c, self.hparams.max_caption_len)) for c in caps] for _, caps in pairs]
        flippable = [not any(NO_FLIP_WORDS & set(tokenize(c)) for c in caps) for _, caps in pairs]
        return CaptionedImages(self._image_files("train"), captions, flippable, self.hparams.flip)

    def use_features(self, encode: Callable[[torch.Tensor], torch.Tensor], encoder_id: dict) -> ImageFeatures:
        """Serve a frozen encoder's features of the images instead of the images (call after setup).

        encode: preprocessed images (B, 3, H, W) -> feature maps (B, C, h, w); encoder_id: plain data
        naming the encoder and its weights. The features of every split's images are computed once
        into a store under cache_dir (with the mirror images too when flip is on) and reused by later runs.
        """
        if self.hparams.cache_dir is None:
            raise ValueError("cached image features need a folder to live in: set data.cache_dir")
        names = [name for split in SPLITS for name in self.image_names[split]]
        self.features = build_image_features(self.files.image_dir, names, encode, encoder_id, self.preprocessing,
                                             self.hparams.cache_dir, views=2 if self.hparams.flip else 1,
                                             max_pixels=self.hparams.max_pixels)
        missing = [name for name in names if name not in self.features]
        if missing:  # read a moment ago by setup: changed since
            raise ValueError(f"{len(missing)} images (first {missing[0]}) have no features in "
                             f"{self.features.folder}: {self.features.report.summary()}")
        for split, dataset in self.datasets.items():
            dataset.sample = StoredFeatures(self.features, self.image_names[split])
        return self.features

    def _write_reports(self, folder: Path) -> None:
        """Skipped images, caption entries without a usable image, and what the data was."""
        self.image_report.write(folder / "image_report.json")
        self.files.report.write(folder / "caption_report.json")
        summary = {"root": str(self.root), "layout": self.files.layout, "image_dir": str(self.files.image_dir),
                   "images": {s: len(self.image_names[s]) for s in SPLITS},
                   "train_captions": self._train_captions(),
                   "vocabulary": len(self.vocab), "skipped_images": self.image_report.counts,
                   "caption_report": self.files.report.counts}
        (folder / "data.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")

    def _train_captions(self) -> int:
        return sum(len(caps) for caps in self.datasets["train"].captions)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, collate_captioned, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, collate_images, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, collate_images, shuffle=False)

    def _loader(self, split: str, batch_size: int, collate: Callable, shuffle: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(self.datasets[split], batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                          num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
