"""Image quality: PSNR, SSIM, CIEDE2000 and a no-reference naturalness distance.

Every function takes batches of images of shape ``(n, H, W, 3)``, uint8 in [0, 255] or
floats in [0, 1] (the library's image convention, see
:func:`sklearn_privacy.utils.check_images`); both sides are compared on the [0, 1] scale,
so a uint8 image and its float twin score the same. Full-reference metrics return the mean
over images, or one value per image with ``average=False``. Computation is vectorised over
the batch and bounded in memory by ``batch_size`` images at a time.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import gamma as gamma_fn

from ..image._color import ciede2000, rgb_to_lab_array
from ..utils._torch import check_batch_size
from ..utils.validation import check_images

__all__ = [
    "NaturalnessModel",
    "ciede2000_mean",
    "fit_naturalness_model",
    "naturalness_score",
    "psnr",
    "ssim",
]


def _check_pair(a, b):
    a, _ = check_images(a)
    b, _ = check_images(b)
    if a.shape != b.shape:
        raise ValueError(f"Image batches differ in shape: {a.shape} and {b.shape}.")
    return a, b


def _batches(n, batch_size):
    batch_size = check_batch_size(batch_size)
    return (slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size))


def _reduce(values, average):
    return float(np.mean(values)) if average else values


def psnr(images_true, images_test, *, average=True):
    """Peak signal-to-noise ratio in dB, with the peak at 1 (255 for uint8).

    ``PSNR = 10 log10(1 / MSE)`` per image, the MSE over all pixels and channels.

    Parameters
    ----------
    images_true, images_test : array-like of shape (n, H, W, 3)
        uint8 or float in [0, 1].
    average : bool, default=True
        Return the mean over images; otherwise one value per image.

    Returns
    -------
    psnr : float or ndarray of shape (n,)
        ``inf`` for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import psnr
    >>> a = np.zeros((1, 4, 4, 3)); b = np.full((1, 4, 4, 3), 0.1)
    >>> round(psnr(a, b), 6)
    20.0
    """
    a, b = _check_pair(images_true, images_test)
    diff = a.astype(np.float64) - b
    mse = np.mean(diff * diff, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / mse)
    return _reduce(values, average)


def _gaussian_kernel(sigma, truncate):
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _separable_filter(x, kernel):
    """Correlate the H and W axes of ``(n, H, W, c)`` with ``kernel``, reflected borders
    (scipy's ``mode="reflect"``: ``d c b a | a b c d``)."""
    x = ndimage.correlate1d(x, kernel, axis=1, mode="reflect")
    return ndimage.correlate1d(x, kernel, axis=2, mode="reflect")


def ssim(
    images_true,
    images_test,
    *,
    window="gaussian",
    sigma=1.5,
    win_size=7,
    k1=0.01,
    k2=0.03,
    average=True,
    batch_size=64,
):
    """Structural similarity (Wang, Bovik, Sheikh and Simoncelli, 2004), per channel.

    Local means, variances and the covariance are taken under a sliding window with
    reflected borders; the SSIM map is averaged after cropping ``(window side - 1) / 2``
    pixels at each border, then over the three channels.

    - ``window="gaussian"`` (default): Wang et al.'s setting, a Gaussian window of
      ``sigma`` 1.5 truncated at 3.5 sigma (11 x 11) with population (biased) variances.
      It equals scikit-image's ``structural_similarity(a, b, channel_axis=-1,
      data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
    - ``window="uniform"``: a ``win_size`` x ``win_size`` box with sample (unbiased)
      covariances: scikit-image's plain default.

    Parameters
    ----------
    images_true, images_test : array-like of shape (n, H, W, 3)
        uint8 or float in [0, 1] (data range 1 after scaling).
    window : {"gaussian", "uniform"}, default="gaussian"
    sigma : float, default=1.5
        Standard deviation of the Gaussian window.
    win_size : int, default=7
        Side of the uniform window (odd).
    k1, k2 : float, default=0.01, 0.03
        Stabilising constants, ``C1 = k1^2``, ``C2 = k2^2``.
    average : bool, default=True
        Return the mean over images; otherwise one value per image.
    batch_size : int, default=64
        Images processed at once (bounds memory).

    Returns
    -------
    ssim : float or ndarray of shape (n,)
        1 for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import ssim
    >>> x = np.random.default_rng(0).random((2, 16, 16, 3))
    >>> ssim(x, x)
    1.0
    """
    a, b = _check_pair(images_true, images_test)
    if window == "gaussian":
        kernel = _gaussian_kernel(sigma, 3.5)
        bias = 1.0
    elif window == "uniform":
        if win_size < 3 or win_size % 2 == 0:
            raise ValueError(f"win_size must be an odd integer >= 3; got {win_size}.")
        kernel = np.full(win_size, 1.0 / win_size)
        n_px = win_size**2
        bias = n_px / (n_px - 1.0)
    else:
        raise ValueError(f"window must be 'gaussian' or 'uniform'; got {window!r}.")
    side = kernel.size
    if min(a.shape[1:3]) < side:
        raise ValueError(
            f"Images of size {a.shape[1:3]} are smaller than the {side}x{side} SSIM "
            "window; use window='uniform' with a smaller win_size."
        )
    pad = (side - 1) // 2
    c1, c2 = k1**2, k2**2
    values = np.empty(a.shape[0])
    for batch in _batches(a.shape[0], batch_size):
        x = a[batch].astype(np.float64)
        y = b[batch].astype(np.float64)
        mu_x = _separable_filter(x, kernel)
        mu_y = _separable_filter(y, kernel)
        var_x = bias * (_separable_filter(x * x, kernel) - mu_x * mu_x)
        var_y = bias * (_separable_filter(y * y, kernel) - mu_y * mu_y)
        cov = bias * (_separable_filter(x * y, kernel) - mu_x * mu_y)
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        ssim_map = (numerator / denominator)[:, pad : x.shape[1] - pad, pad : x.shape[2] - pad]
        values[batch] = ssim_map.mean(axis=(1, 2, 3))
    return _reduce(values, average)


def ciede2000_mean(images_true, images_test, *, average=True, batch_size=64):
    """Mean CIEDE2000 colour difference per image (sRGB -> CIE L*a*b* D65).

    Parameters
    ----------
    images_true, images_test : array-like of shape (n, H, W, 3)
        uint8 or float in [0, 1].
    average : bool, default=True
        Return the mean over images; otherwise one value per image.
    batch_size : int, default=64
        Images processed at once.

    Returns
    -------
    delta_e : float or ndarray of shape (n,)
        0 for identical images; about 2.3 is a just-noticeable difference.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import ciede2000_mean
    >>> ciede2000_mean(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)))
    0.0
    """
    a, b = _check_pair(images_true, images_test)
    values = np.empty(a.shape[0])
    for batch in _batches(a.shape[0], batch_size):
        delta = ciede2000(rgb_to_lab_array(a[batch]), rgb_to_lab_array(b[batch]))
        values[batch] = delta.mean(axis=(1, 2))
    return _reduce(values, average)


# --------------------------------------------------------------------------------------
# No-reference naturalness: a NIQE-style distance between natural-scene statistics.
# --------------------------------------------------------------------------------------

# rho(alpha) = Gamma(2/alpha)^2 / (Gamma(1/alpha) Gamma(3/alpha)) increases with alpha: the
# moment ratio (E|x|)^2 / E[x^2] of a generalised Gaussian of shape alpha.
_ALPHA_GRID = np.arange(0.2, 10.0, 0.001)
_RHO_GRID = gamma_fn(2.0 / _ALPHA_GRID) ** 2 / (
    gamma_fn(1.0 / _ALPHA_GRID) * gamma_fn(3.0 / _ALPHA_GRID)
)
_EPS = 1e-12


def _shape_from_ratio(ratio):
    """Invert rho(alpha) on the grid (vectorised; clipped to the grid's range)."""
    return np.interp(ratio, _RHO_GRID, _ALPHA_GRID)


def _ggd_features(x):
    """Generalised Gaussian fit of ``x`` over its last axis: (shape, variance)."""
    variance = np.mean(x * x, axis=-1)
    ratio = np.mean(np.abs(x), axis=-1) ** 2 / (variance + _EPS)
    return _shape_from_ratio(ratio), variance


def _aggd_features(x):
    """Asymmetric generalised Gaussian fit over the last axis (BRISQUE's moment method):
    (shape, mean parameter eta, left variance, right variance)."""
    neg, pos = x < 0, x > 0
    left_var = np.sum(np.where(neg, x * x, 0.0), axis=-1) / np.maximum(neg.sum(axis=-1), 1)
    right_var = np.sum(np.where(pos, x * x, 0.0), axis=-1) / np.maximum(pos.sum(axis=-1), 1)
    gamma_hat = np.sqrt(left_var) / (np.sqrt(right_var) + _EPS)
    r_hat = np.mean(np.abs(x), axis=-1) ** 2 / (np.mean(x * x, axis=-1) + _EPS)
    big_r = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _shape_from_ratio(big_r)
    g1, g2, g3 = gamma_fn(1.0 / alpha), gamma_fn(2.0 / alpha), gamma_fn(3.0 / alpha)
    scale = np.sqrt(g1 / g3)
    eta = (np.sqrt(right_var) - np.sqrt(left_var)) * scale * g2 / g1
    return alpha, eta, left_var, right_var


def _luminance(images):
    """ITU-R BT.601 luma on the 0..255 scale, ``(n, H, W)``."""
    return 255.0 * (images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


def _mscn(gray):
    """Mean-subtracted contrast-normalised coefficients, Gaussian window sigma 7/6
    (7 x 7), constant 1 on the 0..255 scale; also returns the local deviation."""
    kernel = _gaussian_kernel(7.0 / 6.0, 3.0 / (7.0 / 6.0))  # radius 3 -> 7 x 7

    def smooth(x):
        x = ndimage.correlate1d(x, kernel, axis=1, mode="nearest")
        return ndimage.correlate1d(x, kernel, axis=2, mode="nearest")

    mu = smooth(gray)
    sq = smooth(gray * gray)
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (gray - mu) / (sigma + 1.0), sigma


def _patches(x, patch_size):
    """``(n, H, W)`` -> ``(n, n_patches, patch_size**2)`` non-overlapping patches (the
    incomplete border patches are dropped)."""
    n, h, w = x.shape
    ph, pw = h // patch_size, w // patch_size
    x = x[:, : ph * patch_size, : pw * patch_size]
    x = x.reshape(n, ph, patch_size, pw, patch_size).transpose(0, 1, 3, 2, 4)
    return x.reshape(n, ph * pw, patch_size * patch_size)


def _scale_features(gray, patch_size):
    """18 natural-scene statistics per patch at one scale, and each patch's sharpness."""
    mscn, sigma = _mscn(gray)
    # Products of neighbouring coefficients: horizontal, vertical, two diagonals. The
    # product map is padded by one zero row/column so the patch grid matches ``mscn``.
    pairs = [
        mscn[:, :, :-1] * mscn[:, :, 1:],
        mscn[:, :-1, :] * mscn[:, 1:, :],
        mscn[:, :-1, :-1] * mscn[:, 1:, 1:],
        mscn[:, :-1, 1:] * mscn[:, 1:, :-1],
    ]
    feats = list(_ggd_features(_patches(mscn, patch_size)))
    for pair in pairs:
        pad = ((0, 0), (0, gray.shape[1] - pair.shape[1]), (0, gray.shape[2] - pair.shape[2]))
        pair = np.pad(pair, pad, mode="edge")
        feats.extend(_aggd_features(_patches(pair, patch_size)))
    sharpness = _patches(sigma, patch_size).mean(axis=-1)
    return np.stack(feats, axis=-1), sharpness


def _downsample(gray):
    """Halve the resolution by 2 x 2 averaging."""
    n, h, w = gray.shape
    gray = gray[:, : h // 2 * 2, : w // 2 * 2]
    return gray.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _patch_features(images, patch_size):
    """``(n, n_patches, 36)`` features (18 per scale, 2 scales) and ``(n, n_patches)``
    sharpness of each patch at the first scale."""
    gray = _luminance(images)
    if min(gray.shape[1:]) < patch_size:
        raise ValueError(
            f"Images of size {gray.shape[1:]} are smaller than patch_size={patch_size}."
        )
    if patch_size < 8 or patch_size % 2:
        raise ValueError(f"patch_size must be an even integer >= 8; got {patch_size}.")
    fine, sharpness = _scale_features(gray, patch_size)
    coarse, _ = _scale_features(_downsample(gray), patch_size // 2)
    return np.concatenate([fine, coarse], axis=-1), sharpness


@dataclass(frozen=True)
class NaturalnessModel:
    """Multivariate Gaussian of patch statistics of a reference set of natural images.

    Returned by :func:`fit_naturalness_model`; pass it to :func:`naturalness_score`.

    Attributes
    ----------
    mean : ndarray of shape (36,)
    covariance : ndarray of shape (36, 36)
    patch_size : int
    n_patches : int
        Patches the model was fitted on.
    """

    mean: np.ndarray
    covariance: np.ndarray
    patch_size: int
    n_patches: int


def fit_naturalness_model(
    reference_images, *, patch_size=16, sharpness_quantile=0.1, batch_size=256
):
    """Fit the reference statistics of :func:`naturalness_score` on natural images.

    Parameters
    ----------
    reference_images : array-like of shape (n, H, W, 3)
        Clean images of the domain you will score (uint8 or float in [0, 1]). The score
        is a distance to *these* statistics, so use unprocessed images of the same kind
        and size as the protected ones (e.g. held-out clean CIFAR-10 images).
    patch_size : int, default=16
        Side of the square, non-overlapping patches (even, >= 8; NIQE uses 96 on large
        photographs; 16 suits 32 x 32 images).
    sharpness_quantile : float, default=0.1
        Reference patches whose mean local deviation falls below this quantile of all
        reference patches are dropped (flat patches carry little structure; NIQE keeps
        only sharp patches for the same reason). 0 keeps every patch.
    batch_size : int, default=256
        Images processed at once.

    Returns
    -------
    model : NaturalnessModel
    """
    images, _ = check_images(reference_images)
    if not 0.0 <= sharpness_quantile < 1.0:
        raise ValueError(f"sharpness_quantile must be in [0, 1); got {sharpness_quantile}.")
    feats, sharp = [], []
    for batch in _batches(images.shape[0], batch_size):
        f, s = _patch_features(images[batch], patch_size)
        feats.append(f.reshape(-1, f.shape[-1]))
        sharp.append(s.reshape(-1))
    feats = np.concatenate(feats)
    sharp = np.concatenate(sharp)
    if sharpness_quantile > 0:
        feats = feats[sharp >= np.quantile(sharp, sharpness_quantile)]
    if feats.shape[0] < 2:
        raise ValueError(
            "The reference set gives fewer than 2 patches; pass more or larger images "
            "or a smaller patch_size."
        )
    return NaturalnessModel(
        mean=feats.mean(axis=0),
        covariance=np.cov(feats, rowvar=False),
        patch_size=int(patch_size),
        n_patches=int(feats.shape[0]),
    )


def naturalness_score(images, reference, *, average=True, batch_size=256):
    """No-reference naturalness: a NIQE-style distance to natural-image statistics.

    Each image is cut into patches; each patch is described by 36 natural-scene
    statistics of its luminance (the BRISQUE/NIQE features: generalised-Gaussian shape
    and variance of the mean-subtracted contrast-normalised (MSCN) coefficients, and
    asymmetric generalised-Gaussian fits of the products of horizontally, vertically
    and diagonally neighbouring coefficients, at full and half resolution). A
    multivariate Gaussian is fitted to the image's patches and compared with the
    reference model's::

        D = sqrt((m_ref - m_img)^T pinv((S_ref + S_img) / 2) (m_ref - m_img))

    (with one patch per image, ``S_img`` is zero). Lower is more natural; clean images
    of the reference domain score low, noisy, blurred, over-sharpened or blocky ones
    higher.

    Limits, honestly: this is *not* the published NIQE (whose pristine model was fitted
    on a specific photo collection, at 96 x 96 patches, and is not shipped here). The
    score is a distance to whatever reference images you pass, so it measures "unlike
    these images" rather than human-judged quality; values are comparable only between
    runs that share the reference model, patch size and image size; small images give
    few patches, hence noisy per-image values (compare means over many images); and it
    ignores colour (luminance only).

    Parameters
    ----------
    images : array-like of shape (n, H, W, 3)
        uint8 or float in [0, 1].
    reference : NaturalnessModel or array-like of shape (m, H', W', 3)
        A model from :func:`fit_naturalness_model`, or reference images to fit one
        with its defaults.
    average : bool, default=True
        Return the mean over images; otherwise one value per image.
    batch_size : int, default=256
        Images processed at once.

    Returns
    -------
    score : float or ndarray of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import fit_naturalness_model, naturalness_score
    >>> rng = np.random.default_rng(0)
    >>> ref = fit_naturalness_model(rng.random((20, 32, 32, 3)))
    >>> naturalness_score(rng.random((2, 32, 32, 3)), ref) >= 0
    True
    """
    if isinstance(reference, NaturalnessModel):
        model = reference
    else:
        model = fit_naturalness_model(reference)
    images, _ = check_images(images)
    values = np.empty(images.shape[0])
    for batch in _batches(images.shape[0], batch_size):
        feats, _ = _patch_features(images[batch], model.patch_size)  # (b, p, 36)
        mean = feats.mean(axis=1)
        centred = feats - mean[:, None, :]
        n_patches = feats.shape[1]
        cov = (
            np.einsum("bpi,bpj->bij", centred, centred) / (n_patches - 1)
            if n_patches > 1
            else np.zeros((feats.shape[0], feats.shape[2], feats.shape[2]))
        )
        pooled = np.linalg.pinv((model.covariance[None] + cov) / 2.0, hermitian=True)
        diff = model.mean[None] - mean
        values[batch] = np.sqrt(np.maximum(np.einsum("bi,bij,bj->b", diff, pooled, diff), 0.0))
    return _reduce(values, average)
