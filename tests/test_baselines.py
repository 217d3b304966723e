"""Signal-processing baselines: Downsampler, SSASmoother, GaussianNoise."""

import pickle

import numpy as np
import pytest
import sklearn
from scipy import signal

from sklearn_privacy.motion import Downsampler, GaussianNoise, SSASmoother
from sklearn_privacy.motion._baselines import _ssa_reference

FS = 50.0


def _sines(freqs, n=3, T=128):
    t = np.arange(T) / FS
    return np.stack([np.stack([np.sin(2 * np.pi * f * t) for f in freqs], axis=1)] * n)


def _band_power(x, f_lo, f_hi):
    freqs, power = signal.periodogram(x, fs=FS, axis=1)
    band = (freqs >= f_lo) & (freqs <= f_hi)
    return power[:, band].sum()


def test_downsampler_keeps_slow_motion_and_removes_fast_detail():
    # Frequencies on the FFT grid of a 128-sample window (k * 50/128 Hz), since FFT
    # resampling treats each window as periodic: 1.17 Hz (kept at 5 Hz) and 11.7 Hz.
    X = _sines([3 * FS / 128, 30 * FS / 128])
    Xt = Downsampler(target_rate=5).fit_transform(X)
    assert Xt.shape == X.shape and Xt.dtype == np.float64  # float64 in, float64 out
    np.testing.assert_allclose(Xt[:, :, 0], X[:, :, 0], atol=0.05)
    assert _band_power(Xt[:, :, 1:], 2.5, 25) < 1e-3 * _band_power(X[:, :, 1:], 2.5, 25)


def test_downsampler_without_restoring_length():
    X = _sines([1.0])
    ds = Downsampler(target_rate=10, restore_length=False).fit(X)
    assert ds.n_timestamps_out_ == 26 and ds.transform(X).shape == (3, 26, 1)


def test_downsampler_rejects_upsampling():
    with pytest.raises(ValueError, match="only lowers the rate"):
        Downsampler(target_rate=100).fit(_sines([1.0]))


@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_ssa_matches_per_window_svd_reference(n_components):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 64, 3)).cumsum(axis=1)
    Xt = SSASmoother(n_components=n_components).fit_transform(X)
    for i in range(5):
        for c in range(3):
            ref = _ssa_reference(X[i, :, c], 10, n_components)
            np.testing.assert_allclose(Xt[i, :, c], ref, rtol=1e-4, atol=1e-4)


def test_ssa_all_components_reconstruct_exactly():
    X = np.random.default_rng(1).normal(size=(4, 40, 2))
    np.testing.assert_allclose(
        SSASmoother(n_components=10).fit_transform(X), X, atol=1e-4
    )


def test_ssa_parameter_errors():
    X = np.zeros((2, 8, 1)) + np.arange(8)[None, :, None]
    with pytest.raises(ValueError, match="exceeds the window length"):
        SSASmoother(embedding_window=9).fit(X)
    with pytest.raises(ValueError, match="exceeds embedding_window"):
        SSASmoother(n_components=5, embedding_window=4).fit(X)


def test_gaussian_noise_scale_and_fresh_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=[1.0, 10.0], size=(400, 64, 2)).astype(np.float32)
    noise = GaussianNoise(sigma=0.5).fit(X)
    np.testing.assert_allclose(noise.scale_, [0.5, 5.0], rtol=0.02)
    a, b = noise.transform(X), noise.transform(X)
    assert not np.allclose(a, b)  # fresh noise on every call
    np.testing.assert_allclose((a - X).std(axis=(0, 1)), [0.5, 5.0], rtol=0.02)
    assert np.array_equal(GaussianNoise(sigma=0).fit_transform(X), X)


def test_gaussian_noise_cannot_be_regenerated_from_the_seed_or_a_pickle():
    # Regression: random_state seeded the noise, so anyone knowing the seed (or holding
    # the pickled model, which carried the generator) regenerated and subtracted it.
    X = np.random.default_rng(1).normal(size=(50, 32, 2)).astype(np.float32)
    fitted = GaussianNoise(sigma=0.5, random_state=0).fit(X)
    twin = GaussianNoise(sigma=0.5, random_state=0).fit(X)
    clone = pickle.loads(pickle.dumps(fitted))
    outputs = [fitted.transform(X), twin.transform(X), clone.transform(X),
               fitted.transform(X)]
    noises = [out - X for out in outputs]
    for i in range(len(noises)):
        for j in range(i):
            # Independent noises: their difference has sqrt(2) times their spread.
            ratio = (noises[i] - noises[j]).std() / noises[i].std()
            assert 1.3 < ratio < 1.5
    assert not any("rng" in key or "random" in key for key in vars(fitted) if key.endswith("_"))
    assert b"Generator" not in pickle.dumps(fitted)


