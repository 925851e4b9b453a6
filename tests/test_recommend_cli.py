"""recommend(cfg) end to end on tiny generated data: build the index, answer a folder of photos with bad files."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mri.checkpoints import CheckpointError
from mri.models.captioner_module import load_captioner
from mri.models.image_stage import CaptionModel, FamiliarityModel, ImageStage
from mri.recommend.bridge import TextRefused
from mri.recommend.command import quote_text_argument, recommend
from mri.recommend.index import MissingIndex, StaleIndex
from mri.recommend.loading import build_index, checkpoints, load_recommender
from mri.recommend.pipeline import caption_trust, load_tag_mel
from mri.recommend.tag_side import TagSide, TagSideSettings
from mri.utils.config import compose_config
from tests.conftest import recommend_cfg


def photos(trained, folder, n=3):
    folder.mkdir()
    for name, _ in trained[3].splits["test"][:n]:
        shutil.copy(trained[3].image_path(name), folder / name)
    return folder


@pytest.mark.slow
def test_build_then_recommend_a_folder_with_bad_files(trained, tmp_path, capsys):
    folder = photos(trained, tmp_path / "photos")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    good = next(folder.glob("*_*.jpg")).read_bytes()
    (folder / "truncated.jpg").write_bytes(good[:len(good) // 3])
    assert recommend(recommend_cfg(trained, tmp_path, "build_index=true", f"image={folder}")) == 0
    out, err = capsys.readouterr()
    assert out.count("== ") == 3 and out.count("caption   ") == 3
    assert "tags      " in out and "title" in out
    assert "empty.jpg: cannot recommend: empty" in err and "text.png: cannot recommend: not_image" in err
    assert "truncated.jpg: cannot recommend" in err


@pytest.mark.slow
def test_wandb_table_of_recommendations_offline(trained, tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = photos(trained, tmp_path / "photos", n=2)
    assert recommend(recommend_cfg(trained, tmp_path, "build_index=true", f"image={folder}", "wandb=true")) == 0
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    tables = list(run.glob("files/media/table/recommendations_*.table.json"))
    assert len(tables) == 1
    rows = json.loads(tables[0].read_text())["data"]
    assert len(rows) == 2 and all(row[1] and row[3] for row in rows)  # caption and songs


@pytest.mark.slow
def test_json_output_and_exit_status(trained, tmp_path, capsys):
    folder = photos(trained, tmp_path / "photos", n=2)
    assert recommend(recommend_cfg(trained, tmp_path, "build_index=true", f"image={folder}", "output=json", "k=5")) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2
    for r in results:
        assert r["caption"] and len(r["songs"]) == 5 and abs(sum(r["trail"]["weights"].values()) - 1) < 1e-4
        assert all({"title", "artist", "genre", "score"} <= set(s) for s in r["songs"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    assert recommend(recommend_cfg(trained, tmp_path, f"image={bad}")) == 1  # none answered


@pytest.mark.slow
def test_missing_and_stale_index_name_the_command(trained, tmp_path):
    folder = photos(trained, tmp_path / "photos", n=1)
    with pytest.raises(MissingIndex, match="python recommend.py build_index=true"):
        recommend(recommend_cfg(trained, tmp_path, f"image={folder}", f"index_dir={tmp_path / 'none'}"))
    run = shutil.copytree(trained[0] / "tag_mel", tmp_path / "tag_mel")  # the shared checkpoint stays as it is
    ckpt = f"tag_mel_ckpt={run / 'checkpoints' / 'best.ckpt'}"
    recommend(recommend_cfg(trained, tmp_path, "build_index=true", f"index_dir={tmp_path / 'idx'}", ckpt))
    with open(run / "checkpoints" / "best.ckpt", "ab") as f:  # the checkpoint changes after the index was built
        f.write(b"\0")
    with pytest.raises(StaleIndex, match="build_index=true"):
        recommend(recommend_cfg(trained, tmp_path, f"image={folder}", f"index_dir={tmp_path / 'idx'}", ckpt))


@pytest.mark.slow
def test_a_start_after_the_index_build_reads_no_melon_json(trained, tmp_path, monkeypatch):
    """The index keeps the bridge's tag side (vocabulary, similarity, titles) and the songs' titles."""
    from mri.recommend import catalogue, tag_side
    cfg = recommend_cfg(trained, tmp_path, "build_index=true", f"index_dir={tmp_path / 'idx'}")
    ckpts = checkpoints(cfg, photos=True)
    build_index(cfg, ckpts["tag_mel"])
    facts = load_tag_mel(ckpts["tag_mel"]).facts
    settings = TagSideSettings.of(facts, OmegaConf.to_container(cfg.bridge))
    expected = TagSide.read(facts["root"], facts["query_tags"], settings)
    for module, name in ((tag_side, "read_playlists"), (catalogue, "read_songs")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("the start read the Melon root's JSON"))
    bridge = load_recommender(cfg, ckpts).bridge
    np.testing.assert_array_equal(bridge.similarity.matrix(), expected.similarity.matrix())
    assert bridge.similarity.vocab == expected.similarity.vocab


def test_missing_checkpoints_name_the_training_command(tmp_path, data_dir):
    cfg = compose_config("recommend", ["image=x.jpg"], tmp_path / "run", data_dir)
    with pytest.raises(CheckpointError, match="python train.py model=squeezenet`"):
        recommend(cfg)


REAL_PHOTOS = Path(__file__).resolve().parents[1] / "experiments" / "real_photos" / "photos"


@pytest.mark.slow
def test_a_real_photo_and_text_without_a_captioner(trained, tmp_path, capsys):
    """Only a tag-mel model trained: the tagger's keywords and the user's words reach the tags."""
    cfg = recommend_cfg(trained, tmp_path, "build_index=true", f"image={REAL_PHOTOS / 'coffee.jpg'}", "output=json",
                        "captioner_ckpt=null", "text='비 오는 밤 드라이브'")
    assert recommend(cfg) == 0
    (result,) = json.loads(capsys.readouterr().out)
    trail = result["trail"]
    assert result["caption"] == "" and result["photo_tags"]["classes"][0][0] == "espresso"
    assert trail["how"]["coffee"] == "lexicon" and "class espresso" in trail["sources"]["coffee"][0]
    assert trail["sources"]["드라이브"] == ["text"] and "오는" not in trail["keywords"]  # a stop word
    assert len(result["songs"]) == 10


@pytest.mark.slow
def test_empty_and_too_long_texts(trained, tmp_path, capsys):
    image = f"image={REAL_PHOTOS / 'dune.jpg'}"
    cfg = recommend_cfg(trained, tmp_path, "build_index=true", image, "captioner_ckpt=null", "text='그리고 the'")
    assert recommend(cfg) == 0
    assert "note      text '그리고 the' ignored: no content words" in capsys.readouterr().out
    with pytest.raises(TextRefused, match="501 characters long; the limit is 500"):
        recommend(recommend_cfg(trained, tmp_path, image, "captioner_ckpt=null", f"text={'a' * 501}"))


def test_text_arguments_are_quoted_for_hydra():
    assert quote_text_argument(["recommend.py", "text=비 오는 밤", "image=a.jpg", "text='quoted'", "text=it's"]) == \
        ["recommend.py", "text='비 오는 밤'", "image=a.jpg", "text='quoted'", "text='it\\'s'"]


@pytest.mark.slow
def test_index_kind_is_chosen_by_config_and_another_kind_refused(trained, tmp_path, capsys):
    folder = photos(trained, tmp_path / "photos", n=1)
    idx = f"index_dir={tmp_path / 'idx'}"
    ivf = ["index.kind=ivf", "index.nlist=4", "index.nprobe=4"]  # every list visited: the exact top-k
    assert recommend(recommend_cfg(trained, tmp_path, "build_index=true", idx, *ivf, f"image={folder}",
                                   "output=json")) == 0
    search = json.loads((tmp_path / "idx" / "meta.json").read_text())["search"]
    assert search["kind"] == "ivf" and search["nlist"] == 4 and (tmp_path / "idx" / search["file"]).is_file()
    (ivf_result,) = json.loads(capsys.readouterr().out)
    with pytest.raises(StaleIndex, match=r"built for search kind=ivf .*, not kind=exact"):
        recommend(recommend_cfg(trained, tmp_path, idx, f"image={folder}"))
    with pytest.raises(StaleIndex, match=r"nlist=4 .*, not kind=ivf storage=flat nlist=8.*index.kind=ivf`"):
        recommend(recommend_cfg(trained, tmp_path, idx, "index.kind=ivf", "index.nlist=8", f"image={folder}"))
    assert recommend(recommend_cfg(trained, tmp_path, "build_index=true", idx, f"image={folder}", "output=json")) == 0
    (exact_result,) = json.loads(capsys.readouterr().out)
    assert [s["score"] for s in ivf_result["songs"]] == pytest.approx([s["score"] for s in exact_result["songs"]])
    with pytest.raises(ValueError, match="index.kind='faiss'; choose one of exact, ivf, hnsw"):
        recommend(recommend_cfg(trained, tmp_path, idx, "index.kind=faiss", f"image={folder}"))


def test_a_captioner_of_generated_scenes_weighs_less_than_one_trained_on_real_photos(trained, tmp_path):
    _, _, ckpts, _ = trained
    trust = caption_trust(ckpts["captioner"], generated_weight=0.1)  # the fixture trains on generated data
    threshold = trust.familiarity.threshold  # its checkpoint keeps its training photos' features
    assert trust.weigh(None)[0] == trust.weigh(threshold - 0.01)[0] == 0.1 and trust.weigh(threshold)[0] == 1
    ckpt = torch.load(ckpts["captioner"], map_location="cpu", weights_only=True)
    del ckpt["mri"]["data"]["familiarity"]  # written before checkpoints kept it: every photo at generated_weight
    real = tmp_path / "real.ckpt"
    torch.save(ckpt, real)
    assert caption_trust(real, generated_weight=0.1).weigh(1.0)[0] == 0.1
    ckpt["mri"]["data"]["generated"] = False  # as if trained on a real Flickr8k root
    torch.save(ckpt, real)
    assert caption_trust(real, generated_weight=0.1).weigh(None) == (1.0, "caption")
    del ckpt["mri"]["data"]["generated"]  # an older checkpoint: the datamodule's `generate` setting decides
    ckpt["datamodule_hyper_parameters"]["generate"] = None
    torch.save(ckpt, real)
    assert caption_trust(real, generated_weight=0.1).weigh(None) == (1.0, "caption")


def test_a_generated_captioners_words_count_fully_on_photos_like_its_training_photos(trained):
    """A training photo of the fixture's captioner is like its training photos, a real photograph is not; the
    similarity is computed on the encoder's feature maps that the captioner uses too."""
    _, _, ckpts, flickr = trained
    caption_model = CaptionModel(load_captioner(ckpts["captioner"]))
    trust = caption_trust(ckpts["captioner"], generated_weight=0.1)
    familiarity = FamiliarityModel(caption_model, trust.familiarity)
    assert familiarity.trunk is caption_model.trunk
    generated, real = ImageStage([caption_model, familiarity]).run(
        [flickr.image_path(flickr.splits["train"][0][0]), REAL_PHOTOS / "motorcycle.jpg"])
    assert generated["familiarity"] == pytest.approx(1.0, abs=2e-3)  # the photo itself is among them
    assert real["familiarity"] < familiarity.familiarity.threshold
    (weight, source), (real_weight, real_source) = (trust.weigh(f["familiarity"]) for f in (generated, real))
    assert weight == 1 and "on a photo like them: similarity 1.00 >=" in source
    assert real_weight == 0.1 and "the photo unlike them: similarity" in real_source
