"""Image quality metrics: PSNR, SSIM, CIEDE2000 and the no-reference naturalness score."""

import numpy as np
import pytest
from scipy import ndimage

from sklearn_privacy.image import lab_to_rgb_array
from sklearn_privacy.metrics import (
    NaturalnessModel,
    ciede2000_mean,
    fit_naturalness_model,
    naturalness_score,
    psnr,
    ssim,
)
from sklearn_privacy.metrics._image_quality import _aggd_features, _ggd_features


# -- PSNR --------------------------------------------------------------------------------
def test_psnr_hand_computed_values():
    a = np.zeros((2, 4, 5, 3))
    b = np.full((2, 4, 5, 3), 0.1)
    b[1] = 0.2
    # MSE 0.01 -> 20 dB, MSE 0.04 -> 10 log10(25) dB.
    np.testing.assert_allclose(psnr(a, b, average=False), [20.0, 10 * np.log10(25.0)], rtol=1e-6)
    assert psnr(a, b) == pytest.approx((20.0 + 10 * np.log10(25.0)) / 2, rel=1e-6)
    # uint8 images are read on the [0, 1] scale: 51 / 255 = 0.2.
    u = np.full((1, 4, 5, 3), 51, dtype=np.uint8)
    assert psnr(np.zeros_like(u), u) == pytest.approx(10 * np.log10(25.0), rel=1e-6)
    assert psnr(u, u) == np.inf


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 5, 3)))


# -- SSIM --------------------------------------------------------------------------------
def _ssim_reference(x, y, window):
    """Straightforward SSIM of one (H, W, 3) pair: explicit windows, pixel by pixel."""
    if window == "gaussian":
        t = np.arange(-5, 6)
        g = np.exp(-(t**2) / (2 * 1.5**2))
        w = np.outer(g, g) / np.outer(g, g).sum()
        unbias = 1.0
    else:
        w = np.full((7, 7), 1 / 49)
        unbias = 49 / 48
    r = w.shape[0] // 2
    c1, c2 = 0.01**2, 0.03**2
    per_channel = []
    for c in range(3):
        vals = []
        for i in range(r, x.shape[0] - r):
            for j in range(r, x.shape[1] - r):
                px = x[i - r : i + r + 1, j - r : j + r + 1, c]
                py = y[i - r : i + r + 1, j - r : j + r + 1, c]
                mx, my = (w * px).sum(), (w * py).sum()
                vx = unbias * (w * (px - mx) ** 2).sum()
                vy = unbias * (w * (py - my) ** 2).sum()
                cxy = unbias * (w * (px - mx) * (py - my)).sum()
                vals.append(
                    (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                )
        per_channel.append(np.mean(vals))
    return np.mean(per_channel)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_matches_a_direct_reference(window):
    rng = np.random.default_rng(0)
    a = rng.random((2, 14, 13, 3))
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1)
    # Images in float32 precision, as the metric reads them.
    a, b = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    expected = [_ssim_reference(a[i], b[i], window) for i in range(2)]
    np.testing.assert_allclose(ssim(a, b, window=window, average=False), expected, atol=1e-6)


def test_ssim_properties():
    rng = np.random.default_rng(1)
    a = rng.random((3, 16, 16, 3))
    noisy = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, noisy) == pytest.approx(ssim(noisy, a))
    assert ssim(a, noisy) < 0.9
    # uint8 and float versions of the same images agree; batching does not matter.
    u, v = (a * 255).round().astype(np.uint8), (noisy * 255).round().astype(np.uint8)
    np.testing.assert_allclose(
        ssim(u, v, average=False),
        ssim(u / 255.0, v / 255.0, average=False, batch_size=1),
        atol=1e-6,
    )


def test_ssim_rejects_small_images_and_bad_windows():
    x = np.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(x, x)
    assert ssim(x, x, window="uniform", win_size=5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, window="uniform", win_size=4)
    with pytest.raises(ValueError, match="window"):
        ssim(x, x, window="box")