def test_gaussian_noise_with_an_explicit_noise_seed_is_reproducible():
    X = np.random.default_rng(1).normal(size=(20, 32, 2)).astype(np.float32)
    a = GaussianNoise(noise_random_state=3).fit(X)
    b = pickle.loads(pickle.dumps(GaussianNoise(noise_random_state=3).fit(X)))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.transform(X), a.transform(X))
    assert not np.array_equal(a.transform(X), GaussianNoise(noise_random_state=4).fit(X).transform(X))
    with pytest.raises(ValueError, match="noise_random_state"):
        GaussianNoise(noise_random_state=-1).fit(X)


def test_gaussian_noise_statistics_do_not_overflow_on_large_values():
    # Regression: the channel std was computed in float32, whose squares overflow
    # from |x| ~ 2e19, so scale_ and every output were inf or NaN.
    X = np.random.default_rng(2).normal(scale=1e20, size=(10, 64, 1)).astype(np.float32)
    noise = GaussianNoise(sigma=0.5).fit(X)
    np.testing.assert_allclose(noise.scale_, 0.5 * X.astype(np.float64).std(), rtol=1e-6)
    Xt = noise.transform(X)
    assert np.isfinite(Xt).all()
    np.testing.assert_allclose((Xt.astype(np.float64) - X).std(), 0.5e20, rtol=0.05)


@pytest.mark.parametrize("protector", [
    Downsampler(), SSASmoother(), GaussianNoise(noise_random_state=0),
])
def test_pickle_round_trip_and_label_free(protector):
    X = _sines([1.0, 3.0], n=4)
    fitted = protector.fit(X)  # no labels needed
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.transform(X), fitted.transform(X))
    # Requested by default like every protector's (and ignored), so that pipelines
    # with routing accept sensitive_features whatever protector they hold.
    assert fitted.get_metadata_routing().fit.requests["sensitive_features"] is True


@pytest.mark.parametrize("protector", [
    Downsampler(), SSASmoother(), GaussianNoise(noise_random_state=0),
])
@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float64), (np.float32, np.float32), (np.float64, np.float64),
    (np.int64, np.float64),
])
def test_output_dtype_convention(protector, dtype, expected):
    # Regression: float16 input used to come back float32 (and float64 as float32).
    X = (10 * _sines([1.0, 3.0], n=3)).astype(dtype)
    assert protector.fit(X).transform(X).dtype == expected


@pytest.mark.parametrize("protector", [
    Downsampler(), SSASmoother(n_components=1), GaussianNoise(),
])
def test_readme_tour_pipeline_routes_sensitive_features(protector):
    # Regression: the label-free baselines did not request sensitive_features, so this
    # pipeline of the README raised "Pipeline.fit got unexpected argument(s)
    # {'sensitive_features'}" with routing enabled.
    from sklearn.pipeline import make_pipeline

    from sklearn_privacy.adversaries import TimeSeriesCNNClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 16, 2)).astype(np.float32)
    activity, person = np.repeat([0, 1], 12), np.tile([0, 1, 2], 8)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(protector, TimeSeriesCNNClassifier(
            n_filters=4, max_epochs=1, device="cpu", random_state=0))
        pipe.fit(X, activity, sensitive_features=person)
        assert pipe.predict(X).shape == (24,)


def _ssa_reference_windows(X, n_components, L=10):
    return np.stack([np.stack([_ssa_reference(x[:, c].astype(np.float64), L, n_components)
                               for c in range(X.shape[2])], axis=1) for x in X])


