"""The 48 x k feature store of a generated Melon root that has no mels (write_mels=False), written directly.

At the real size the mels would be 240 GB; their global-PCA features are computed here without them. A
generated mel is linear in its parts before its (rarely reached) clipping (mri.data.synthetic.melon.render_mel):

    mel[f, t] = a[f] + beat_bands[f] * beat[t] + swell[t] + noise[f, t],   noise ~ N(0, NOISE_DB^2) iid

so its projection on the time basis C (T, k) is a[f] * (1 C) + beat_bands[f] * (beat C) + (swell - mean) C +
noise[f] C, and noise[f] C ~ N(0, NOISE_DB^2 I_k) because C's columns are orthonormal: no mel needs to exist.
The basis itself is fitted as preprocessing fits it, on `spec.basis_songs` rendered mels. The explained
variance counts the noise's energy by its expectation. The store is the one preprocessing would write
(same folder, same files), so everything downstream reads it unchanged.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mri.data.features import FeatureSpec, MelFeatures, StoreBuilder, feature_moments
from mri.data.melon import N_FRAMES, N_MELS, MelReport, read_song_ids
from mri.data.pca import GlobalTimeBasis
from mri.data.synthetic import melon as synth
from mri.data.synthetic.atomic import MARKER
from mri.data.synthetic.themes import THEMES

log = logging.getLogger(__name__)

CHUNK = 4096  # songs per block: (CHUNK, T) float64 beats and swells, ~60 MB each
_FEATURES = 17  # random stream of the direct features (beside melon.py's streams)


def write_feature_store(root: str | os.PathLike, spec: FeatureSpec, cache_dir: str | os.PathLike) -> MelFeatures:
    """The feature store of a generated root without mels, written unless it exists (global PCA mode only)."""
    root = Path(root)
    params = json.loads((root / MARKER).read_text(encoding="utf-8"))
    if params["write_mels"]:
        raise ValueError(f"{root} has mels: build its features with `python preprocess.py`")
    if spec.mode != "global" or spec.n_frames != N_FRAMES:
        raise ValueError(f"{root} was generated without mels; its features can only be written directly in global "
                         f"PCA mode over {N_FRAMES} frames (data.features.mode=global), not {spec}")
    song_ids = read_song_ids(root)
    builder = StoreBuilder(root, spec, cache_dir, song_ids)
    if builder.built():
        return MelFeatures(builder.folder)
    print(f"{root} has no mels (240 GB at the real size): writing its {N_MELS} x {spec.n_components} feature store "
          f"directly to {builder.folder}, the global PCA of the mels it would have had")
    plan = synth._Plan(params["n_songs"], params["n_playlists"], params["seed"], params["secondary_rate"],
                       params["noise_rate"], params["quirk_rates"], False, params["mel_dtype"],
                       params.get("statistics", "themes"))
    basis = _fit_basis(plan, params["seed"], song_ids, spec)
    tmp = builder.folder.with_name(f"{builder.folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, root, plan, params["seed"], song_ids, spec, basis)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, builder.folder)
    return MelFeatures(builder.folder)


def _fit_basis(plan, seed: int, song_ids: np.ndarray, spec: FeatureSpec) -> GlobalTimeBasis:
    """The time basis fitted on rendered mels of evenly spaced songs, as StoreBuilder.fit_basis picks them."""
    basis = GlobalTimeBasis(spec.n_frames)
    ids = song_ids[::max(1, len(song_ids) // spec.basis_songs)][:spec.basis_songs]
    for chunk in np.array_split(ids, max(1, len(ids) // 64)):
        mels = np.stack([synth.render_mel(plan.mix(int(i)), synth._rng(seed, synth._MEL, int(i))) for i in chunk])
        basis.partial_fit(mels.astype(np.float16))  # what a mel file holds (float16 by default)
    return basis.finish(spec.n_components)


def _write(folder: Path, root: Path, plan, seed: int, song_ids: np.ndarray, spec: FeatureSpec,
           basis: GlobalTimeBasis) -> None:
    n, k = len(song_ids), spec.n_components
    features = np.lib.format.open_memmap(folder / "features.npy", "w+", np.float16, (n, N_MELS, k))
    explained = np.empty(n)
    total, squares = np.zeros((N_MELS, k)), np.zeros((N_MELS, k))  # float64 sums for the moments
    for s in range(0, n, CHUNK):
        ids = song_ids[s:s + CHUNK]
        block, explained[s:s + len(ids)] = _features(plan, ids, basis, synth._rng(seed, _FEATURES, s // CHUNK))
        features[s:s + len(ids)] = block
        total += block.sum(axis=0, dtype=np.float64)
        squares += np.square(block, dtype=np.float64).sum(axis=0)
    mean, std = feature_moments(total, squares, n)
    features.flush()
    del features
    np.save(folder / "song_ids.npy", song_ids)
    basis.save(folder / "basis.npz")
    report = MelReport()
    report.write(folder / "report.json")
    meta = {
        "spec": asdict(spec), "root": str(root.resolve()), "n_songs": n, "n_requested": n,
        "explained_variance": {"mean": float(explained.mean()), "std": float(explained.std()),
                               "min": float(explained.min()), "max": float(explained.max())},
        "report": report.summary(), "missing_folders": [],
        "mean": mean.tolist(), "std": std.tolist(),
        "basis_explained_variance": basis.explained_variance_ratio,
        "written_directly": "generated root without mels: features computed from the mels' generative model",
    }
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))


def _features(plan, ids: np.ndarray, basis: GlobalTimeBasis, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features (B, 48, k) and explained variance (B,) of songs `ids`, drawn as render_mel would make their mels."""
    b, t = len(ids), (np.arange(basis.mean.shape[0]) / synth.FRAME_RATE).astype(np.float32)  # (T,) seconds
    primary, secondary = plan.theme[ids], plan.secondary[ids]
    w2 = np.where(secondary >= 0, plan.weight[ids], 0.0)  # (B,) share of the second theme
    second = np.where(secondary >= 0, secondary, primary)
    profiles = np.stack([th.sound.profile() for th in THEMES])  # (themes, 48)
    tempo = np.array([th.sound.tempo for th in THEMES])
    dynamics = np.array([th.sound.dynamics for th in THEMES])
    knots = rng.normal(0.0, synth.TIMBRE_DB, (b, synth.TIMBRE_KNOTS))
    timbre = knots @ _interpolation(synth.TIMBRE_KNOTS, N_MELS)  # (B, 48)
    bands = synth.BASE_SPECTRUM + (1 - w2)[:, None] * profiles[primary] + w2[:, None] * profiles[second] + timbre
    level = synth.LEVEL_DB + rng.normal(0.0, synth.GAIN_DB, b)  # (B,)
    tempo, dynamics, w2 = tempo.astype(np.float32), dynamics.astype(np.float32), w2.astype(np.float32)
    phases = rng.random((b, 2), np.float32)  # (B, 2) beat phase of each theme's sound
    beat = ((1 - w2) * dynamics[primary])[:, None] * synth._pulses(t * tempo[primary, None] + phases[:, :1]) \
        + (w2 * dynamics[second])[:, None] * synth._pulses(t * tempo[second, None] + phases[:, 1:])
    beat -= beat.mean(axis=1, keepdims=True)  # (B, T) float32: the (B, T) arrays dominate the time
    period, phase = rng.uniform(6, 20, (b, 1)).astype(np.float32), rng.uniform(0, 2 * np.pi, (b, 1)).astype(np.float32)
    swell = synth.ENVELOPE_DB * np.sin((2 * np.pi) * t / period + phase)  # (B, T)
    rest = swell - basis.mean.astype(np.float32)  # (B, T)
    comps = basis.components.astype(np.float32)  # (T, k)
    a = level[:, None] + bands  # (B, 48) per-band constant
    ones_c = comps.sum(axis=0)  # (k,) = 1 C
    scores = (a[:, :, None] * ones_c + synth.BEAT_BANDS[None, :, None] * (beat @ comps)[:, None, :]
              + (rest @ comps)[:, None, :] + rng.normal(0.0, synth.NOISE_DB, (b, N_MELS, len(ones_c))))  # (B, 48, k)
    # energy of the centred mel: sum over bands of |a 1 + beat_bands beat + rest|^2, plus the noise's expectation
    t_len = len(t)
    energy = (t_len * (a**2).sum(1) + (synth.BEAT_BANDS**2).sum() * (beat**2).sum(1) + N_MELS * (rest**2).sum(1)
              + 2 * (a * synth.BEAT_BANDS).sum(1) * beat.sum(1) + 2 * a.sum(1) * rest.sum(1)
              + 2 * synth.BEAT_BANDS.sum() * (beat * rest).sum(1) + N_MELS * t_len * synth.NOISE_DB**2)
    kept = (scores**2).sum(axis=(1, 2))
    return scores.astype(np.float16), np.minimum(kept / energy, 1.0)


def _interpolation(n_knots: int, n_out: int) -> np.ndarray:
    """(n_knots, n_out): knots @ it is np.interp of the knots onto n_out evenly spaced points (as render_mel)."""
    x = np.linspace(0, n_knots - 1, n_out)
    return np.stack([np.interp(x, np.arange(n_knots), np.eye(n_knots)[j]) for j in range(n_knots)])
