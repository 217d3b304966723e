"""Input validation for motion windows and images."""

from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "WindowGroups",
    "check_class_labels",
    "check_images",
    "check_motion_windows",
    "check_window_groups",
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
        On empty input, NaN or infinity, non-numeric values, a number of
        dimensions other than 2 or 3, or a list of windows of different shapes.
    """
    if isinstance(X, (list, tuple)) and len(X) > 1:
        # numpy's own error for ragged lists names no window.
        first = np.shape(X[0])
        for i, window in enumerate(X):
            if np.shape(window) != first:
                raise ValueError(
                    "Motion windows must all have the same shape; window 0 has shape "
                    f"{first} but window {i} has shape {np.shape(window)}. Cut recordings "
                    "into windows of one length first (see make_windows)."
                )
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

    Raises
    ------
    ValueError
        On empty input, NaN or infinity, non-numeric values, float values outside
        [0, 1], a shape other than ``(n_images, height, width, 3)`` (for a list, the
        message names the first image of another shape), or a list of images of
        different sizes when ``allow_different_sizes=False``.
    """
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("Found an empty list of images; at least one image is required.")
        # Check each image first: numpy's own error for ragged lists names no image.
        shapes = []
        for i, img in enumerate(X):
            shape = np.shape(img)
            if len(shape) != 3 or shape[-1] != 3:
                raise ValueError(
                    f"Each image must be an array of shape (height, width, 3); image {i} "
                    f"has shape {shape}."
                )
            shapes.append(shape)
        if allow_different_sizes:
            checked = [check_images(np.asarray(img)[np.newaxis])[0][0] for img in X]
            was_uint8 = all(np.asarray(img).dtype == np.uint8 for img in X)
            if not was_uint8 and any(np.asarray(img).dtype == np.uint8 for img in X):
                raise ValueError("Images mix uint8 and float dtypes; use one convention.")
            return checked, was_uint8
        if len(set(shapes)) > 1:
            raise ValueError(
                "Images must all have the same size here; got sizes "
                f"{sorted({s[:2] for s in shapes})}. Resize them first."
            )
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
        hint = (
            f" Images of dtype {X.dtype} are read as floats; cast [0, 255] images to uint8."
            if X.dtype.kind in "iu"
            else ""
        )
        raise ValueError(
            "Float images must lie in [0, 1] (uint8 images in [0, 255]); "
            f"got values in [{out.min():.3g}, {out.max():.3g}].{hint}"
        )
    return out, was_uint8


def check_class_labels(labels, name):
    """Check that class labels are present and of one sortable kind.

    Classes are found by sorting the labels, so ``None``, NaN, infinity or a mix of
    types that cannot be compared (an integer among strings) cannot be classes. This
    check runs before scikit-learn's and numpy's, whose errors for such labels
    ("Unknown label type: unknown", "'<' not supported") name no parameter.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,) or (n_samples, n_columns)
        Class labels; a 2-D array is checked column by column (each column may have
        its own type).
    name : str
        Name of the parameter, used in error messages.

    Returns
    -------
    labels : ndarray
        ``labels``, unchanged.

    Raises
    ------
    ValueError
        If ``labels`` holds NaN, infinity or None, or values that cannot be sorted
        together.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.utils.validation import check_class_labels
    >>> check_class_labels(np.array([0, 1, 1]), "y")
    array([0, 1, 1])
    >>> check_class_labels(np.array([0, "a"], dtype=object), "y")
    Traceback (most recent call last):
    ...
    ValueError: y mixes label types that cannot be sorted together (int, str); use labels of one type, e.g. all integers or all strings.
    """
    if labels.dtype.kind in "fc" and not np.all(np.isfinite(labels)):
        raise ValueError(f"{name} contains NaN or infinity, which cannot be class labels.")
    if labels.dtype.kind != "O":
        return labels
    if pd.isna(labels).any():
        raise ValueError(f"{name} contains NaN or None, which cannot be class labels.")
    columns = labels.reshape(labels.shape[0], -1).T if labels.ndim > 1 else [labels]
    for j, column in enumerate(columns):
        try:
            np.unique(column)
        except TypeError:
            where = f"column {j} of {name}" if labels.ndim > 1 else name
            types = ", ".join(sorted({type(v).__name__ for v in column}))
            raise ValueError(
                f"{where} mixes label types that cannot be sorted together ({types}); "
                "use labels of one type, e.g. all integers or all strings."
            ) from None
    return labels


class WindowGroups(NamedTuple):
    """Integer codes of the groups of each window, as returned by :func:`check_window_groups`.

    Codes run from 0 to ``k - 1`` in sorted order of the ids they stand for.

    Attributes
    ----------
    subject : ndarray of shape (n_samples,) or None
        Code of each window's subject; None for 1-D groups.
    recording : ndarray of shape (n_samples,)
        Code of each window's recording: of the (subject, recording) pair for 2- and
        3-column groups (so recording ids need only be unique per subject), of the id
        itself for 1-D groups.
    segment : ndarray of shape (n_samples,) or None
        Code of each window's (subject, recording, segment) triple for 3-column groups;
        None otherwise.
    """

    subject: np.ndarray | None
    recording: np.ndarray
    segment: np.ndarray | None


