"""Approximate (FAISS IVF / HNSW) against exact song search on millions of song-tower vectors, CPU.

    python experiments/ann_search/bench.py [--songs 10000000] [--kinds ivf,hnsw] [--work /work/data-faiss/ann_search]

The vectors are the trained song tower's outputs (the latest `python train.py model=squeezenet` run) on
generated songs, not noise:
1. `--tower-songs` new songs, each the generated catalogue's 48 x 20 features of one song mixed with another
   (weight 0.7-1) plus noise, run through the whole tower (backbone + head);
2. the catalogue's rows: the head (song_proj, then unit length) over those songs' backbone features mixed
   again and moved along their top principal directions. The whole tower runs at 190-2,000 songs/s on this
   CPU, so 10 million songs through it would take 1.5-15 hours; the head runs at millions per second.
The vectors are written to a memory-mapped SongIndex folder; queries are weighted tags as the bridge makes them
(one to four of the model's query tags). In one run: the exact search (SongIndex.exact_top_k, what
index.kind=exact runs) and each FAISS kind (SongIndex.top_k with candidates re-scored exactly) on the same
vectors and queries: recall@10 against exact, queries/s one query at a time and in a batch, build time,
structure bytes against the float32 vectors, and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mri.checkpoints import latest_checkpoint
from mri.data.features import MelFeatures
from mri.recommend.ann import SearchSettings
from mri.recommend.index import FORMAT_VERSION, SongIndex
from mri.recommend.pipeline import load_tag_mel

ROOT = Path(__file__).resolve().parents[2]


def peak_rss_gb() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmHWM"].split()[0]) / 2**20


def tower_songs(net, store: MelFeatures, n: int, rng: np.random.Generator, batch: int = 1024) -> torch.Tensor:
    """(n, num_features) backbone features of n new songs made from the generated catalogue's features."""
    base = torch.from_numpy(store.standardized(slice(None)))  # (S, 48, k)
    out = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            b = min(batch, n - s)
            first, second = rng.integers(len(base), size=b), rng.integers(len(base), size=b)
            a = torch.from_numpy(rng.uniform(0.7, 1.0, size=(b, 1, 1))).float()
            mels = a * base[first] + (1 - a) * base[second] + 0.3 * torch.randn(b, *base.shape[1:])
            out.append(net.song_features(mels.unsqueeze(1)))  # (b, num_features)
    return torch.cat(out)


def write_index(folder: Path, net, features: torch.Tensor, n: int, query_tags: list[str],
                rng: np.random.Generator, chunk: int = 1 << 17, directions: int = 32) -> SongIndex:
    """A SongIndex folder of n song vectors: the head over mixed and perturbed backbone features."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    centred = features - features.mean(0)
    _, sv, basis = torch.linalg.svd(centred, full_matrices=False)  # principal directions of the songs
    spread = (sv[:directions, None] / len(features) ** 0.5) * basis[:directions]  # (D, F): std along each
    dim = net.song_proj[-1].out_features
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, dim))
    torch.manual_seed(int(rng.integers(2**31)))
    with torch.inference_mode():
        for s in range(0, n, chunk):
            b = min(chunk, n - s)
            first, second = torch.randint(len(features), (b,)), torch.randint(len(features), (b,))
            a = torch.rand(b, 1) * 0.3 + 0.7
            h = a * features[first] + (1 - a) * features[second] + 0.3 * torch.randn(b, directions) @ spread
            vectors[s:s + b] = net.project_songs(h).numpy()  # (b, dim)
        tags = net.encode_tags(torch.arange(len(query_tags))) * net.scale
        bias = float(net.bias)
    vectors.flush()
    del vectors
    np.save(folder / "song_ids.npy", np.arange(n, dtype=np.int64))
    np.save(folder / "tags.npy", tags.numpy().astype(np.float32))
    meta = {"version": FORMAT_VERSION, "n_songs": n, "dim": dim, "dtype": "float32", "query_tags": query_tags,
            "bias": bias, "provenance": {"generated": "experiments/ann_search/bench.py"},
            "search": {"kind": "exact"}}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return SongIndex(folder)


def tag_queries(n: int, n_tags: int, rng: np.random.Generator) -> np.ndarray:
    """(n, T) weights summing to 1 over one to four tags, as the bridge's trails weigh them."""
    weights = np.zeros((n, n_tags), np.float32)
    for q in range(n):
        tags = rng.choice(n_tags, size=rng.integers(1, 5), replace=False)
        weights[q, tags] = rng.dirichlet(np.ones(len(tags)))
    return weights


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def one_at_a_time(fn, queries: torch.Tensor) -> float:
    """Queries/s answering one query per call (as the page and recommend.py do)."""
    fn(queries[:1])  # warm-up
    times = [timed(lambda q=q: fn(q[None]))[1] for q in queries]
    return 1 / statistics.median(times)


