"""Orchestration of `python preprocess.py`: a Melon root's mels -> the feature store, in parallel, shardable,
resumable."""
from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from mri.data.feature_parts import worker_map
from mri.data.features import FeatureSpec, StoreBuilder
from mri.data.melon import check_mel_root, read_song_ids
from mri.data.synthetic.melon import generate_melon
from mri.utils.atomic import write_text_atomically

log = logging.getLogger(__name__)


def preprocess(cfg: DictConfig) -> dict:
    """Featurise this run's parts (all, or one shard's) and merge them unless other shards are still to come.

    Returns a summary (also written to preprocess.json in the run folder): songs, parts, seconds, files/s,
    peak resident memory of this process and of its largest worker, and the store when it was merged.
    """
    data = cfg.data
    if data.get("generate"):
        generate_melon(data.root, **data.generate)
    root = check_mel_root(data.root)
    builder = StoreBuilder(root, FeatureSpec(**data.features), data.cache_dir, read_song_ids(root), cfg.part_size)
    summary = {"store": str(builder.folder), "songs": len(builder.song_ids)}
    if builder.built():
        log.info("mel features of %s are already built: %s", root, builder.folder)
        return _finish(cfg, {**summary, "already_built": True})
    if not cfg.merge:
        summary.update(_featurise(builder, cfg))
        if cfg.num_shards > 1:
            log.info("shard %d of %d done. When every shard is: python preprocess.py merge=true (same data settings)",
                     cfg.shard, cfg.num_shards)
            return _finish(cfg, summary)
    store = builder.merge()
    summary["explained_variance"] = store.meta["explained_variance"]
    summary["report"] = store.meta["report"]
    print(f"{len(store):,} of {len(builder.song_ids):,} songs -> {store.folder}\n"
          f"{builder.spec.mode} PCA keeps {100 * store.meta['explained_variance']['mean']:.1f}% of the variance "
          f"(per song: std {100 * store.meta['explained_variance']['std']:.1f}); {store.meta['report']}\n"
          f"bad files are listed in {store.folder / 'report.json'}")
    return _finish(cfg, summary)


def _featurise(builder: StoreBuilder, cfg: DictConfig) -> dict:
    """Run this shard's unfinished parts over worker processes with a progress bar; timings and memory."""
    workers = len(os.sched_getaffinity(0)) if cfg.workers is None else cfg.workers  # the CPUs this job may use
    builder.check_disk()
    if cfg.num_shards == 1:
        builder.workspace.clear_unfinished()
    shard_parts = range(cfg.shard, builder.n_parts, cfg.num_shards)
    todo = builder.todo(cfg.shard, cfg.num_shards)
    total = sum(len(builder.workspace.part_ids(builder.song_ids, p)) for p in shard_parts)
    remaining = sum(len(builder.workspace.part_ids(builder.song_ids, p)) for p in todo)
    log.info("%d of %d parts to featurise (shard %d of %d) with %d worker processes",
             len(todo), len(shard_parts), cfg.shard, cfg.num_shards, workers)
    start, worker_peak = time.perf_counter(), 0.0
    with worker_map(workers) as mapper, tqdm(total=total, initial=total - remaining, unit="file",
                                             desc="mel files", smoothing=0.1, dynamic_ncols=True) as bar:
        for done in builder.run(mapper, todo):
            bar.update(done.n_songs)
            worker_peak = max(worker_peak, done.peak_rss_mb)
    seconds = time.perf_counter() - start
    return {"parts": len(todo), "files": remaining, "seconds": seconds,
            "files_per_s": remaining / seconds if seconds else None, "workers": workers,
            "peak_rss_mb": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "largest_worker": worker_peak}}


def _finish(cfg: DictConfig, summary: dict) -> dict:
    write_text_atomically(Path(cfg.paths.output_dir) / "preprocess.json", json.dumps(summary, indent=1))
    return summary
