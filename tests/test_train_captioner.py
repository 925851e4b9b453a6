"""The captioner end to end on tiny generated data: training, its checkpoint, captioning photos, W&B samples."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mri.checkpoints import CheckpointError, read_checkpoint
from mri.data.images import BadImage, image_paths, load_image
from mri.eval import evaluate, saved_datamodule
from mri.models.captioner_module import load_captioner
from mri.models.image_stage import CaptionModel, ImageStage, Trunk
from mri.models.imagenet import ImageNetClassifier, load_classifier
from mri.recommend.tagger import PhotoTagger
from mri.train import train

REPO = Path(__file__).resolve().parents[1]
SMALL_NET = ["model=captioner", "model.net.embed_dim=16", "model.net.hidden_dim=32", "model.net.attention_dim=16"]
FEW_BATCHES = ["+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]


def test_fast_dev_run_with_attention_on_cached_features(make_cfg):
    """The default frozen pretrained encoder: batches carry its cached features, not images."""
    cfg = make_cfg("train", "captions", *SMALL_NET, "model.net.attention=true", "+trainer.fast_dev_run=true")
    metrics, objects = train(cfg)
    assert objects["trainer"].state.finished
    assert {"test/bleu1", "test/bleu4", "test/cider"} <= set(metrics)
    datamodule, net = objects["datamodule"], objects["model"].net
    assert net.encoder.name == "efficientnet_lite0" and net.encoder.backbone.frozen
    store = datamodule.features
    assert store is not None and store.views == 2  # flips on: the mirror images are cached too
    assert store.folder.parent == Path(cfg.data.cache_dir)
    features, _, _, _ = next(iter(datamodule.train_dataloader()))
    assert features.shape == (16, 4, 1280)  # 64 px crops: a 2x2 map of EfficientNet-Lite0's 1280 channels
    assert not any(p.requires_grad for p in net.encoder.backbone.parameters())


def test_fast_dev_run_with_a_trainable_encoder(make_cfg):
    """model=captioner_plain: plain_cnn trained end to end on images, nothing cached."""
    cfg = make_cfg("train", "captions", "model=captioner_plain", *SMALL_NET[1:], "data.preprocessing.resize=32",
                   "data.preprocessing.crop=32", "+trainer.fast_dev_run=true")
    _, objects = train(cfg)
    datamodule, net = objects["datamodule"], objects["model"].net
    assert objects["trainer"].state.finished and datamodule.features is None and not net.encoder.backbone.frozen
    images, _, _, _ = next(iter(datamodule.train_dataloader()))
    assert images.shape == (16, 3, 32, 32)
    assert all(p.requires_grad for p in net.encoder.backbone.parameters())


def test_checkpoint_captions_photos_alone(make_cfg, tmp_path):
    """One epoch; the checkpoint then captions test images, a folder with a broken file, and via caption.py."""
    cfg = make_cfg("train", "captions", *SMALL_NET, *FEW_BATCHES)
    metrics, objects = train(cfg)
    datamodule, ckpt = objects["datamodule"], Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    assert {"val/bleu4_best", "test/bleu1", "test/bleu2", "test/bleu3", "test/bleu4", "test/cider"} <= set(metrics)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["test/bleu4"] == pytest.approx(metrics["test/bleu4"])
    extra = torch.load(ckpt, map_location="cpu", weights_only=True)["mri"]
    assert extra["kind"] == "captioner" and extra["data"]["vocab"] == datamodule.vocab.to_list()
    saved_preprocessing = extra["data"]["image_preprocessing"]  # plain data
    assert saved_preprocessing == {"resize": 64, "crop": 64, "mean": [0.5] * 3, "std": [0.5] * 3,
                                   "interpolation": "bicubic"}

    captioner = load_captioner(ckpt)  # no datamodule: vocabulary and preprocessing from the checkpoint
    assert not captioner.training and captioner.vocab.to_list() == datamodule.vocab.to_list()
    assert captioner.preprocessing == datamodule.preprocessing
    images = next(iter(datamodule.test_dataloader()))[0][:3]  # cached features (3, P, C)
    captions = captioner.caption(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    greedy = captioner.net.greedy(images, captioner.hparams.max_len)
    assert captioner.caption(images, beam_size=1) == [datamodule.vocab.decode(r) for r in greedy]

    # a photo read from its file with the saved preprocessing meets the encoder as the cached features did
    name = datamodule.image_names["test"][0]
    photo = captioner.preprocessing(load_image(datamodule.files.image_path(name)))[None]  # (1, 3, 64, 64)
    from_file, cached = captioner.net.encoder(photo)[0], captioner.net.encoder(images[:1])[0]
    torch.testing.assert_close(from_file, cached, atol=0.02, rtol=0.02)  # the store keeps float16

    photos = _photos(datamodule, tmp_path / "photos")
    paths, _ = image_paths(tmp_path / "photos")
    results = dict(zip(paths, ImageStage([CaptionModel(captioner)]).run(paths, batch_size=2), strict=True))
    assert list(results) == photos
    assert isinstance(results[tmp_path / "photos" / "broken.jpg"], BadImage)
    assert sum(isinstance(r, dict) and isinstance(r["caption"], str) for r in results.values()) == 2

    # beside a photo tagger on the same ImageNet weights and preprocessing, the encoder runs once per batch
    lite0 = load_classifier()
    tagger = PhotoTagger(ImageNetClassifier(lite0.model, lite0.name, captioner.preprocessing, lite0.num_features))
    caption_model = CaptionModel(captioner)
    assert tagger.trunk.digest == caption_model.trunk.digest
    tagger_runs, encoder_runs = [], []
    feature_maps = tagger.trunk.feature_maps
    tagger.trunk = Trunk(lambda x: tagger_runs.append(len(x)) or feature_maps(x), tagger.trunk.digest)
    encoder = captioner.net.encoder
    encoder_maps = encoder.feature_maps
    encoder.feature_maps = lambda x: encoder_runs.append(len(x)) or encoder_maps(x)  # the captioner's own run
    prepared = [ImageStage([tagger]).prepare(p) for p in paths if p.name != "broken.jpg"]
    shared = ImageStage([tagger, caption_model]).describe(prepared)
    assert tagger_runs == [len(prepared)] and encoder_runs == []  # the captioner took the tagger's maps
    tagger.trunk = caption_model.trunk = None
    apart = ImageStage([tagger, caption_model]).describe(prepared)
    assert encoder_runs == [len(prepared)]
    assert [f["caption"] for f in shared] == [f["caption"] for f in apart]
    assert [f["tags"].classes for f in shared] == [f["tags"].classes for f in apart]

    run = subprocess.run([sys.executable, "caption.py", f"ckpt_path={ckpt}", f"image={tmp_path / 'photos'}",
                          f"paths.log_dir={tmp_path / 'logs'}", "beam_size=2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr  # two photos captioned; the one that could not be read is named
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2 and all("\t" in line for line in lines)
    assert "broken.jpg\tcannot caption:" in run.stderr


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_scores_like_one_process(make_cfg):
    # TensorBoard, not CSV: Lightning's CSVLogger cannot follow ddp_spawn from fit into test. After 3
    # batches the captions hardly vary; test_caption_metrics checks the gathering on distinct captions.
    cfg = make_cfg("train", "captions", *SMALL_NET, "+trainer.limit_train_batches=3", "trainer=ddp_sim",
                   "logger=tensorboard")
    _, objects = train(cfg)
    assert objects["trainer"].world_size == 2
    run = Path(cfg.paths.output_dir)
    spread = json.loads((run / "metrics.json").read_text())  # test photos split over 2 processes, padded
    one = make_cfg("eval", "captions", *SMALL_NET, f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
                   f"paths.output_dir={run / 'eval'}")
    alone, _ = evaluate(one)  # the same checkpoint, every test photo in one process
    for name in ("test/bleu1", "test/bleu4", "test/cider"):
        assert spread[name] == pytest.approx(alone[name], abs=1e-6)


def test_load_captioner_refuses_another_kind(tmp_path):
    path = tmp_path / "tag_mel.ckpt"
    torch.save({"mri": {"kind": "two_tower"}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="holds a two_tower model, not captioner.*model=captioner"):
        load_captioner(path)


def _photos(datamodule, folder: Path) -> list[Path]:
    """Two test images of the generated data and a broken file, in one folder."""
    folder.mkdir()
    names = datamodule.image_names["test"][:2]
    image_dir = next(Path(datamodule.root).rglob(names[0])).parent
    for name in names:
        (folder / name).write_bytes((image_dir / name).read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return sorted(folder.iterdir())


def test_wandb_gets_a_table_of_sample_captions(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg("train", "captions", *SMALL_NET, *FEW_BATCHES, "logger=wandb", "logger.wandb.offline=true",
                   "test=false", "model.num_samples=3")
    train(cfg)
    tables = list(Path(cfg.paths.output_dir).rglob("samples_*.table.json"))
    assert tables, "no W&B table of sample captions"
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["image", "prediction", "references"] and len(table["data"]) == 3


def test_self_critical_epochs_follow_the_cross_entropy_ones(make_cfg):
    """model.self_critical.start_epoch=1: epoch 0 trains on cross-entropy, epoch 1 on CIDEr-D rewards at its lr."""
    cfg = make_cfg("train", "captions", *SMALL_NET, *FEW_BATCHES, "trainer.max_epochs=2",
                   "model.self_critical.start_epoch=1", "model.self_critical.samples=3", "test=false")
    _, objects = train(cfg)
    optimizer = objects["trainer"].optimizers[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert {int(state["step"]) for state in optimizer.state.values()} == {3}  # Adam started afresh at epoch 1
    rows = list(csv.DictReader(next((Path(cfg.paths.output_dir) / "csv").rglob("metrics.csv")).open()))
    trained = {int(r["epoch"]): r for r in rows if r.get("train/loss") or r.get("train/reward")}
    assert trained[0]["train/loss"] and not trained[0].get("train/reward")
    assert float(trained[1]["train/reward"]) > 0
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["self_critical"] == {"start_epoch": 1, "samples": 3, "lr": 2e-4}


def test_eval_reads_the_feature_cache_training_wrote(trained, tmp_path):
    base, data, ckpts, _ = trained
    cfg = OmegaConf.create({"paths": {"data_dir": str(data), "output_dir": str(tmp_path)}})
    for name, folder in (("captioner", "image_features"), ("tag_mel", "features")):
        datamodule = saved_datamodule(read_checkpoint(ckpts[name]), cfg, str(ckpts[name]))
        assert Path(datamodule.hparams.cache_dir) == data / "cache" / folder