# -- CIEDE2000 ---------------------------------------------------------------------------
def test_ciede2000_mean_on_published_pairs():
    # Sharma, Wu and Dalal (2005), pairs 7 and 11 (both inside the sRGB gamut).
    lab1 = np.array([[50.0, 0.0, 0.0], [50.0, 2.49, -0.001]])
    lab2 = np.array([[50.0, -1.0, 2.0], [50.0, -2.49, 0.0011]])
    rgb1, rgb2 = lab_to_rgb_array(lab1), lab_to_rgb_array(lab2)
    a = np.broadcast_to(rgb1[:, None, None, :], (2, 3, 4, 3))
    b = np.broadcast_to(rgb2[:, None, None, :], (2, 3, 4, 3))
    np.testing.assert_allclose(ciede2000_mean(a, b, average=False), [2.3669, 7.2195], atol=2e-3)
    assert ciede2000_mean(a, a) == pytest.approx(0.0, abs=1e-6)
    # The mean over pixels: half the pixels changed -> half the difference.
    half = a.copy()
    half[:, :, :2] = b[:, :, :2]
    np.testing.assert_allclose(
        ciede2000_mean(a, half, average=False), [2.3669 / 2, 7.2195 / 2], atol=2e-3
    )


# -- naturalness -------------------------------------------------------------------------
def _natural_like(n, size, seed):
    """Images with a 1/f amplitude spectrum (the statistics of natural scenes)."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    f[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((n, 3, size, size))) / f
    img = np.real(np.fft.ifft2(spectrum)).transpose(0, 2, 3, 1)
    img = img + img.mean(axis=-1, keepdims=True)  # correlated colour channels
    lo, hi = img.min(axis=(1, 2, 3), keepdims=True), img.max(axis=(1, 2, 3), keepdims=True)
    return (img - lo) / (hi - lo)


def test_ggd_and_aggd_fits_recover_known_shapes():
    rng = np.random.default_rng(0)
    gauss = rng.standard_normal(200_000)
    laplace = rng.laplace(size=200_000)
    shape, variance = _ggd_features(np.stack([gauss, laplace]))
    np.testing.assert_allclose(shape, [2.0, 1.0], atol=0.03)
    np.testing.assert_allclose(variance, [1.0, 2.0], rtol=0.02)
    skewed = np.where(gauss < 0, 2 * gauss, gauss)
    alpha, eta, left, right = _aggd_features(np.stack([gauss, skewed]))
    assert alpha[0] == pytest.approx(2.0, abs=0.03)
    assert abs(eta[0]) < 0.02
    np.testing.assert_allclose([left[0], right[0]], [1.0, 1.0], rtol=0.02)
    np.testing.assert_allclose([left[1], right[1]], [4.0, 1.0], rtol=0.02)
    assert eta[1] < -0.5  # heavier left side


def test_naturalness_score_ranks_distorted_images_worse():
    reference = _natural_like(60, 32, seed=0)
    clean = _natural_like(12, 32, seed=1)
    rng = np.random.default_rng(2)
    noisy = np.clip(clean + 0.08 * rng.standard_normal(clean.shape), 0, 1)
    blocky = np.repeat(np.repeat(clean[:, ::4, ::4], 4, axis=1), 4, axis=2)
    blurred = ndimage.gaussian_filter(clean, (0, 1.5, 1.5, 0))
    model = fit_naturalness_model(reference, patch_size=16)
    assert isinstance(model, NaturalnessModel)
    assert model.mean.shape == (36,) and model.covariance.shape == (36, 36)
    s_clean = naturalness_score(clean, model)
    # Measured: clean 4.3, noisy 6.0, blocky 40, blurred 52 (32 x 32 images, 4 patches).
    assert naturalness_score(noisy, model) > 1.2 * s_clean
    assert naturalness_score(blocky, model) > 3 * s_clean
    assert naturalness_score(blurred, model) > 3 * s_clean
    per_image = naturalness_score(clean, model, average=False)
    assert per_image.shape == (12,) and np.all(per_image >= 0)
    # uint8 in, same statistics (up to rounding); reference images fit a model on the fly.
    u = (clean * 255).round().astype(np.uint8)
    assert naturalness_score(u, model) == pytest.approx(s_clean, rel=0.05)
    assert naturalness_score(clean, reference) == pytest.approx(
        naturalness_score(clean, fit_naturalness_model(reference)), rel=1e-9
    )


def test_naturalness_rejects_bad_input():
    with pytest.raises(ValueError, match="smaller than patch_size"):
        fit_naturalness_model(np.zeros((2, 8, 8, 3)), patch_size=16)
    with pytest.raises(ValueError, match="patch_size"):
        fit_naturalness_model(np.zeros((2, 32, 32, 3)), patch_size=7)
    with pytest.raises(ValueError, match="fewer than 2 patches"):
        fit_naturalness_model(np.zeros((1, 16, 16, 3)), patch_size=16, sharpness_quantile=0)
