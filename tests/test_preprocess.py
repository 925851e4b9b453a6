"""python preprocess.py: parallel, sharded and resumable mel preprocessing that always yields the same store."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mri.data.feature_parts as feature_parts
from mri.data.features import FeatureSpec, IncompleteBuild, StoreBuilder, build_features
from mri.data.melon import DataRootError, mel_path, read_song_ids, read_songs
from mri.data.synthetic.melon import generate_melon
from mri.preprocess import preprocess
from mri.utils.config import compose_config

REPO = Path(__file__).resolve().parents[1]
N_SONGS = 300
SMALL = [f"data.generate.n_songs={N_SONGS}", "data.generate.n_playlists=60", "data.features.basis_songs=100",
         "part_size=64"]  # 5 parts


@pytest.fixture
def run(tmp_path, data_dir):
    """run(*overrides): preprocess(cfg) as preprocess.py runs it, with its own feature cache under tmp_path."""

    def go(*overrides: str, cache: str = "cache") -> dict:
        cfg = compose_config("preprocess", [*SMALL, f"data.cache_dir={tmp_path / cache}", *overrides],
                             tmp_path / "run", data_dir)
        return preprocess(cfg)

    return go


def store_files(folder: Path) -> dict[str, bytes]:
    """The bytes of every file of a store."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def test_workers_and_shards_build_the_store_one_process_builds(run, data_dir):
    alone = run("workers=0", cache="alone")
    pooled = run("workers=2", cache="pooled")
    for shard in (1, 0):
        run("workers=0", f"shard={shard}", "num_shards=2", cache="sharded")
    sharded = run("merge=true", cache="sharded")
    assert alone["songs"] == N_SONGS and pooled["files"] == N_SONGS and pooled["parts"] == 5
    reference = store_files(Path(alone["store"]))
    assert set(reference) == {"features.npy", "song_ids.npy", "report.json", "basis.npz", "meta.json"}
    assert store_files(Path(pooled["store"])) == reference
    assert store_files(Path(sharded["store"])) == reference
    assert not Path(sharded["store"] + ".work").exists()  # the workspace goes once merged
    # training (build_features in-process) reuses the store preprocess.py built
    root = data_dir / f"melon-synth-n{N_SONGS}-s0"
    spec = FeatureSpec(mode="global", basis_songs=100)
    store = build_features(root, spec, Path(alone["store"]).parent, [s.id for s in read_songs(root)])
    assert store.folder == Path(alone["store"])


def test_an_interrupted_run_resumes_with_only_the_unfinished_parts(run, monkeypatch):
    real, calls = feature_parts.featurise_part, []

    def dies_on_the_third_part(job, workspace):
        calls.append(job.index)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a part
        return real(job, workspace)

    monkeypatch.setattr("mri.data.features.featurise_part", dies_on_the_third_part)
    with pytest.raises(KeyboardInterrupt):
        run("workers=0", cache="resumed")
    monkeypatch.undo()
    resumed = run("workers=0", cache="resumed")
    assert resumed["parts"] == 3 and resumed["files"] == N_SONGS - 2 * 64  # two parts were finished
    assert store_files(Path(resumed["store"])) == store_files(Path(run("workers=0", cache="whole")["store"]))


def test_a_killed_process_leaves_no_complete_looking_output_and_resumes(tmp_path, data_dir):
    args = [sys.executable, "preprocess.py", *SMALL, "part_size=32", "workers=1", f"paths.data_dir={data_dir}",
            f"paths.log_dir={tmp_path / 'logs'}", f"data.cache_dir={tmp_path / 'cache'}"]
    generate_melon(data_dir / f"melon-synth-n{N_SONGS}-s0", n_songs=N_SONGS, n_playlists=60)
    job = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((tmp_path / "cache").glob("*.work/parts/*.npz"))) < 2:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the whole job, workers included: a power cut
    job.wait()
    done = list((tmp_path / "cache").glob("*.work/parts/*.npz"))
    assert len(done) >= 2 and not list((tmp_path / "cache").glob("*/meta.json"))
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (summary,) = (tmp_path / "logs" / "preprocess" / "runs").glob("*/preprocess.json")
    parts = json.loads(summary.read_text())["parts"]
    (store,) = (tmp_path / "cache").glob("*/meta.json")
    assert parts <= 10 - len(done) + 1  # only unfinished parts (one may have finished while being killed)
    root = data_dir / f"melon-synth-n{N_SONGS}-s0"
    reference = build_features(root, FeatureSpec(mode="global", basis_songs=100), tmp_path / "whole",
                               read_song_ids(root))  # uninterrupted, in one process, default part size
    assert store_files(store.parent) == store_files(reference.folder)


def test_merge_before_every_shard_is_done_names_the_missing_parts(run):
    run("workers=0", "shard=0", "num_shards=2", cache="half")
    with pytest.raises(IncompleteBuild, match=r"2 of 5 parts are not featurised yet \(1, 3\)"):
        run("merge=true", cache="half")


