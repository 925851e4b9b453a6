"""The tag side at the real Melon size (data=melon_full_synth: 707,989 songs, 148,826 playlists, ~30,000 tags), CPU.

    python experiments/full_scale/bench.py                     # every phase, each in its own process
    python experiments/full_scale/bench.py --phases setup,workers --steps 30

Each phase runs in a fresh child process and prints its wall time and the child's peak resident memory
(ru_maxrss); the loader phases also print the peak PSS and USS summed over the process and its DataLoader
workers (from /proc/<pid>/smaps_rollup: shared pages counted once, not once per process as RSS sums would).

Phases:
  generate   the data (skipped when it exists): generate_melon + the feature store written directly
  steps      the tag side step by step: song_meta.json, train.json, vocabulary, song x tag counts, tag similarity
             with its SVD, the songs' weighted tags, the song-disjoint split
  setup      TagMelDataModule.setup as train.py runs it (data=melon_full_synth)
  workers    the training loader with 0 and with 4 workers: peak PSS/USS of all processes
  train      training samples/s (forward, backward, AdamW step) at the default size and at full size, same net
  validate   a validation epoch over the full val split: song tower + TagRankingMetrics, and the baselines
  index      SongIndex.build over all 707,989 songs, and the tag side it keeps as build_index=true does (train.json
             read, the tag similarity computed as on a root no training has seen, the query tags' titles)
  serve      what serve.py does before it listens (serve.yaml on the index phase's checkpoint and index: models,
             index, bridge, app), and photo -> top-10 latency on the real photos of experiments/real_photos/
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

PHASES = ("generate", "steps", "setup", "workers", "train", "validate", "index", "serve")


def train_config(name: str, **overrides):
    """The config train.py composes for `model=squeezenet data=name` (paths from MRI_DATA_DIR)."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train.yaml", overrides=["model=squeezenet", f"data={name}", "paths.output_dir=/tmp",
                                                "data.report_dir=null",
                                                *(f"data.{k}={v}" for k, v in overrides.items())])


def data_config(name: str, **overrides) -> dict:
    """The data config train.py composes for `data=name`, as a plain dict."""
    from omegaconf import OmegaConf
    return OmegaConf.to_container(train_config(name, **overrides).data, resolve=True)


