"""Recommendation speed and memory on a full-size catalogue (707,989 songs), CPU.

    python experiments/recommend_speed/bench.py [--songs 707989] [--threads 2] [--work /tmp/mri_speed]

- Retrieval: SongIndex.search (memory-mapped, chunked) beside a bare `torch` matmul + topk over the same
  vectors held in memory, in one run. The song vectors are random unit vectors of the model's dim: real mels
  for 707,989 songs would take ~130 GB to generate, and retrieval time does not depend on the values.
- Index build: the song tower over a sample of random-feature songs, extrapolated linearly to the catalogue.
- Early fusion (the slides' way): the network over a sample of (tag, song) pairs, extrapolated to
  every song for one tag and for a caption's typical number of weighted tags.
- Resident memory while recommending, and image -> top-10 median latency with the models loaded
  (captioner: the latest `python train.py model=captioner` run; bridge: the generated Melon root).
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mri.checkpoints import CheckpointError, latest_checkpoint
from mri.data.features import MelFeatures
from mri.data.flickr import find_flickr
from mri.data.melon import read_playlists
from mri.data.tags import TagVocabulary
from mri.models.captioner_module import load_captioner
from mri.models.image_stage import CaptionModel, ImageStage
from mri.models.tag_mel import EarlyFusionNet, TwoTowerNet
from mri.recommend.catalogue import Catalogue
from mri.recommend.index import FORMAT_VERSION, SongIndex
from mri.recommend.pipeline import Recommender, make_bridge
from mri.recommend.tag_side import TagSide, TagSideSettings

ROOT = Path(__file__).resolve().parents[2]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (page cache, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_top10(queries: torch.Tensor, vectors: torch.Tensor) -> torch.return_types.topk:
    """The bare baseline: one matmul over every song vector held in memory, then top-10."""
    return torch.topk(queries @ vectors.T, 10, dim=1)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def write_random_index(folder: Path, n: int, dim: int, query_tags: list[str], dtype: str, seed: int = 0) -> SongIndex:
    """An index folder of random unit song vectors in SongIndex's format, written in chunks."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.dtype(dtype), (n, dim))
    for s in range(0, n, 100_000):
        block = rng.normal(size=(min(100_000, n - s), dim)).astype(np.float32)
        vectors[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    np.save(folder / "song_ids.npy", np.arange(n, dtype=np.int64))
    tags = rng.normal(size=(len(query_tags), dim)).astype(np.float32)
    np.save(folder / "tags.npy", 0.5 * tags / np.linalg.norm(tags, axis=1, keepdims=True))
    meta = {"version": FORMAT_VERSION, "n_songs": n, "dim": dim, "dtype": dtype, "query_tags": query_tags,
            "bias": 0.5, "provenance": {"random": True}}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    return SongIndex(folder)


def sample_store(folder: Path, n: int) -> MelFeatures:
    """A feature store of n random-feature songs, for timing the song tower."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    np.save(folder / "features.npy", np.random.default_rng(0).normal(size=(n, 48, 20)).astype(np.float16))
    np.save(folder / "song_ids.npy", np.arange(n, dtype=np.int64))
    (folder / "meta.json").write_text(json.dumps({"mean": np.zeros((48, 20)).tolist(),
                                                  "std": np.ones((48, 20)).tolist()}))
    return MelFeatures(folder)


def photo_latency(captioner_ckpt, index: SongIndex, query_tags: list[str], args, rows: dict) -> dict:
    """Image -> top-10 with the models loaded: median over test photos, and what early fusion would take."""
    recommender = Recommender(ImageStage([CaptionModel(load_captioner(captioner_ckpt))]), index,
                              make_bridge(TagSide.read(args.melon, query_tags, TagSideSettings()), query_tags),
                              Catalogue.load(args.melon))
    flickr = find_flickr(args.flickr)
    photos = [flickr.image_path(name) for name, _ in flickr.splits["test"][:args.repeats + 1]]
    latencies, tags_used = [], []
    for photo in photos:
        start = time.perf_counter()
        (result,) = recommender.recommend([photo], k=10)
        latencies.append(time.perf_counter() - start)
        tags_used.append(len(result.trail.weights))
    per_tag = next(v for k, v in rows.items() if k.startswith("early fusion, 1 tag"))
    return {"image -> top-10 median latency (ms)": 1e3 * statistics.median(latencies[1:]),  # first: warm-up
            "weighted tags per photo (mean)": statistics.mean(tags_used),
            "early fusion, a photo's weighted tags x all songs (s)": per_tag * statistics.mean(tags_used)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=707_989)
    parser.add_argument("--dim", type=int, default=64, help="the two-tower model's song vector size (model.net.dim)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--build-sample", type=int, default=8192, help="songs the song tower is timed on")
    parser.add_argument("--fusion-sample", type=int, default=4096, help="(tag, song) pairs early fusion is timed on")
    parser.add_argument("--melon", default=str(ROOT / "data/melon-synth-n2000-s0"), help="Melon root of the bridge")
    parser.add_argument("--flickr", default=str(ROOT / "data/flickr8k-synth-n1500-s0"), help="photos to time")
    parser.add_argument("--captioner", default=None, help="captioner checkpoint (default: latest run under logs/)")
    parser.add_argument("--work", default="/tmp/mri_recommend_speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    playlists = read_playlists(args.melon, "train")
    query_tags = list(TagVocabulary.from_playlists(playlists).tags[:64])
    rows = {}

    start = time.perf_counter()
    index = write_random_index(work / "index", args.songs, args.dim, query_tags, "float32")
    rows["random index written (s)"] = time.perf_counter() - start
    rows["index size (MB)"] = sum(f.stat().st_size for f in index.folder.iterdir()) / 2**20
    half = write_random_index(work / "index16", args.songs, args.dim, query_tags, "float16")
    rows["float16 index size (MB)"] = sum(f.stat().st_size for f in half.folder.iterdir()) / 2**20

    weights = torch.from_numpy(np.random.default_rng(1).dirichlet(np.ones(len(query_tags)), 8).astype(np.float32))
    for q in (1, 8):
        vectors = torch.from_numpy(np.load(index.folder / "vectors.npy"))  # (N, dim) in memory: the bare baseline
        queries = index.queries(weights[:q])
        # each timed call binds this iteration's values as arguments (no closure over the loop's names)
        rows[f"bare torch matmul+topk, {q} query (ms)"] = 1e3 * median_seconds(
            functools.partial(bare_top10, queries, vectors), args.repeats)
        del vectors  # the partial above is gone by now: this frees the in-memory copy before timing the index
        rows[f"SongIndex.search float32, {q} query (ms)"] = 1e3 * median_seconds(
            functools.partial(index.search, weights[:q], 10), args.repeats)
        rows[f"SongIndex.search float16, {q} query (ms)"] = 1e3 * median_seconds(
            functools.partial(half.search, weights[:q], 10), args.repeats)
    rows["ratio index/bare, 1 query"] = (rows["SongIndex.search float32, 1 query (ms)"]
                                         / rows["bare torch matmul+topk, 1 query (ms)"])

    torch.manual_seed(0)
    store = sample_store(work / "features", args.build_sample)
    tower = TwoTowerNet(len(query_tags), dim=args.dim)
    start = time.perf_counter()
    SongIndex.build(work / "built", tower, store, query_tags, store.folder / "meta.json")
    per_song = (time.perf_counter() - start) / args.build_sample
    rows[f"index build, song tower (s, extrapolated from {args.build_sample} songs)"] = per_song * args.songs

    fusion = EarlyFusionNet(len(query_tags)).eval()
    mels = torch.from_numpy(store.standardized(slice(0, args.fusion_sample))).unsqueeze(1)
    with torch.inference_mode():
        t = median_seconds(lambda: fusion(torch.zeros(len(mels), dtype=torch.long), mels), 3)
    rows[f"early fusion, 1 tag x all songs (s, extrapolated from {args.fusion_sample} pairs)"] = (
        t / len(mels) * args.songs)

    try:
        captioner_ckpt = args.captioner or latest_checkpoint(ROOT / "logs", "captioner")
    except CheckpointError as err:  # what latest_checkpoint raises when no captioner run exists
        captioner_ckpt = f"none ({err}): no image latency"
    else:
        rows.update(photo_latency(captioner_ckpt, index, query_tags, args, rows))
    rows["resident memory now / peak while recommending (MB)"] = "{:.0f} / {:.0f}".format(*rss_mb())

    print(f"catalogue {args.songs} songs x {args.dim} dims, {args.threads} threads, captioner {captioner_ckpt}")
    for name, value in rows.items():
        print(f"{name:<82} {value:>12.3f}" if isinstance(value, float) else f"{name:<82} {value:>12}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
