"""Distortion between raw and protected data: mean squared error and SNR."""

import numpy as np
from sklearn.utils._param_validation import validate_params

__all__ = ["mse", "snr_db"]


def _check_pair(X, X_protected):
    X = np.asarray(X, dtype=np.float64)
    Xp = np.asarray(X_protected, dtype=np.float64)
    if X.ndim < 2:
        raise ValueError(
            "X must hold one sample per row: (n_windows, n_timestamps[, n_channels]) "
            f"or images; got shape {X.shape}."
        )
    if X.shape != Xp.shape:
        raise ValueError(
            f"X and X_protected must have the same shape; got {X.shape} and {Xp.shape}. "
            "Distortion is only defined for protectors that keep the data's shape."
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty; at least one sample is required.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Xp))):
        raise ValueError("X and X_protected must not contain NaN or infinity.")
    axes = tuple(range(1, X.ndim))
    return X, Xp, axes


@validate_params(
    {"X": ["array-like"], "X_protected": ["array-like"], "average": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def mse(X, X_protected, *, average=True):
    """Mean squared error between raw and protected samples.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, ...)
        Raw samples (motion windows, or any array with samples along the first axis).
    X_protected : array-like of the same shape
        The protected samples.
    average : bool, default=True
        Return the mean over samples; ``False`` returns one value per sample.

    Returns
    -------
    mse : float or ndarray of shape (n_windows,)
        Mean over timestamps and channels of the squared difference; averaged over
        windows unless ``average=False``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import mse
    >>> mse(np.zeros((2, 4, 1)), np.ones((2, 4, 1)))
    1.0
    """
    X, Xp, axes = _check_pair(X, X_protected)
    per = np.mean((X - Xp) ** 2, axis=axes)
    return float(per.mean()) if average else per


@validate_params(
    {"X": ["array-like"], "X_protected": ["array-like"], "average": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def snr_db(X, X_protected, *, average=True):
    """Signal-to-noise ratio of protected samples, in decibels.

    ``10 * log10(sum(x ** 2) / sum((x - x_protected) ** 2))`` per sample, where the
    "noise" is the change made by the protector.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, ...)
        Raw samples. Standardise them first if channels have an offset (gravity), or the
        offset counts as signal.
    X_protected : array-like of the same shape
        The protected samples.
    average : bool, default=True
        Return the mean over samples; ``False`` returns one value per sample.

    Returns
    -------
    snr : float or ndarray of shape (n_windows,)
        In dB; the mean over windows of the per-window values unless ``average=False``.
        An unchanged window has ``+inf`` (so does the mean if any window is unchanged);
        an all-zero window that was changed has ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import snr_db
    >>> round(snr_db(np.ones((1, 4)), np.full((1, 4), 1.1)), 6)  # noise power 1 %
    20.0
    """
    X, Xp, axes = _check_pair(X, X_protected)
    signal = np.sum(X**2, axis=axes)
    noise = np.sum((X - Xp) ** 2, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = 10.0 * (np.log10(signal) - np.log10(noise))
    per = np.where((signal == 0) & (noise == 0), np.inf, per)
    return float(per.mean()) if average else per