def _motion_like_windows(rng, n=24, T=128):
    """Magnitude-like windows: static ones (a constant plus tiny noise, so that
    lambda2 / lambda1 ~ 1e-6) and periodic ones (a sin/cos pair of nearly equal
    eigenvalues on top of the mean)."""
    t = np.arange(T) / FS
    static = 1.0 + 1e-3 * rng.normal(size=(n // 2, T, 2))
    freq = rng.uniform(1.5, 2.5, size=(n - n // 2, 1, 2))
    phase = rng.uniform(0, 2 * np.pi, size=freq.shape)
    periodic = (1.0 + 0.3 * np.sin(2 * np.pi * freq * t[None, :, None] + phase)
                + 0.02 * rng.normal(size=(n - n // 2, T, 2)))
    return np.concatenate([static, periodic])


@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_ssa_matches_reference_on_motion_like_windows(n_components):
    X = _motion_like_windows(np.random.default_rng(n_components)).astype(np.float32)
    Xt = SSASmoother(n_components=n_components).fit_transform(X)
    np.testing.assert_allclose(Xt, _ssa_reference_windows(X, n_components), rtol=1e-4,
                               atol=1e-5)


def test_ssa_nearly_equal_leading_eigenvalues():
    # A pure 10.04 Hz sinusoid: its two leading eigenvalues differ by 0.03 %, which
    # only an exact eigen-solver separates (yet far enough apart for the reference SVD
    # to be well defined).
    t = np.arange(128) / FS
    X = np.sin(2 * np.pi * np.array([10.04, 1.3])[:, None] * t)[:, :, None]
    X = np.concatenate([X, _motion_like_windows(np.random.default_rng(0), n=4)[:, :, :1]])
    X = X.astype(np.float32)
    Xt = SSASmoother(n_components=1).fit_transform(X)
    np.testing.assert_allclose(Xt, _ssa_reference_windows(X, 1), rtol=1e-4, atol=1e-5)


def _assert_close_to_svd_loop(Xt, X, n_components, L=10):
    """Within 1e-6 of each series' largest magnitude (float32 output: ~6e-8)."""
    ref = _ssa_reference_windows(X, n_components, L)
    scale = np.abs(X).max(axis=1, keepdims=True)
    assert np.all(np.abs(Xt - ref) <= 1e-6 * scale + 1e-30)


@pytest.mark.parametrize("n_components", [1, 2, 3, 5])
def test_ssa_compiled_kernel_matches_svd_loop_on_random_windows(n_components):
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal(size=(20, 128, 2)),
                        rng.normal(size=(20, 128, 2)).cumsum(axis=1),
                        1e3 * rng.normal(size=(5, 128, 2)) + 1e4,  # large offset
                        1e-20 * rng.normal(size=(5, 128, 2))]).astype(np.float32)  # tiny
    _assert_close_to_svd_loop(SSASmoother(n_components=n_components).fit_transform(X), X,
                              n_components)


@pytest.mark.parametrize("T, L", [(5, 2), (10, 10), (12, 10), (40, 20), (64, 3), (128, 17)])
def test_ssa_matches_svd_loop_for_any_window_and_embedding(T, L):
    X = np.random.default_rng(T + L).normal(size=(6, T, 2)).cumsum(axis=1).astype(np.float32)
    for n_components in sorted({1, 2, L}):
        Xt = SSASmoother(n_components=n_components, embedding_window=L).fit_transform(X)
        _assert_close_to_svd_loop(Xt, X, n_components, L)


@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_ssa_constant_and_zero_windows(n_components):
    # Rank 1: every eigenvalue but the first is 0 (repeated), the output is the input.
    X = np.array([0.0, 1.0, -2.5, 1e-30, 3e4], dtype=np.float32)[:, None, None] * np.ones(
        (1, 128, 2), dtype=np.float32)
    Xt = SSASmoother(n_components=n_components).fit_transform(X)
    np.testing.assert_allclose(Xt, X, rtol=1e-6, atol=0)
    _assert_close_to_svd_loop(Xt, X, n_components)


def test_ssa_repeated_singular_values():
    # cos(2 pi t / 5) with L = 10 and K = 100 (two and twenty periods): a rank-2
    # trajectory matrix with two exactly equal singular values; with a constant offset
    # the spectrum is (1000, 250, 250).
    t = np.arange(109)
    wave = np.cos(2 * np.pi * t / 5)
    X = np.stack([wave, 1 + wave], axis=1)[None].astype(np.float32)
    pair = SSASmoother(n_components=2).fit_transform(X[:, :, :1])
    np.testing.assert_allclose(pair, X[:, :, :1], atol=1e-5)  # the pair spans the wave
    offset = X[:, :, 1:]
    np.testing.assert_allclose(SSASmoother(n_components=1).fit_transform(offset), 1.0,
                               atol=1e-5)
    np.testing.assert_allclose(SSASmoother(n_components=3).fit_transform(offset), offset,
                               atol=1e-5)
    for n_components in (1, 3):
        _assert_close_to_svd_loop(SSASmoother(n_components=n_components).fit_transform(offset),
                                  offset, n_components)


def test_ssa_weak_components_stay_orthogonal_to_strong_ones():
    # A constant plus 1e-6 noise: all but the first component carry ~1e-13 of the
    # energy, close to the rounding level of the deflated matrices. Their eigenvectors
    # must still be orthogonal to the first one: with every component kept the output
    # is the input.
    X = (1.0 + 1e-6 * np.random.default_rng(3).normal(size=(8, 105, 1))).astype(np.float32)
    Xt = SSASmoother(n_components=20, embedding_window=20).fit_transform(X)
    np.testing.assert_allclose(Xt, X, rtol=0, atol=1e-6)
    _assert_close_to_svd_loop(Xt, X, 20, L=20)


def _periodic_and_random_windows(T):
    """Clean periodic windows (periods 3 to 16, with a harmonic, so that many
    trajectory matrices are rank-deficient, with repeated zero eigenvalues) and random
    walks."""
    t = np.arange(T)
    periods = np.arange(3, 17)[:, None]
    periodic = np.concatenate([
        np.sin(2 * np.pi * t / periods + 0.7 * periods)
        + 0.3 * np.sin(4 * np.pi * t / periods + 1.0),
        np.sin(2 * np.pi * t / periods),
    ])
    walks = np.random.default_rng(T).normal(size=(6, T)).cumsum(axis=1)
    return np.concatenate([periodic, walks])[:, :, None].astype(np.float32)


@pytest.mark.parametrize("T, embedding_windows", [
    (40, range(2, 41)),  # every valid embedding window
    (128, [32, 64, 128]),  # HAPT's window length, where NaN used to appear
])
def test_ssa_matches_svd_for_every_embedding_window_on_periodic_windows(T, embedding_windows):
    # Regression: low-rank trajectory matrices (clean periodic windows) made the
    # tridiagonal reduction reflect a column tail of ~1e-320, so beta = 1 / tail
    # overflowed and the output was NaN. The kernel must equal the per-window SVD
    # wherever that is well defined: a gap between the kept and the dropped singular
    # values, or dropped values that are negligible.
    X = _periodic_and_random_windows(T)
    series = X[:, :, 0].astype(np.float64)
    scale = np.abs(series).max(axis=1)
    for L in embedding_windows:
        # The reference, batched: SVD of every trajectory matrix, diagonal averaging.
        K = T - L + 1
        U, svals, Vt = np.linalg.svd(np.lib.stride_tricks.sliding_window_view(series, K, axis=1),
                                     full_matrices=False)
        time_index = (np.add.outer(np.arange(L), np.arange(K)).ravel()
                      + T * np.arange(len(X))[:, None])
        counts = np.bincount(time_index[0], minlength=T)
        padded = np.pad(svals, ((0, 0), (0, L + 1 - svals.shape[1])))  # K < L: zeros
        for n_components in sorted({1, 2, 3} & set(range(1, L + 1))):
            Xt = SSASmoother(n_components=n_components, embedding_window=L).fit_transform(X)
            assert np.isfinite(Xt).all(), f"NaN or inf for embedding_window={L}"
            k = min(n_components, svals.shape[1])
            recon = (U[:, :, :k] * svals[:, None, :k]) @ Vt[:, :k]
            ref = np.bincount(time_index.ravel(), weights=recon.ravel(),
                              minlength=len(X) * T).reshape(len(X), T) / counts
            kept, dropped = padded[:, n_components - 1], padded[:, n_components]
            defined = (kept - dropped > 1e-6 * svals[:, 0]) | (kept < 1e-6 * svals[:, 0])
            err = np.abs(Xt[:, :, 0] - ref).max(axis=1)[defined]
            assert np.all(err <= 1e-6 * scale[defined]), (L, n_components, err.max())