def datamodule(name: str, **overrides):
    dm = instantiate(data_config(name, **overrides))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def memory(pids: list[int]) -> tuple[float, float]:
    """(PSS, USS) in MB summed over these processes."""
    pss = uss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, value = line.split(":", 1) if ":" in line else ("", "")
                if name == "Pss":
                    pss += int(value.split()[0])
                elif name in ("Private_Clean", "Private_Dirty"):
                    uss += int(value.split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pss / 1024, uss / 1024


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.is_file() else []
    return [pid] + [p for k in kids for p in process_tree(k)]


class PeakMemory:
    """Samples the summed PSS/USS of this process and its children every 0.2 s; keeps the peaks."""

    def __enter__(self):
        self.pss = self.uss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            pss, uss = memory(process_tree(os.getpid()))
            self.pss, self.uss = max(self.pss, pss), max(self.uss, uss)
            self._stop.wait(0.2)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def report(**figures) -> None:
    print("RESULT " + json.dumps(figures), flush=True)


def timed(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"  {name:<34} {seconds:8.1f} s   peak RSS so far {peak_rss_mb():7.0f} MB", flush=True)
    return out, seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ phases


def phase_generate(args):
    cfg = data_config("melon_full_synth")
    if Path(cfg["root"], ".mri_complete").is_file():
        print(f"  {cfg['root']} exists: not regenerated")
    dm, seconds = timed("generate + feature store", datamodule, "melon_full_synth")
    report(seconds=seconds)


def phase_steps(args):
    from mri.data.features import MelFeatures
    from mri.data.melon import check_playlist_songs, read_playlists, read_song_ids
    from mri.data.pairs import SongTags, split_songs
    from mri.data.tags import PlaylistTags, TagSimilarity, TagVocabulary
    cfg = data_config("melon_full_synth")
    root = cfg["root"]
    ids, t_ids = timed("song_meta.json ids", read_song_ids, root)
    playlists, t_pl = timed("train.json playlists", read_playlists, root, "train")
    _, t_check = timed("playlist songs in song_meta", check_playlist_songs, root, "train", playlists, ids)
    vocab, t_vocab = timed("tag vocabulary", TagVocabulary.from_playlists, playlists, cfg["min_tag_count"])
    flat, t_flat = timed("playlists as arrays", PlaylistTags, playlists, vocab)
    counts, t_counts = timed("song x tag counts", flat.song_tag_counts, int(ids[-1]) + 1)
    sim, t_sim = timed(f"tag similarity + SVD ({cfg['similarity_dim']})", TagSimilarity, vocab, flat,
                       cfg["similarity_dim"], counts)
    matrix, t_matrix = timed("query x vocabulary similarity", sim.matrix, range(cfg["num_tags"]))
    song_tags, t_st = timed("songs' weighted tags", SongTags.from_playlists, flat, vocab, len(ids), counts)
    from mri.data.features import FeatureSpec, StoreBuilder
    store = MelFeatures(StoreBuilder(root, FeatureSpec(**cfg["features"]), cfg["cache_dir"], ids).folder)
    splits, t_split = timed("song-disjoint split", lambda: split_songs(song_tags.tagged(store.song_ids), 0.1, 0.1, 0))
    tag_counts = np.asarray(vocab.counts)
    all_vocab = TagVocabulary.from_playlists(playlists)
    all_counts = np.asarray(all_vocab.counts)
    lengths = np.diff(flat.ptr)
    tagged = [len(p.tags) for p in playlists if p.tags]
    report(songs=len(ids), playlists=len(playlists), distinct_tags=len(all_vocab), vocabulary=len(vocab),
           tags_on_1=int((all_counts == 1).sum()), tags_on_1_or_2=int((all_counts <= 2).sum()),
           tags_on_1000_plus=int((all_counts >= 1000).sum()), top_tags=list(all_vocab.tags[:10]),
           top_counts=all_counts[:10].tolist(), songs_per_playlist=[float(lengths.mean()), float(np.median(lengths)),
                                                                    int(lengths.max())],
           tags_per_tagged_playlist=[float(np.mean(tagged)), float(np.median(tagged)), int(max(tagged))],
           songs_in_train_playlists=int((song_tags.popularity > 0).sum()), pairs=int(counts.nnz),
           song_tag_occurrences=int(counts.sum()), split={k: len(v) for k, v in splits.items()},
           query_tags_kept=int((tag_counts >= cfg["min_tag_count"]).sum()), sim_shape=list(matrix.shape),
           seconds={"song_meta": t_ids, "train_json": t_pl, "check": t_check, "vocabulary": t_vocab,
                    "arrays": t_flat, "counts": t_counts, "similarity_svd": t_sim, "sim_matrix": t_matrix,
                    "song_tags": t_st, "split": t_split}, peak_rss_mb=peak_rss_mb())


def phase_setup(args):
    dm, seconds = timed("TagMelDataModule.setup", datamodule, "melon_full_synth")
    report(seconds=seconds, peak_rss_mb=peak_rss_mb(), songs={k: len(v) for k, v in dm.splits.items()},
           query_tags=len(dm.query_tags), vocabulary=len(dm.vocab))


def phase_workers(args):
    out = {}
    for workers in (0, 4):
        dm = datamodule("melon_full_synth", num_workers=workers, batch_size=64, train_batches="songs")
        with PeakMemory() as peak:
            loader = dm.train_dataloader()
            start = time.perf_counter()
            for step, _ in enumerate(loader):
                if step + 1 == args.steps * 4:
                    break
            seconds = time.perf_counter() - start
            time.sleep(0.5)
        del loader
        out[workers] = {"pss_mb": peak.pss, "uss_mb": peak.uss, "batches_per_s": args.steps * 4 / seconds}
        print(f"  {workers} workers: peak PSS {peak.pss:.0f} MB, USS {peak.uss:.0f} MB (all processes), "
              f"{out[workers]['batches_per_s']:.1f} batches/s", flush=True)
        del dm
    report(workers=out, pss_ratio=out[4]["pss_mb"] / out[0]["pss_mb"])


def train_rate(name: str, steps: int, **overrides) -> float:
    """Training samples/s of model=squeezenet's net, loss and optimiser on data=name (num_workers=0)."""
    from mri.models.tag_mel import TwoTowerNet
    from mri.models.tag_mel_module import batch_loss
    dm = datamodule(name, num_workers=0, batch_size=64, train_batches="songs", **overrides)
    torch.manual_seed(0)
    net = TwoTowerNet(num_tags=len(dm.query_tags), backbone="squeezenet1_1", dim=64, dropout=0.1).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    batches, n, start = iter(dm.train_dataloader()), 0, None
    for step in range(steps + 3):
        if step == 3:  # warm-up steps are not timed
            start, n = time.perf_counter(), 0
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(dm.train_dataloader())
            batch = next(batches)
        loss = batch_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(batch[-1])
    return n / (time.perf_counter() - start)


def phase_train(args):
    rates = {}
    for label, name, overrides in (("default (2,000 songs, 64 tags)", "tag_mel", {}),
                                   ("full (707,989 songs, 64 tags)", "melon_full_synth", {"num_tags": 64}),
                                   ("default again", "tag_mel", {}),
                                   ("full, 1,000 tags (data=melon's)", "melon_full_synth", {})):
        rates[label] = train_rate(name, args.steps, **overrides)
        print(f"  {label:<34} {rates[label]:8.1f} samples/s", flush=True)
    default = (rates["default (2,000 songs, 64 tags)"] + rates["default again"]) / 2
    report(samples_per_s=rates, full_over_default=rates["full (707,989 songs, 64 tags)"] / default)


def phase_validate(args):
    from mri.metrics.ranking import TagRankingMetrics, popularity_ranking, random_ranking
    from mri.models.tag_mel import TwoTowerNet
    dm = datamodule("melon_full_synth")
    torch.manual_seed(0)
    net = TwoTowerNet(num_tags=len(dm.query_tags), backbone="squeezenet1_1", dim=64, dropout=0.1).eval()
    metrics = TagRankingMetrics(10)
    start = time.perf_counter()
    tags = torch.arange(len(dm.query_tags))
    with torch.inference_mode():
        for mels, target, index in dm.val_dataloader():
            metrics.update(net.score_matrix(tags, mels), target.T, index)  # (T, B)
    t_forward = time.perf_counter() - start
    values, t_metrics = timed("model's metrics", metrics.compute)
    _, target, index = metrics.assembled()
    _, t_random = timed("random ranking (expected)", random_ranking, target)
    _, t_pop = timed("popularity ranking", popularity_ranking, target, torch.from_numpy(dm.popularity("val")))
    print(f"  songs x tags {tuple(target.shape)}: forward {t_forward:.1f} s, metrics {t_metrics:.1f} s")
    report(shape=list(target.shape), forward_s=t_forward, metrics_s=t_metrics, random_s=t_random,
           popularity_s=t_pop, epoch_s=t_forward + t_metrics, first_epoch_s=t_forward + t_metrics + t_random + t_pop,
           peak_rss_mb=peak_rss_mb(), values={k: float(v) for k, v in values.items()})


def net_and_checkpoint(dm, folder: Path):
    """model=squeezenet after one training step on the full-size data, saved by Lightning as train.py saves it
    (the index and serve.py read its query tags and data facts); index build and serving cost do not depend
    on how trained the weights are."""
    import lightning as L
    torch.manual_seed(0)
    module = instantiate(train_config("melon_full_synth").model)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(folder / "two_tower.ckpt")
    return module.net, folder / "two_tower.ckpt"  # SongIndex.build sets it for inference


def phase_index(args):
    from mri.recommend.index import SongIndex
    from mri.recommend.tag_side import TagSide, TagSideSettings
    dm = datamodule("melon_full_synth")
    net, ckpt = net_and_checkpoint(dm, Path(args.work))
    index, seconds = timed("SongIndex.build", SongIndex.build, Path(args.work) / "song_index", net, dm.store,
                           dm.query_tags, ckpt)
    settings = TagSideSettings.of(dm.hparams, None)  # as build_index keeps it, the similarity computed (no cache)
    side, t_read = timed("tag side (train.json, similarity, titles)", TagSide.read, dm.root, dm.query_tags, settings)
    _, t_write = timed("tag side kept in the index", side.write, index.folder, dm.root, dm.query_tags, settings)
    report(seconds=seconds, tag_side_seconds=t_read + t_write, songs=len(index), peak_rss_mb=peak_rss_mb())


def phase_serve(args):
    from mri.serve.command import app_from_config
    from mri.utils.config import compose_config
    work = Path(args.work)
    if not (work / "song_index" / "meta.json").is_file():
        raise SystemExit("run the index phase first")
    overrides = [f"tag_mel_ckpt={work / 'two_tower.ckpt'}", f"index_dir={work / 'song_index'}"]
    overrides += [f"captioner_ckpt={args.captioner}"] if args.captioner else []
    cfg = compose_config("serve", overrides, work / "serve_run", os.environ.get("MRI_DATA_DIR", ROOT / "data"))
    start = time.perf_counter()
    app = app_from_config(cfg)  # what serve.py does before it listens
    t_ready = time.perf_counter() - start
    print(f"  serve.py ready (models, index, bridge, app) {t_ready:.1f} s; peak RSS {peak_rss_mb():.0f} MB", flush=True)
    rec = app.state.recommender
    photos = sorted((ROOT / "experiments" / "real_photos" / "photos").glob("*.jpg"))[:args.photos]
    list(rec.recommend(photos[:2], k=10))  # warm-up
    latencies = []
    for path in photos:
        start = time.perf_counter()
        list(rec.recommend([path], k=10))
        latencies.append(time.perf_counter() - start)
    trail = next(iter(rec.recommend(photos[:1]))).trail
    songs_only = []
    for _ in photos:
        start = time.perf_counter()
        rec.songs(trail, 10)
        songs_only.append(time.perf_counter() - start)
    print(f"  photo -> top-10 median {1000 * statistics.median(latencies):.1f} ms over {len(photos)} real photos; "
          f"tags -> top-10 median {1000 * statistics.median(songs_only):.1f} ms", flush=True)
    report(ready_s=t_ready, photo_top10_median_ms=1000 * statistics.median(latencies),
           photo_top10_p90_ms=1000 * float(np.quantile(latencies, 0.9)),
           tags_to_top10_median_ms=1000 * statistics.median(songs_only), photos=len(photos), peak_rss_mb=peak_rss_mb())


# ------------------------------------------------------------------------------------------------ driver


def run_child(phase: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--steps", str(args.steps), "--work", args.work,
           "--photos", str(args.photos)] + (["--captioner", args.captioner] if args.captioner else [])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = {}
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        else:
            print(line, end="", flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result.update(phase=phase, wall_s=time.perf_counter() - start, child_peak_rss_mb=usage.ru_maxrss / 1024,
                  returncode=proc.returncode)
    print(f"== {phase}: {result['wall_s']:.1f} s wall, child peak RSS {result['child_peak_rss_mb']:.0f} MB, "
          f"exit {proc.returncode}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per setting")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--work", default="/tmp/mri_full_scale")
    parser.add_argument("--captioner", default=None, help="captioner checkpoint for the serve phase")
    parser.add_argument("--out", default=None, help="write every phase's figures to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.child:
        globals()[f"phase_{args.child}"](args)
        return
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()}; MRI_DATA_DIR={os.environ.get('MRI_DATA_DIR')}")
    results = [run_child(phase, args) for phase in args.phases.split(",")]
    print(f"load average at the end {os.getloadavg()}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
