"""CaptionDataModule on tiny generated data (a corrupt image dropped in), the vocabulary, its preprocessing."""
import json
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from mri.data.caption_datamodule import CaptionDataModule
from mri.data.flickr import FlickrRootError
from mri.data.images import ImagePreprocessing
from mri.data.melon import DataRootError
from mri.data.synthetic.flickr import generate_flickr, read_truth
from mri.data.vocab import BOS, EOS, PAD, UNK, Vocabulary, tokenize

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
GENERATE = {"n_images": 48, "seed": 1, "image_size": [48, 36]}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
PLAIN_32 = {"resize": 32, "crop": 32, **IMAGENET, "interpolation": "bilinear"}


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    root = generate_flickr(tmp_path_factory.mktemp("data") / "flickr", **GENERATE)
    bad = (root / "Flickr8k_text" / "Flickr_8k.trainImages.txt").read_text().split()[:2]
    truncated, text = (root / "Flickr8k_Dataset" / name for name in bad)
    truncated.write_bytes(truncated.read_bytes()[:200])
    text.write_text("<html>404</html>")
    dm = CaptionDataModule(str(root), generate=GENERATE, preprocessing=PLAIN_32, vocab_size=40, min_word_count=1,
                           max_caption_len=12, batch_size=8, eval_batch_size=5,
                           report_dir=str(tmp_path_factory.mktemp("run")))
    dm.prepare_data()  # complete root: kept as is
    dm.setup("fit")
    dm.bad = bad
    return dm


def read_report(dm, name):
    return json.loads(open(os.path.join(dm.hparams.report_dir, name)).read())


def test_bad_images_are_skipped_counted_and_reported(datamodule):
    dm = datamodule
    used = {n for names in dm.image_names.values() for n in names}
    in_split = {n for pairs in dm.files.splits.values() for n, _ in pairs}
    assert used == in_split - set(dm.bad) and len(used) == 46
    assert dm.image_report.counts["corrupt"] == 1 and dm.image_report.counts["not_image"] == 1
    report = read_report(dm, "image_report.json")
    assert report["counts"] == dm.image_report.counts and sorted(e[0] for e in report["entries"]) == sorted(dm.bad)
    assert read_report(dm, "caption_report.json")["counts"] == {"no_split": 1, "no_file": 1, "no_captions": 0,
                                                                "bad_line": 0}
    summary = read_report(dm, "data.json")
    assert summary["layout"] == "original" and summary["images"]["train"] == len(dm.image_names["train"]) == 34


def test_vocabulary_never_exceeds_vocab_size(datamodule):
    vocab = datamodule.vocab
    assert len(vocab) == 40 and vocab.itos[:4] == [PAD, BOS, EOS, UNK]
    assert datamodule.preprocessing == ImagePreprocessing(32, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                                          "bilinear")


def test_train_batches(datamodule):
    images, captions, lengths, image_of = next(iter(datamodule.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    # every caption of the 8 images, each pointing at its image's row
    assert image_of.tolist() == [i for i in range(8) for _ in range(5)]
    assert captions.dtype == torch.long and lengths.dtype == torch.long and lengths.shape == (40,)
    assert captions.shape == (40, int(lengths.max())) and int(lengths.max()) <= 12
    assert (captions[:, 0] == 1).all() and captions.max() < 40
    for row, n in zip(captions, lengths, strict=True):
        assert row[n - 1] == 2 and (row[n:] == 0).all() and (row[1:n - 1] > 3).any()
    assert images.min() > -2.2 and images.max() < 2.7  # ImageNet-normalised
    dataset = datamodule.train_dataloader().dataset
    assert len(dataset) == len(datamodule.image_names["train"])
    assert sum(map(len, dataset.captions)) == 5 * len(dataset)


def test_eval_batches(datamodule):
    dm = datamodule
    images, references, index = next(iter(dm.val_dataloader()))
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.float32
    assert index.tolist() == [0, 1, 2, 3, 4] and index.dtype == torch.long
    assert all(len(r) == 5 and all(isinstance(c, str) and c for c in r) for r in references)
    captions = dict(dm.files.splits["val"])
    assert references[0] == captions[dm.image_names["val"][0]]
    truth = read_truth(dm.root)["images"]
    assert dm.themes == truth and all(n in dm.themes for n in dm.image_names["test"])
    assert sum(len(b[1]) for b in dm.test_dataloader()) == len(dm.image_names["test"])


def test_no_flip_for_left_right_captions(datamodule):
    dm = datamodule
    captions = dict(dm.files.splits["train"])
    sided = [any({"left", "right"} & set(tokenize(c)) for c in captions[name]) for name in dm.image_names["train"]]
    assert dm.datasets["train"].flippable == [not s for s in sided] and any(sided) and not all(sided)


def test_missing_root_names_the_path(tmp_path):
    dm = CaptionDataModule(str(tmp_path / "nowhere"), generate=None)
    dm.prepare_data()
    with pytest.raises(DataRootError, match="nowhere") as e:
        dm.setup("fit")
    assert "data=captions" in str(e.value)


def test_preprocessing_from_plain_data():
    preprocessing = ImagePreprocessing.from_dict({**PLAIN_32, "crop": 24})
    assert preprocessing.mean == (0.485, 0.456, 0.406)
    assert ImagePreprocessing.from_dict(preprocessing.to_dict()) == preprocessing
    x = preprocessing(Image.new("RGB", (90, 40), (124, 116, 104)))  # about the ImageNet mean
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and x.abs().max() < 0.05


def test_configs_compose_and_instantiate(tmp_path):
    with initialize_config_dir(config_dir=os.path.abspath(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=["model=captioner", f"paths.data_dir={tmp_path}"])
        assert cfg.data.generate.n_images >= 1000 and cfg.data.vocab_size == 2000
        dm = instantiate(cfg.data, report_dir=None)
        assert isinstance(dm, CaptionDataModule) and dm.root == tmp_path / "flickr8k-synth-n1500-s0"
        real = compose("train.yaml", overrides=["model=captioner", "data=flickr8k", "data.root=/data/flickr8k"])
        assert real.data.generate is None and real.data.preprocessing.crop == 224 and real.data.num_workers > 0


def test_vocabulary():
    captions = ["A dog runs on the beach .", "a dog sits", "The dog's ball, red-hot!", "two dogs run", "dog"]
    assert tokenize(captions[2]) == ["the", "dog's", "ball", "red-hot"]
    v = Vocabulary.build(captions, min_count=2)
    assert v.to_list() == [PAD, BOS, EOS, UNK, "dog", "a", "the"]  # most frequent first, ties by word
    assert Vocabulary.build(captions, min_count=1, max_size=6).itos == [PAD, BOS, EOS, UNK, "dog", "a"]
    ids = v.encode("A dog eats a cat", max_len=5)
    assert ids == [1, 5, 4, 3, 2]  # BOS a dog <unk> EOS (truncated)
    assert v.decode(ids + [0, 0]) == "a dog <unk>" and v.decode(torch.tensor([1, 4, 2, 5])) == "dog"
    assert Vocabulary.from_list(v.to_list()).stoi == v.stoi
    with pytest.raises(ValueError):
        Vocabulary.from_list(["dog", PAD])
    with pytest.raises(ValueError):
        Vocabulary.build(captions, max_size=3)


def test_data_flickr8k_without_a_root_says_to_give_one():
    with pytest.raises(FlickrRootError, match=r"No Flickr8k root is given \(data.root\)"):
        CaptionDataModule(root=None)
