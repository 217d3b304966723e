"""Nearest-neighbour attacker under dynamic time warping (DTW)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..utils._torch import check_random_state_local
from ..utils.estimator_checks import register_estimator_check_config
from ..utils.validation import check_class_labels, validate_motion_windows

__all__ = ["DTWNeighborsClassifier"]


class DTWNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier of motion windows under DTW.

    Nearest neighbours under dynamic time warping are the classic time-series
    baseline: a window is attributed to the classes of the training windows it can be
    aligned with most cheaply. The search is tslearn's
    :class:`~tslearn.neighbors.KNeighborsTimeSeriesClassifier` with a Sakoe-Chiba
    band. Its cost grows with the number of training windows times the squared window
    length, so the training windows can be subsampled per class (seeded) and the
    windows shortened by block averaging.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours that vote.
    weights : {"uniform", "distance"}, default="distance"
        ``"distance"``: each neighbour votes with the inverse of its DTW distance (an
        exact match takes all the weight).
    sakoe_chiba_radius : int or None, default=5
        Half-width of the Sakoe-Chiba band, in time steps of the downsampled windows;
        None allows any warping (much slower).
    downsample : int, default=1
        Average blocks of this many consecutive timestamps before matching (a window of
        ``T`` timestamps becomes ``T // downsample`` long; trailing ones are dropped).
    z_normalize : bool, default=False
        Standardise each channel of each window to zero mean and unit variance, so
        only its shape counts. Off by default: amplitude and posture (gravity) are
        telling of a person.
    max_train_per_class : int or None, default=None
        Keep at most this many training windows per class, drawn at random; None
        keeps them all.
    smoothing : float >= 0, default=0.01
        Additive smoothing of the neighbour vote shares, so every class keeps a
        positive probability and summed log-probabilities stay finite.
    n_jobs : int or None, default=None
        Processes of the distance computation (joblib's convention).
    random_state : int, RandomState instance or None, default=None
        Seeds the subsampling of the training windows.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the probability columns.
    knn_ : tslearn.neighbors.KNeighborsTimeSeriesClassifier
        The fitted neighbour search on the kept training windows.
    train_indices_ : ndarray of int
        Indices of the training windows that were kept.
    train_codes_ : ndarray of int
        Class index (into ``classes_``) of each kept training window.
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.
    n_timestamps_in_, n_channels_in_ : int
        Window shape seen in ``fit``.

    See Also
    --------
    RocketClassifier : random convolution kernels and a linear head (stronger, faster).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.adversaries import DTWNeighborsClassifier
    >>> rng = np.random.RandomState(0)
    >>> t = np.arange(32) / 16.0
    >>> freq = np.repeat([1.0, 3.0], 10)
    >>> X = np.sin(2 * np.pi * freq[:, None] * t) + 0.1 * rng.randn(20, 32)
    >>> y = np.repeat([0, 1], 10)
    >>> clf = DTWNeighborsClassifier(n_neighbors=3, sakoe_chiba_radius=2).fit(X, y)
    >>> clf.predict(X[[0, -1]]).tolist()
    [0, 1]
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"})],
        "sakoe_chiba_radius": [None, Interval(Integral, 0, None, closed="left")],
        "downsample": [Interval(Integral, 1, None, closed="left")],
        "z_normalize": ["boolean"],
        "max_train_per_class": [None, Interval(Integral, 1, None, closed="left")],
        "smoothing": [Interval(Real, 0, None, closed="left")],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        n_neighbors=5,
        weights="distance",
        sakoe_chiba_radius=5,
        downsample=1,
        z_normalize=False,
        max_train_per_class=None,
        smoothing=0.01,
        n_jobs=None,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.sakoe_chiba_radius = sakoe_chiba_radius
        self.downsample = downsample
        self.z_normalize = z_normalize
        self.max_train_per_class = max_train_per_class
        self.smoothing = smoothing
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _prepare(self, X, *, reset):
        """Validated, downsampled and (optionally) z-normalised windows ``(n, T', d)``."""
        X = validate_motion_windows(self, X, reset=reset, dtype=np.float64)
        n, T, d = X.shape
        f = self.downsample
        if T < f:
            raise ValueError(
                f"downsample={f} needs windows of at least {f} timestamps; got shape {X.shape}."
            )
        if f > 1:
            X = X[:, : (T // f) * f].reshape(n, T // f, f, d).mean(axis=2)
        if self.z_normalize:
            mean = X.mean(axis=1, keepdims=True)
            std = X.std(axis=1, keepdims=True)
            X = (X - mean) / np.where(std > 0, std, 1.0)
        return np.ascontiguousarray(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Store the (subsampled) training windows.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows (2-D input is one channel).
        y : array-like of shape (n_windows,)
            Class of each window.
        groups : None
            Ignored; accepted so attack protocols can pass groups to every attacker.

        Returns
        -------
        self : DTWNeighborsClassifier
        """
        from tslearn.neighbors import KNeighborsTimeSeriesClassifier

        rng = check_random_state_local(self.random_state)
        if y is None:
            raise ValueError(
                "DTWNeighborsClassifier requires y to be passed, but the target y is None."
            )
        Xp = self._prepare(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(Xp, y)
        check_class_labels(y, "y")
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)

        keep = np.arange(len(y_enc))
        if self.max_train_per_class is not None:
            kept = []
            for c in range(len(self.classes_)):
                idx = np.flatnonzero(y_enc == c)
                if len(idx) > self.max_train_per_class:
                    idx = rng.choice(idx, self.max_train_per_class, replace=False)
                kept.append(idx)
            keep = np.sort(np.concatenate(kept))
        self.train_indices_ = keep
        self.train_codes_ = y_enc[keep]

        metric_params = None
        if self.sakoe_chiba_radius is not None:
            metric_params = {
                "global_constraint": "sakoe_chiba",
                "sakoe_chiba_radius": int(self.sakoe_chiba_radius),
            }
        self.knn_ = KNeighborsTimeSeriesClassifier(
            n_neighbors=min(self.n_neighbors, len(keep)),
            metric="dtw",
            metric_params=metric_params,
            n_jobs=self.n_jobs,
        ).fit(Xp[keep], self.train_codes_)
        return self

    def predict_proba(self, X):
        """Smoothed (distance-weighted) vote shares of the nearest training windows.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_windows, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        Xp = self._prepare(X, reset=False)
        dist, ind = self.knn_.kneighbors(Xp, return_distance=True)
        dist, ind = np.asarray(dist, dtype=np.float64), np.asarray(ind)
        if self.weights == "distance":
            exact = dist <= 0
            with np.errstate(divide="ignore"):
                w = np.where(exact.any(axis=1, keepdims=True), exact.astype(float), 1.0 / dist)
        else:
            w = np.ones_like(dist)
        n_classes = len(self.classes_)
        votes = np.zeros((len(Xp), n_classes))
        np.add.at(votes, (np.arange(len(Xp))[:, None], self.train_codes_[ind]), w)
        shares = votes / votes.sum(axis=1, keepdims=True)
        return (shares + self.smoothing) / (1.0 + self.smoothing * n_classes)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        log_proba : ndarray of shape (n_windows, n_classes)
            Columns follow ``classes_`` (``-inf`` where ``smoothing=0`` and no
            neighbour votes for a class).
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class with the largest (weighted) vote of each window.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_windows,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags


register_estimator_check_config(
    "DTWNeighborsClassifier",
    fast_params={"n_neighbors": 3, "sakoe_chiba_radius": 2},
)
