"""find_flickr on small copies of every layout, quirks included: exact counts of what is read and reported."""
import json

import pytest

from mri.data.flickr import FlickrRootError, clean_caption, find_flickr
from mri.data.melon import DataRootError

# 10 images with files: 6 train, 2 val, 2 test, as listed in the split files.
NAMES = [f"{1000268201 + i}_{i:010x}.jpg" for i in range(12)]
TRAIN, VAL, TEST = NAMES[:6], NAMES[6:8], NAMES[8:10]
NO_SPLIT = NAMES[10]  # has a file and captions, in no split file
NO_FILE = "2258277193_586949ec62.jpg.1"  # captions, no file, in no split (the real quirk)
NO_FILE_IN_SPLIT = NAMES[11]  # in the train split, with captions, but no file
NO_CAPTIONS = "3000000000_ffffffffff.jpg"  # in the test split, no captions


def caption(name, k):
    return f"A dog , number {name[:4]} , runs on the beach #{k}"


def write_images(folder, names):
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8 not read by find_flickr")


def write_original(text_dir, image_dir):
    text_dir.mkdir(parents=True)
    lines = [f"{name}#{k}\t{caption(name, k)} ." for name in NAMES + [NO_FILE] for k in range(5)]
    lines[3] = lines[3].rstrip(" .")  # some captions lack the final " ."
    lines.insert(7, "")  # blank lines
    lines.append("   ")
    lines.append("this line has no tab and no #")
    (text_dir / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (text_dir / "Flickr8k.lemma.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in {"train": TRAIN + [NO_FILE_IN_SPLIT], "dev": VAL, "test": TEST + [NO_CAPTIONS]}.items():
        (text_dir / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n\n")
    write_images(image_dir, NAMES[:11])
    (image_dir / ("._" + NAMES[0])).write_bytes(b"")  # macOS resource fork, not an image


def check_official(files, layout):
    assert files.layout == layout
    assert [n for n, _ in files.splits["train"]] == TRAIN
    assert [n for n, _ in files.splits["val"]] == VAL and [n for n, _ in files.splits["test"]] == TEST
    name, caps = files.splits["train"][0]
    assert len(caps) == 5 and caps[0] == f"A dog , number {name[:4]} , runs on the beach #0"
    assert all(not c.endswith(".") for c in caps)
    assert files.image_path(name).is_file()
    r = files.report
    assert r.counts == {"no_split": 1, "no_file": 2, "no_captions": 1, "bad_line": 1}
    assert r.items("no_split") == [NO_SPLIT] and sorted(r.items("no_file")) == sorted([NO_FILE, NO_FILE_IN_SPLIT])
    assert r.items("no_captions") == [NO_CAPTIONS]
    assert len(files.captions("train")) == 30


@pytest.mark.parametrize("image_dir", ["Flickr8k_Dataset", "Flicker8k_Dataset", "Images",
                                       "Flickr8k_Dataset/Flicker8k_Dataset"])
def test_original_release(tmp_path, image_dir):
    write_original(tmp_path / "Flickr8k_text", tmp_path / image_dir)
    files = find_flickr(tmp_path)
    check_official(files, "original")
    assert files.image_dir == tmp_path / image_dir


def test_sau_layout_nested_one_folder_deeper(tmp_path):
    data = tmp_path / "flickr8ksau" / "Flickr_Data"
    write_original(data / "Flickr_TextData", data / "Images")
    (tmp_path / "__MACOSX" / "Flickr_Data").mkdir(parents=True)  # zip junk is ignored
    (tmp_path / "__MACOSX" / "Flickr_Data" / "Flickr8k.token.txt").write_text("junk")
    files = find_flickr(tmp_path)
    check_official(files, "sau")
    assert files.image_dir == data / "Images"


def test_captions_csv_with_commas_quotes_and_a_seeded_split(tmp_path):
    write_images(tmp_path / "flickr8k" / "Images", NAMES[:11])
    rows = ["image,caption"]
    for name in NAMES[:11] + [NO_FILE]:
        rows += [f'{name},"A dog, a cat and a ""ball"" on the beach ."', f"{name},A child plays , laughing .",
                 f"{name},Two men say \"hi\" .", f"{name},A girl runs .", f"{name},A boy sits ."]
    rows.insert(4, "")
    rows.append("no comma on this line")
    (tmp_path / "flickr8k" / "captions.txt").write_text("\n".join(rows) + "\n")
    files = find_flickr(tmp_path)
    assert files.layout == "captions_csv"
    sizes = {split: len(pairs) for split, pairs in files.splits.items()}
    assert sizes == {"train": 8, "val": 1, "test": 2}  # 11 * 6/8 = 8.25, 11 / 8 = 1.375
    assert files.report.counts == {"no_split": 0, "no_file": 1, "no_captions": 0, "bad_line": 1}
    caps = dict(files.splits["train"])[files.splits["train"][0][0]]
    assert caps == ['A dog, a cat and a "ball" on the beach', "A child plays , laughing", 'Two men say "hi"',
                    "A girl runs", "A boy sits"]
    again = find_flickr(tmp_path)
    assert again.splits == files.splits  # seeded
    other = find_flickr(tmp_path, split_seed=1)
    assert other.splits != files.splits
    assert sorted(n for s in other.splits.values() for n, _ in s) == sorted(NAMES[:11])


def test_karpathy_json(tmp_path):
    write_images(tmp_path / "Flicker8k_Dataset", NAMES[:11])
    splits = {**dict.fromkeys(TRAIN[:4], "train"), **dict.fromkeys(TRAIN[4:], "restval"),
              **dict.fromkeys(VAL, "val"), **dict.fromkeys(TEST, "test"), NO_SPLIT: "unused", NO_FILE: "train"}
    images = [{"filename": name, "imgid": i, "split": split, "sentids": [5 * i + k for k in range(5)],
               "sentences": [{"tokens": ["a", "dog"], "raw": caption(name, k) + " .", "imgid": i,
                              "sentid": 5 * i + k} for k in range(5)]}
              for i, (name, split) in enumerate(splits.items())]
    (tmp_path / "karpathy").mkdir()
    (tmp_path / "karpathy" / "dataset_flickr8k.json").write_text(json.dumps({"dataset": "flickr8k", "images": images}))
    files = find_flickr(tmp_path)
    assert files.layout == "karpathy" and files.image_dir == tmp_path / "Flicker8k_Dataset"
    assert [n for n, _ in files.splits["train"]] == TRAIN
    assert [n for n, _ in files.splits["val"]] == VAL and [n for n, _ in files.splits["test"]] == TEST
    assert files.report.counts == {"no_split": 1, "no_file": 1, "no_captions": 0, "bad_line": 0}
    assert files.splits["test"][0][1][2] == caption(TEST[0], 2)


def test_preference_and_forced_layout(tmp_path):
    write_original(tmp_path / "Flickr8k_text", tmp_path / "Flickr8k_Dataset")
    (tmp_path / "captions.txt").write_text("image,caption\n" + f"{NAMES[0]},A dog .\n")
    assert find_flickr(tmp_path).layout == "original"
    assert find_flickr(tmp_path, layout="captions_csv").layout == "captions_csv"
    with pytest.raises(ValueError, match="karpathy"):
        find_flickr(tmp_path, layout="coco")


def test_unrecognisable_roots(tmp_path):
    for root, problem in [(tmp_path / "absent", "does not exist"), (tmp_path, "is empty")]:
        with pytest.raises(DataRootError, match=problem) as e:
            find_flickr(root)
        assert str(root) in str(e.value) and "Flickr8k.token.txt" in str(e.value)
        assert "captions.txt" in str(e.value) and "data=captions" in str(e.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FlickrRootError, match="no Flickr8k caption file"):
        find_flickr(tmp_path)
    (tmp_path / "Flickr8k.token.txt").write_text(f"{NAMES[0]}#0\tA dog .\n")
    with pytest.raises(FlickrRootError, match="Flickr_8k.trainImages.txt"):
        find_flickr(tmp_path)


def test_clean_caption():
    assert clean_caption("  A child  in a pink dress .  ") == "A child in a pink dress"
    assert clean_caption("A dog runs.") == "A dog runs"
