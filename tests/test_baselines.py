"""Signal-processing baselines: Downsampler, SSASmoother, GaussianNoise."""

import pickle

import numpy as np
import pytest
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
    assert Xt.shape == X.shape and Xt.dtype == np.float32
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


def test_gaussian_noise_scale_and_determinism():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=[1.0, 10.0], size=(400, 64, 2)).astype(np.float32)
    noise = GaussianNoise(sigma=0.5, random_state=0).fit(X)
    np.testing.assert_allclose(noise.scale_, [0.5, 5.0], rtol=0.02)
    a, b = noise.transform(X), noise.transform(X)
    assert not np.allclose(a, b)  # fresh noise on every call
    np.testing.assert_allclose((a - X).std(axis=(0, 1)), [0.5, 5.0], rtol=0.02)
    # ... and the sequence of calls is reproducible from random_state.
    again = GaussianNoise(sigma=0.5, random_state=0).fit(X)
    np.testing.assert_array_equal(again.transform(X), a)
    np.testing.assert_array_equal(again.transform(X), b)
    assert np.array_equal(GaussianNoise(sigma=0).fit_transform(X), X)


@pytest.mark.parametrize("protector", [Downsampler(), SSASmoother(), GaussianNoise(random_state=0)])
def test_pickle_round_trip_and_label_free(protector):
    X = _sines([1.0, 3.0], n=4)
    fitted = protector.fit(X)  # no labels needed
    clone = pickle.loads(pickle.dumps(fitted))  # the noise generator's state travels too
    np.testing.assert_array_equal(clone.transform(X), fitted.transform(X))
    assert fitted.get_metadata_routing().fit.requests["sensitive_features"] is False
