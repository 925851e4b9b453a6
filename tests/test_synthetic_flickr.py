"""Generated Flickr8k data: the original layout and line formats, determinism, themes beside the files,
captions that name what was drawn, atomic writing."""
import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from mri.data.flickr import find_flickr
from mri.data.images import load_image
from mri.data.synthetic import flickr as synth
from mri.data.synthetic.flickr import MARKER, TRUTH_FILE, generate_flickr, image_themes, lemmatize, read_truth
from mri.data.synthetic.scenes import SCENE_KINDS, _Canvas, layout_subjects, plan_scene, render_scene
from mri.data.synthetic.themes import THEME_NAMES, get_theme
from mri.data.vocab import tokenize

N, SIZE = 80, (64, 48)
NAME = re.compile(r"^\d{9,10}_[0-9a-f]{10}\.jpg$")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_flickr(tmp_path_factory.mktemp("gen") / "flickr", N, seed=5, image_size=SIZE)


@pytest.fixture(scope="module")
def truth(root):
    return read_truth(root)


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_original_release_layout_and_line_formats(root, truth):
    text, images = root / "Flickr8k_text", root / "Flickr8k_Dataset"
    assert sorted(p.name for p in text.iterdir()) == sorted(
        ["Flickr8k.token.txt", "Flickr8k.lemma.token.txt", "Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt",
         "Flickr_8k.testImages.txt"])
    files = sorted(p.name for p in images.iterdir())
    assert all(NAME.match(n) for n in files)
    splits = {s: lines(text / f"Flickr_8k.{s}Images.txt") for s in ("train", "dev", "test")}
    assert [len(v) for v in splits.values()] == [60, 10, 10]  # 75 / 12.5 / 12.5 %
    in_split = {n for v in splits.values() for n in v}
    assert len(in_split) == N and in_split <= set(files)
    token = lines(text / "Flickr8k.token.txt")
    assert all(re.match(r"^\S+\.jpg(\.1)?#[0-4]\t\S.*$", line) for line in token)
    assert token == sorted(token, key=lambda line: line.split("#")[0])  # grouped by image as released
    names = {line.split("#")[0] for line in token}
    assert len(token) == 5 * len(names)
    assert sum(line.endswith(" .") for line in token) > 0.8 * len(token)
    lemma = lines(text / "Flickr8k.lemma.token.txt")
    assert [line.split("\t")[0] for line in lemma] == [line.split("\t")[0] for line in token]
    assert any(" be " in line for line in lemma) and lemmatize("Two men are walking") == "Two man be walk"
    # the real quirk: caption entries naming images in no split or without a file
    assert truth["quirks"]["no_split"] and truth["quirks"]["no_file"]
    assert set(truth["quirks"]["no_split"]) == names - in_split - set(truth["quirks"]["no_file"])
    assert not set(truth["quirks"]["no_file"]) & set(files)
    im = Image.open(images / files[0])
    assert im.format == "JPEG" and im.size in (SIZE, SIZE[::-1])


def test_readers_read_it_and_report_the_quirks(root, truth):
    files = find_flickr(root)
    assert files.layout == "original" and {s: len(p) for s, p in files.splits.items()} == {
        "train": 60, "val": 10, "test": 10}
    assert files.report.counts == {"no_split": 1, "no_file": 1, "no_captions": 0, "bad_line": 0}
    assert files.report.items("no_file") == truth["quirks"]["no_file"]
    assert all(load_image(files.image_path(n)).mode == "RGB" for n, _ in files.splits["test"])


def test_truth_beside_the_files(root, truth):
    assert (root / TRUTH_FILE).is_file() and truth["params"]["seed"] == 5 and truth["params"]["n_images"] == N
    files = sorted(p.name for p in (root / "Flickr8k_Dataset").iterdir())
    assert sorted(truth["images"]) == files and set(truth["images"].values()) <= set(THEME_NAMES)
    assert len(set(truth["images"].values())) >= 6  # themes are mixed
    assert image_themes(root) == truth["images"]
    assert image_themes(root.parent) is None
    token = (root / "Flickr8k_text" / "Flickr8k.token.txt").read_text()
    assert TRUTH_FILE not in token and not any(t in token for t in THEME_NAMES)


