"""Input validation for motion windows and images."""

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "check_images",
    "check_motion_windows",
    "restore_motion_layout",
    "validate_motion_windows",
]


def _reject_empty_and_nonfinite(X, what):
    if X.shape[0] == 0:
        raise ValueError(f"Found an empty {what} array with shape {X.shape}; at least one sample is required.")
    if X.size == 0:
        raise ValueError(f"Found a {what} array with a zero-sized dimension: shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"Input {what} contains NaN or infinity.")


def check_motion_windows(X, *, dtype=np.float32, min_timestamps=1):
    """Validate motion windows and return them as ``(n, T, d)``.

    Parameters
    ----------
    X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
        tslearn's layout. 2-D input is read as one channel.
    dtype : numpy dtype, default=np.float32
        Output dtype.
    min_timestamps : int, default=1
        Smallest window length the caller can handle.

    Returns
    -------
    X : ndarray of shape (n_windows, n_timestamps, n_channels)

    Raises
    ------
    ValueError
        On empty input, NaN or infinity, non-numeric values, or a number of
        dimensions other than 2 or 3.
    """
    # check_array gives scikit-learn's own messages for sparse, complex, object, 1-D,
    # empty and non-finite input.
    X = check_array(
        X, accept_sparse=False, dtype=dtype, allow_nd=True, ensure_all_finite=True,
        input_name="X",
    )
    if X.ndim > 3:
        raise ValueError(
            "Motion windows must be a 3-D array (n_windows, n_timestamps, n_channels) "
            f"or a 2-D array (n_windows, n_timestamps); got ndim={X.ndim} with shape "
            f"{X.shape}."
        )
    if X.ndim == 2:
        X = X[:, :, np.newaxis]
    _reject_empty_and_nonfinite(X, "motion windows")
    if X.shape[1] < min_timestamps:
        raise ValueError(
            f"Motion windows need at least {min_timestamps} timestamps; got shape {X.shape}."
        )
    return X


def validate_motion_windows(estimator, X, *, reset, dtype=np.float32):
    """Validate motion windows for ``estimator`` and return them as ``(n, T, d)``.

    On ``reset`` it records ``n_timestamps_in_``, ``n_channels_in_`` and
    ``n_features_in_ = T * d`` (the flattened width, so scikit-learn's 2-D conventions
    hold); otherwise it checks the window shape against them, worded like scikit-learn's
    own check so tools that parse that message still work.
    """
    X = check_motion_windows(X, dtype=dtype)
    n_timestamps, n_channels = X.shape[1:]
    if reset:
        estimator.n_timestamps_in_ = n_timestamps
        estimator.n_channels_in_ = n_channels
        estimator.n_features_in_ = n_timestamps * n_channels
        return X
    check_is_fitted(estimator)
    if (n_timestamps, n_channels) != (estimator.n_timestamps_in_, estimator.n_channels_in_):
        raise ValueError(
            f"X has {n_timestamps * n_channels} features, but {type(estimator).__name__} "
            f"is expecting {estimator.n_features_in_} features as input: windows of shape "
            f"({n_timestamps}, {n_channels}) were given, ({estimator.n_timestamps_in_}, "
            f"{estimator.n_channels_in_}) expected."
        )
    return X


def restore_motion_layout(Xt, X_in):
    """Give transformed windows the layout of the input.

    2-D input comes back 2-D (when one channel is produced) and a DataFrame keeps its
    index and, when the width is unchanged, its columns.
    """
    shape = getattr(X_in, "shape", None)
    ndim_in = len(shape) if shape is not None else np.asarray(X_in).ndim
    if ndim_in == 2 and Xt.shape[2] == 1:
        Xt = Xt[:, :, 0]
        if isinstance(X_in, pd.DataFrame):
            columns = X_in.columns if Xt.shape[1] == X_in.shape[1] else None
            return pd.DataFrame(Xt, index=X_in.index, columns=columns)
    return Xt


def check_images(X, *, allow_different_sizes=False):
    """Validate images and return them as float32 in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_images, height, width, 3), or list of (H, W, 3) arrays
        uint8 images in [0, 255], or floats in [0, 1].
    allow_different_sizes : bool, default=False
        Accept a list of images of different sizes; they are returned as a list.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, 3) or list of ndarray
        float32 values in [0, 1].
    was_uint8 : bool
        Whether the input used the uint8 convention, so outputs can follow it.
    """
    if isinstance(X, (list, tuple)) and allow_different_sizes:
        if len(X) == 0:
            raise ValueError("Found an empty list of images; at least one image is required.")
        checked = [check_images(np.asarray(img)[np.newaxis])[0][0] for img in X]
        was_uint8 = all(np.asarray(img).dtype == np.uint8 for img in X)
        if not was_uint8 and any(np.asarray(img).dtype == np.uint8 for img in X):
            raise ValueError("Images mix uint8 and float dtypes; use one convention.")
        return checked, was_uint8
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(
            "Images must be an array of shape (n_images, height, width, 3); "
            f"got shape {X.shape}."
        )
    was_uint8 = X.dtype == np.uint8
    if was_uint8:
        out = X.astype(np.float32) / 255.0
    else:
        if np.iscomplexobj(X) or not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"Images must be numeric, got dtype {X.dtype}.")
        out = X.astype(np.float32)
    _reject_empty_and_nonfinite(out, "images")
    if not was_uint8 and (out.min() < 0.0 or out.max() > 1.0):
        raise ValueError(
            "Float images must lie in [0, 1] (uint8 images in [0, 255]); "
            f"got values in [{out.min():.3g}, {out.max():.3g}]."
        )
    return out, was_uint8