def test_a_damaged_part_is_removed_and_redone(run, tmp_path):
    run("workers=0", "num_shards=2", "shard=0", cache="damaged")
    run("workers=0", "num_shards=2", "shard=1", cache="damaged")
    (part,) = (tmp_path / "damaged").glob("*.work/parts/000002.npz")
    part.write_bytes(part.read_bytes()[:100])  # a disk fault after the part was written
    with pytest.raises(IncompleteBuild, match="part 2 of .* was damaged .* run the same command again"):
        run("merge=true", cache="damaged")
    assert not part.exists()
    redone = run("workers=0", cache="damaged")  # redoes part 2 only, then merges
    assert redone["parts"] == 1 and redone["songs"] == N_SONGS


def test_bad_files_are_counted_listed_and_whole_missing_folders_named(tmp_path):
    root = generate_melon(tmp_path / "melon", n_songs=2100, n_playlists=20, seed=5)
    shutil.rmtree(root / "arena_mel" / "1")  # like the real 225, 227, ...
    nan = np.full((48, 1876), -40.0, np.float32)
    nan[3, 7] = np.nan
    np.save(mel_path(root, 2001), nan)
    np.save(mel_path(root, 2002), np.zeros((20, 1876), np.float32))
    mel_path(root, 2003).write_bytes(b"\x93NUMPY truncated")
    store = build_features(root, FeatureSpec(mode="per_song"), tmp_path / "cache", read_song_ids(root))
    report = json.loads((store.folder / "report.json").read_text())
    reasons = {song: reason for song, reason, _ in report["entries"]}
    assert reasons[2001] == "non_finite" and reasons[2002] == "shape" and reasons[2003] == "unreadable"
    assert all(reasons[song] == "missing" for song in range(1000, 2000))
    assert report["counts"]["missing"] >= 1000 and store.meta["missing_folders"] == [1]
    assert len(store) == 2100 - sum(report["counts"][r] for r in report["counts"] if r != "odd_length")
    explained = store.meta["explained_variance"]
    assert 0 < explained["std"] < explained["mean"] < 1  # per-song mode: mean and spread over songs


def test_not_enough_disk_fails_before_starting(run, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(OSError, match=r"needs about 0\.\d+ GB free in .*; only 0\.00 GB is free"):
        run("workers=0", cache="full")


def test_a_root_without_arena_mel_is_a_clear_error(tmp_path):
    root = generate_melon(tmp_path / "melon", n_songs=30, n_playlists=10, write_mels=False)
    cfg = compose_config("preprocess", ["data=melon", f"data.root={root}"], tmp_path / "run", tmp_path)
    with pytest.raises(DataRootError, match="has no arena_mel/ folder: unpack arena_mel_"):
        preprocess(cfg)


def test_data_melon_without_a_root_says_to_give_one(tmp_path):
    cfg = compose_config("preprocess", ["data=melon"], tmp_path / "run", tmp_path)
    with pytest.raises(DataRootError, match=r"No Melon root is given \(data.root\)"):
        preprocess(cfg)


def test_a_workspace_of_other_settings_is_refused(run, tmp_path, data_dir):
    root = data_dir / f"melon-synth-n{N_SONGS}-s0"
    run("workers=0", "shard=0", "num_shards=5", cache="other")
    builder = StoreBuilder(root, FeatureSpec(mode="global", basis_songs=100), tmp_path / "other",
                           read_song_ids(root)[:-1])  # the catalogue changed under the same key
    with pytest.raises(ValueError, match="unfinished build of other songs or settings; delete that folder"):
        builder.todo()


def test_song_ids_are_read_without_keeping_records(data_dir):
    root = generate_melon(data_dir / f"melon-synth-n{N_SONGS}-s0", n_songs=N_SONGS, n_playlists=60)
    np.testing.assert_array_equal(read_song_ids(root), sorted(s.id for s in read_songs(root)))


@pytest.mark.slow
def test_shards_as_a_hydra_multirun_then_merge(tmp_path, data_dir):
    common = [*SMALL, "workers=0", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}",
              f"data.cache_dir={tmp_path / 'cache'}"]
    sweep = subprocess.run([sys.executable, "preprocess.py", "-m", "shard=0,1,2", "num_shards=3", *common],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr
    assert not list((tmp_path / "cache").glob("*/meta.json"))
    merge = subprocess.run([sys.executable, "preprocess.py", "merge=true", *common],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert merge.returncode == 0, merge.stderr
    assert f"of {N_SONGS} songs ->" in merge.stdout and "keeps" in merge.stdout
    early = subprocess.run([sys.executable, "preprocess.py", "merge=true", *common[:-1],
                            f"data.cache_dir={tmp_path / 'empty'}"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert early.returncode == 2 and "parts are not featurised yet" in early.stderr