def recall(rows: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean share of the exact top-k each query's rows hold."""
    pairs = zip(rows.tolist(), truth.tolist(), strict=True)
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=10_000_000)
    parser.add_argument("--tower-songs", type=int, default=20_000, help="songs run through the whole tower")
    parser.add_argument("--kinds", default="ivf", help="comma-separated: ivf, hnsw")
    parser.add_argument("--nlist", type=int, default=4096)
    parser.add_argument("--nprobe", default="8,16,32", help="comma-separated nprobe values to search with")
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-search", default="64,128", help="comma-separated efSearch values")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200, help="queries for recall and batched queries/s")
    parser.add_argument("--exact-single", type=int, default=10, help="queries timed one by one, exact search")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ckpt", default=None, help="a model=squeezenet best.ckpt (default: the latest run)")
    parser.add_argument("--work", default=os.environ.get("MRI_DATA_DIR", str(ROOT / "data")) + "/ann_search")
    parser.add_argument("--out", default=None, help="JSON results (default: results-<songs>.json here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import faiss
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows: dict = {"songs": args.songs, "threads": args.threads, "load_average_start": os.getloadavg()}

    ckpt = Path(args.ckpt) if args.ckpt else latest_checkpoint(ROOT / "logs", "two_tower")
    module = load_tag_mel(ckpt)
    net = module.net.eval()
    data = json.loads((ckpt.resolve().parents[1] / "data.json").read_text(encoding="utf-8"))
    store = MelFeatures(data["features"])
    features, rows["tower_seconds"] = timed(lambda: tower_songs(net, store, args.tower_songs, rng))
    rows["tower_songs_per_second"] = args.tower_songs / rows["tower_seconds"]
    work = Path(args.work) / f"n{args.songs}"
    index, rows["vectors_seconds"] = timed(lambda: write_index(work, net, features, args.songs,
                                                               list(module.query_tags), rng))
    vector_bytes = index.vectors.nbytes
    rows["vector_bytes"] = vector_bytes
    print(f"{args.songs:,} song vectors ({vector_bytes / 1e9:.2f} GB float32) in {rows['vectors_seconds']:.0f} s; "
          f"whole tower {rows['tower_songs_per_second']:.0f} songs/s", flush=True)

    queries = index.queries(tag_queries(args.queries, len(index.query_tags), rng))  # (Q, dim)
    (_, truth), exact_batch = timed(lambda: index.exact_top_k(queries, 10))
    rows["exact"] = {"batch_qps": args.queries / exact_batch,
                     "single_qps": one_at_a_time(lambda q: index.exact_top_k(q, 10), queries[:args.exact_single])}
    print(f"exact: {rows['exact']['batch_qps']:.1f} queries/s in a batch of {args.queries}, "
          f"{rows['exact']['single_qps']:.2f} one at a time", flush=True)

    runs = []
    for kind in args.kinds.split(","):
        if kind == "ivf":
            build = SearchSettings(kind="ivf", nlist=args.nlist, candidates=args.candidates)
            searches = [("nprobe", int(v)) for v in args.nprobe.split(",")]
        else:
            build = SearchSettings(kind="hnsw", M=args.M, candidates=args.candidates)
            searches = [("ef_search", int(v)) for v in args.ef_search.split(",")]
        built, seconds = timed(lambda build=build: index.rebuild_search(build))
        for key, value in searches:
            built.settings = SearchSettings(**{**build.to_dict(), key: value})
            (_, found), batch = timed(lambda built=built: built.top_k(queries, 10))
            run = {"kind": kind, **built.meta["search"], key: value, "candidates": args.candidates,
                   "build_seconds": seconds, "bytes_over_vectors": built.meta["search"]["bytes"] / vector_bytes,
                   "recall@10": recall(found, truth), "batch_qps": args.queries / batch,
                   "single_qps": one_at_a_time(lambda q, built=built: built.top_k(q, 10), queries)}
            run["batch_speedup"] = run["batch_qps"] / rows["exact"]["batch_qps"]
            run["single_speedup"] = run["single_qps"] / rows["exact"]["single_qps"]
            runs.append(run)
            print(json.dumps(run), flush=True)
        del built
    rows["ann"] = runs
    rows["peak_rss_gb"] = peak_rss_gb()
    rows["load_average_end"] = os.getloadavg()
    out = Path(args.out or Path(__file__).parent / f"results-{args.songs}.json")
    out.write_text(json.dumps(rows, indent=1))
    print_table(rows)


def print_table(rows: dict) -> None:
    print(f"\n{rows['songs']:,} songs, {rows['threads']} threads, peak RSS {rows['peak_rss_gb']:.2f} GB, "
          f"load {rows['load_average_start'][0]:.1f} -> {rows['load_average_end'][0]:.1f}")
    print(f"{'search':<34} {'recall@10':>9} {'q/s batch':>10} {'x exact':>8} {'q/s single':>10} {'x exact':>8} "
          f"{'build s':>8} {'bytes/vec':>9}")
    e = rows["exact"]
    print(f"{'exact':<34} {1:>9.3f} {e['batch_qps']:>10.1f} {1:>8.1f} {e['single_qps']:>10.2f} {1:>8.1f}")
    for r in rows["ann"]:
        name = (f"ivf nlist={r['nlist']} nprobe={r['nprobe']}" if r["kind"] == "ivf"
                else f"hnsw M={r['M']} ef_search={r['ef_search']}")
        print(f"{name:<34} {r['recall@10']:>9.3f} {r['batch_qps']:>10.1f} {r['batch_speedup']:>8.1f} "
              f"{r['single_qps']:>10.1f} {r['single_speedup']:>8.1f} {r['build_seconds']:>8.0f} "
              f"{r['bytes_over_vectors']:>9.3f}")


if __name__ == "__main__":
    main()
