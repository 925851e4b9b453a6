"""recommend.py, caption.py (and serve.py) as a user runs them (subprocesses, strict UTF-8 stdout): JSON valid
whatever the file names, every skipped entry of a folder named, exit statuses 0 / 1 / 2, errors in one line."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGS

pytestmark = pytest.mark.slow
ROOT = CONFIGS.parent
ODD_NAME = b"caf\xe9 \xff.jpg"  # Latin-1 bytes: not valid UTF-8


def run(script: str, tmp_path: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, script, f"paths.data_dir={data}", f"hydra.run.dir={tmp_path / 'run'}",
                           *overrides], cwd=ROOT, env=env, capture_output=True, timeout=300)


@pytest.fixture
def folder(trained, tmp_path):
    """A good photo under a name that is not UTF-8, and entries that are not photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = trained[3].image_path(trained[3].splits["test"][0][0])
    shutil.copy(photo, os.path.join(os.fsencode(folder), ODD_NAME))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "x.jpg").mkdir()
    (folder / "notes.txt").write_text("not a photo")
    return folder


def ckpts(trained, tmp_path) -> list[str]:
    base, _, paths, _ = trained
    return [f"tag_mel_ckpt={paths['tag_mel']}", f"captioner_ckpt={paths['captioner']}", f"index_dir={tmp_path / 'idx'}"]


def test_recommend_json_with_an_undecodable_name_and_skipped_entries(trained, tmp_path, folder):
    done = run("recommend.py", tmp_path, trained[1], *ckpts(trained, tmp_path), "build_index=true", f"image={folder}",
               "output=json", "k=3")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    results = json.loads(done.stdout.decode("utf-8", "strict"))  # valid JSON, valid UTF-8
    answered = [r for r in results if "songs" in r]
    assert len(answered) == 1 and os.fsencode(answered[0]["path"]) == os.path.join(os.fsencode(folder), ODD_NAME)
    assert answered[0]["path"].endswith("caf\udce9 \udcff.jpg")
    err = done.stderr.decode("utf-8", "strict")
    assert "dangling.jpg: skipped: a link to nothing" in err and "x.jpg: skipped: a folder" in err
    assert "notes.txt: skipped: not an image file name" in err and "empty.jpg: cannot recommend: empty" in err

    table = run("recommend.py", tmp_path, trained[1], *ckpts(trained, tmp_path), f"image={folder}", "k=3")
    assert table.returncode == 0 and "== " in table.stdout.decode("utf-8", "strict")
    assert "caf\\udce9 \\udcff.jpg" in table.stdout.decode()  # the escapes, as documented

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "empty.jpg").write_bytes(b"")
    none = run("recommend.py", tmp_path, trained[1], *ckpts(trained, tmp_path), f"image={only_bad}", "output=json")
    assert none.returncode == 1 and json.loads(none.stdout)[0]["reason"] == "empty"


def one_line_refusal(done: subprocess.CompletedProcess, script: str, *words: str) -> str:
    err = done.stderr.decode("utf-8", "strict")
    assert done.returncode == 2, err
    assert "Traceback" not in err and err.count(f"{script}: ") == 1 and all(w in err for w in words), err
    return err


def test_checkpoint_and_argument_errors_exit_2_in_one_line(trained, tmp_path, folder):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained[2]["tag_mel"].read_bytes()[:5000])
    args = ckpts(trained, tmp_path)
    done = run("recommend.py", tmp_path, trained[1], f"tag_mel_ckpt={truncated}", *args[1:], "build_index=true")
    one_line_refusal(done, "recommend", str(truncated), "not a readable PyTorch checkpoint")
    done = run("recommend.py", tmp_path, trained[1], args[0], f"captioner_ckpt={tmp_path}", args[2], f"image={folder}")
    one_line_refusal(done, "recommend", f"captioner_ckpt={tmp_path} is a folder")
    done = run("caption.py", tmp_path, trained[1], f"ckpt_path={trained[2]['tag_mel']}", f"image={folder}")
    one_line_refusal(done, "caption", "not captioner")
    done = run("caption.py", tmp_path, trained[1], f"image={folder}")
    one_line_refusal(done, "caption", "ckpt_path has no value")
    done = run("caption.py", tmp_path, trained[1], f"ckpt_path={trained[2]['captioner']}", f"image={tmp_path / 'no'}")
    one_line_refusal(done, "caption", "does not exist")
    assert run("caption.py", tmp_path, trained[1], "no_such_key=1").returncode == 2  # Hydra's own refusal
    done = run("serve.py", tmp_path, trained[1], *args, "server.body_timeout=0")  # refused before the models load
    one_line_refusal(done, "serve", "server.body_timeout=0: must be a positive number")


def test_caption_a_folder_with_an_undecodable_name(trained, tmp_path, folder):
    done = run("caption.py", tmp_path, trained[1], f"ckpt_path={trained[2]['captioner']}", f"image={folder}")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    (line,) = done.stdout.decode("utf-8", "strict").splitlines()
    assert line.split("\t")[0].endswith("caf\\udce9 \\udcff.jpg") and line.split("\t")[1]
    assert "x.jpg: skipped: a folder" in done.stderr.decode()