def test_captions_hold_scene_words_and_what_was_drawn(root, truth):
    captions = {}
    for line in lines(root / "Flickr8k_text" / "Flickr8k.token.txt"):
        key, text = line.split("\t")
        captions.setdefault(key.split("#")[0], []).append(set(tokenize(text)))
    for name, theme in truth["images"].items():
        words, scene = captions[name], truth["scenes"][name]
        assert all(w & set(get_theme(theme).scene_words) for w in words), (name, theme)
        assert len({frozenset(w) for w in words}) >= 3  # varied
        if scene["people"]:
            nouns = {"man", "men", "woman", "women", "boy", "boys", "girl", "girls", "person", "people"}
            assert all(w & nouns for w in words)
        else:
            assert all(scene["animal"] in w or scene["animal"] + "s" in w for w in words)
        colours = set(scene["colours"]) if scene["people"] else {scene["animal_colour"]}
        if len(colours) == 1:
            assert colours <= words[0]  # the first caption names the colour
        if scene["animal"] and scene["people"]:
            assert any(scene["animal"] in w or scene["animal"] + "s" in w for w in words)


def test_every_theme_renders_at_any_size():
    rng = np.random.default_rng(0)
    assert set(SCENE_KINDS) == set(THEME_NAMES)
    for theme in THEME_NAMES:
        for size in ((32, 24), (200, 150), (90, 160)):
            a = np.asarray(render_scene(plan_scene(theme, rng), size))
            assert a.shape == (size[1], size[0], 3) and a.std() > 10


@pytest.mark.parametrize("size", [(160, 120), (120, 160)])
def test_subjects_stand_apart_inside_the_central_square(size):
    """What a centre crop keeps holds every person and animal a caption names, none hiding another."""
    rng = np.random.default_rng(1)
    w, h = size
    fx0, fy0 = (1 - min(w, h) / w) / 2, (1 - min(w, h) / h) / 2  # the central square's corner
    for i in range(200):
        scene = plan_scene(THEME_NAMES[i % len(THEME_NAMES)], rng)
        canvas = _Canvas(size, rng)
        xs, feet, sizes = layout_subjects(canvas, scene, centre=rng.uniform(0.2, 0.8), g=0.6)
        assert len(xs) == len(scene.people) + scene.n_animals
        assert np.all((xs > fx0) & (xs < 1 - fx0)), (scene, xs)
        assert np.all((feet <= 1 - fy0) & (feet - sizes >= fy0)), (scene, feet, sizes)
        gaps = np.diff(xs) * w / h  # in image heights, like sizes
        assert np.all(gaps >= 0.25 * np.minimum(sizes[1:], sizes[:-1])), (scene, xs, sizes)


def test_deterministic(tmp_path, root):
    again = generate_flickr(tmp_path / "again", N, seed=5, image_size=SIZE)
    assert digest(again) == digest(root)
    other = generate_flickr(tmp_path / "other", N, seed=6, image_size=SIZE)
    assert read_truth(other)["images"] != read_truth(root)["images"]


def test_atomic_and_kept_when_complete(tmp_path, monkeypatch):
    target = tmp_path / "flickr"

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "_write_all_images", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_flickr(target, 10, image_size=SIZE)
    assert list(tmp_path.iterdir()) == []  # no partial root, no temp folder left
    monkeypatch.undo()

    root = generate_flickr(target, 10, image_size=SIZE)
    assert (root / MARKER).is_file()
    before = digest(root)
    with pytest.warns(UserWarning, match="other parameters"):
        assert generate_flickr(target, 12, image_size=SIZE) == root
    assert digest(root) == before
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_flickr(tmp_path / "junk", 10)


def test_workers_and_no_quirks(tmp_path, root):
    parallel = generate_flickr(tmp_path / "w", N, seed=5, image_size=SIZE, workers=2)
    assert digest(parallel) == digest(root)
    clean = generate_flickr(tmp_path / "clean", 20, image_size=SIZE, quirks=False)
    assert read_truth(clean)["quirks"] == {"no_split": [], "no_file": []}
    assert find_flickr(clean).report.n_skipped == 0
    with pytest.raises(ValueError, match="no_split"):
        generate_flickr(tmp_path / "bad", 20, quirk_rates={"typo": 0.1})
