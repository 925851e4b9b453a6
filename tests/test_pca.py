"""PCA over the time axis: per-song against numpy's SVD, the global basis against a direct fit."""
import numpy as np
import pytest

from mri.data.pca import GlobalTimeBasis, per_song_pca


@pytest.fixture
def mels():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 48, 300)).cumsum(axis=-1)  # smooth in time, like a spectrogram


def test_per_song_pca_matches_svd(mels):
    feats, explained = per_song_pca(mels, 20)
    assert feats.shape == (6, 48, 20) and feats.dtype == np.float32
    for mel, f, e in zip(mels, feats, explained, strict=True):
        x = mel - mel.mean(axis=0, keepdims=True)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        np.testing.assert_allclose(np.abs(f), np.abs(u[:, :20] * s[:20]), rtol=1e-3, atol=1e-2)
        assert e == pytest.approx((s[:20] ** 2).sum() / (s**2).sum(), rel=1e-6)


def test_per_song_pca_signs_are_fixed(mels):
    feats, _ = per_song_pca(mels, 5)
    again, _ = per_song_pca(-mels, 5)  # flipping the input flips every component; fixed signs undo it
    np.testing.assert_allclose(feats, again, rtol=1e-4, atol=1e-3)
    peak = np.take_along_axis(feats, np.abs(feats).argmax(axis=1, keepdims=True), axis=1)
    assert (peak >= 0).all()


def test_per_song_pca_of_a_constant_mel_is_zero_with_full_variance():
    feats, explained = per_song_pca(np.full((1, 48, 50), -80.0), 20)
    assert not feats.any() and explained[0] == 1.0


def test_global_basis_equals_a_direct_fit_whatever_the_chunking(mels, tmp_path):
    rows = mels.reshape(-1, mels.shape[-1])
    centered = rows - rows.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    basis = GlobalTimeBasis(300)
    for chunk in np.array_split(mels, 3):
        basis.partial_fit(chunk)
    basis.finish(10)
    assert basis.explained_variance_ratio == pytest.approx((s[:10] ** 2).sum() / (s**2).sum(), rel=1e-6)
    np.testing.assert_allclose(np.abs(basis.components.T @ vt[:10].T), np.eye(10), atol=1e-6)
    feats, explained = basis.transform(mels)
    assert feats.shape == (6, 48, 10) and (explained > 0).all() and (explained <= 1).all()
    basis.save(tmp_path / "basis.npz")
    loaded = GlobalTimeBasis.load(tmp_path / "basis.npz")
    np.testing.assert_allclose(loaded.transform(mels)[0], feats)


def test_global_basis_needs_data():
    with pytest.raises(ValueError, match="at least one readable mel"):
        GlobalTimeBasis(10).finish(2)