def _group_codes(values, what):
    """Integer codes (0..k-1, in sorted order of the values) of a 1-D array of ids."""
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"{what} contains NaN.")
    if values.dtype.kind == "O" and pd.isna(values).any():
        raise ValueError(f"{what} contains NaN or None.")
    if values.dtype.kind == "c":
        raise ValueError(f"{what} must be ids (integers or strings); got complex values.")
    try:
        _, codes = np.unique(values, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"{what} must be sortable ids (integers or strings): {exc}") from exc
    return codes.reshape(-1).astype(np.int64, copy=False)


def _combine_codes(major, minor):
    """Codes of the distinct (major, minor) pairs, in lexicographic order of the pairs."""
    if major.size == 0:
        return major
    _, codes = np.unique(major * (int(minor.max()) + 1) + minor, return_inverse=True)
    return codes.reshape(-1).astype(np.int64, copy=False)


def check_window_groups(groups, n_samples, *, allow_1d=True, name="groups"):
    """Validate the groups of windows and return their integer codes.

    The one place where the ``groups`` of the threat-model splitters, the privacy
    scorer, the report and recording pooling are read. Three forms are accepted:

    - 1-D ids: one *recording* id per window (``subject`` is then unknown);
    - ``(n_samples, 2)``: (subject, recording) of each window, as
      :func:`~sklearn_privacy.model_selection.window_groups` returns for windows
      without segments;
    - ``(n_samples, 3)``: (subject, recording, segment), where the segment is the
      contiguous run of one activity in one recording that the window lies in
      (:func:`~sklearn_privacy.datasets.make_windows`' ``segment``). Consumers that
      split or pool by recording ignore it; it is the finest group an attacker's
      early-stopping split can use.

    A recording is the (subject, recording) pair, so recording ids need only be unique
    per subject; likewise a segment is the (subject, recording, segment) triple.

    Parameters
    ----------
    groups : array-like of shape (n_samples,), (n_samples, 2) or (n_samples, 3)
        Sortable ids (integers or strings).
    n_samples : int
        Number of windows the groups describe.
    allow_1d : bool, default=True
        Accept 1-D recording ids; when False, the subject column is required.
    name : str, default="groups"
        Name used in error messages.

    Returns
    -------
    codes : WindowGroups
        Named tuple ``(subject, recording, segment)`` of int64 code arrays of shape
        ``(n_samples,)``, ``subject`` and ``segment`` being None when the input has no
        such column.

    Raises
    ------
    ValueError
        If ``groups`` is None, has a number of dimensions or columns other than those
        above (or is 1-D when ``allow_1d=False``), does not have ``n_samples`` rows,
        or holds NaN, None or values that cannot be sorted.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.utils.validation import check_window_groups
    >>> groups = np.array([[7, 1, 0], [7, 1, 1], [7, 2, 2], [9, 1, 3]])
    >>> codes = check_window_groups(groups, 4)
    >>> codes.subject.tolist(), codes.recording.tolist(), codes.segment.tolist()
    ([0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3])
    >>> check_window_groups(np.array([5, 5, 3, 4]), 4)
    WindowGroups(subject=None, recording=array([2, 2, 0, 1]), segment=None)
    """
    forms = (
        "1-D recording ids, a (n_samples, 2) array of (subject, recording) pairs or a "
        "(n_samples, 3) array of (subject, recording, segment) rows (see window_groups)"
        if allow_1d
        else "a (n_samples, 2) array of (subject, recording) pairs or a (n_samples, 3) "
        "array of (subject, recording, segment) rows (see window_groups)"
    )
    if groups is None:
        raise ValueError(f"The {name!r} parameter should not be None: pass {forms}.")
    groups = np.asarray(groups)
    ndim_ok = groups.ndim == 2 and groups.shape[1] in (2, 3)
    if allow_1d:
        ndim_ok = ndim_ok or groups.ndim == 1
    if not ndim_ok:
        raise ValueError(f"{name} must be {forms}; got shape {groups.shape}.")
    if groups.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {groups.shape[0]} rows but there are {n_samples} samples "
            "(one row per sample is needed)."
        )
    if groups.ndim == 1:
        return WindowGroups(None, _group_codes(groups, f"{name} (recording ids)"), None)
    subject = _group_codes(groups[:, 0], f"{name} (subject column)")
    recording = _combine_codes(subject, _group_codes(groups[:, 1], f"{name} (recording column)"))
    segment = None
    if groups.shape[1] == 3:
        segment = _combine_codes(recording, _group_codes(groups[:, 2], f"{name} (segment column)"))
    return WindowGroups(subject, recording, segment)
