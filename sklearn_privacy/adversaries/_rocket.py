"""ROCKET-family attacker: random convolution kernels and a calibrated linear head."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.linalg import LinAlgWarning
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..utils._torch import check_fit_groups, check_random_state_local, draw_seed, validation_split
from ..utils.estimator_checks import register_estimator_check_config
from ..utils.validation import check_class_labels, validate_motion_windows

__all__ = ["RocketClassifier"]

# The shortest window MiniRocket and MultiRocket accept (their longest dilated kernel).
_MIN_TIMESTAMPS = 9
_INSTALL_HINT = 'pip install "sklearn-privacy[rocket]"'


def _import_rocket(variant):
    """The aeon transformer class of ``variant``, or an ImportError that says the fix."""
    try:
        from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket
    except ImportError as exc:
        raise ImportError(
            f"RocketClassifier needs the optional package aeon; install it with "
            f"{_INSTALL_HINT}."
        ) from exc
    return MiniRocket if variant == "minirocket" else MultiRocket


def _fit_temperature(scores, y_enc):
    """Inverse temperature ``t`` minimising the log-loss of ``softmax(t * scores)``."""
    rows = np.arange(len(y_enc))

    def nll(log_t):
        return -log_softmax(np.exp(log_t) * scores, axis=1)[rows, y_enc].mean()

    result = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e4)), method="bounded")
    return float(np.exp(result.x))


class RocketClassifier(ClassifierMixin, BaseEstimator):
    """Random-convolution-kernel classifier of motion windows (MiniRocket, MultiRocket).

    The ROCKET family is among the most accurate time-series classifiers known and
    cheap to train: thousands of fixed random dilated kernels turn each window into
    pooled features, and a linear model does the rest. As an attacker it is far
    stronger than small CNNs or hand-crafted features on identity inference.

    The kernels come from the optional package aeon
    (``pip install "sklearn-privacy[rocket]"``). The head is a ridge classifier on the
    standardised features (regularisation chosen by efficient leave-one-out among
    ``alphas``), as in the original method, turned into calibrated probabilities by
    a softmax whose temperature is fitted on held-out training data: a ridge
    classifier with its ``alpha`` is first fitted without a held-out share of the
    training windows (whole groups when ``groups`` are given), the temperature that
    minimises the log-loss on that share is kept, and the ridge classifier is then
    refitted on all training windows. Probabilities, and their logarithms summed over
    the windows of a recording, are then meaningful.

    Parameters
    ----------
    variant : {"minirocket", "multirocket"}, default="minirocket"
        ``"minirocket"``: MiniRocket (proportion of positive values of each kernel
        output). ``"multirocket"``: MultiRocket (four pooling operators, also on the
        first differences; about twice the transform cost, often a little more
        accurate).
    n_kernels : int, default=10_000
        Number of random kernels (aeon rounds it to a multiple of 84; MultiRocket makes
        8 features per kernel, MiniRocket one).
    alphas : array-like of float or None, default=None
        Ridge regularisation strengths tried by leave-one-out cross-validation
        (``numpy.logspace(-3, 3, 10)`` if None).
    calibration_fraction : float in (0, 1), default=0.2
        Share of the training windows held out to fit the softmax temperature.
    n_jobs : int, default=1
        Threads of the kernel transform.
    random_state : int, RandomState instance or None, default=None
        Seeds the kernels (dilations, biases) and the held-out split.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the probability columns.
    transformer_ : aeon transformer
        The fitted MiniRocket or MultiRocket transform.
    scaler_ : StandardScaler
        Standardisation of the kernel features.
    ridge_ : RidgeClassifier
        The linear head, fitted on all training windows.
    alpha_ : float
        Regularisation strength chosen by leave-one-out cross-validation.
    temperature_ : float
        Inverse softmax temperature applied to the ridge scores.
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.
    n_timestamps_in_, n_channels_in_ : int
        Window shape seen in ``fit``.

    See Also
    --------
    DTWNeighborsClassifier : nearest neighbours under dynamic time warping.
    TimeSeriesCNNClassifier : a 1-D convolutional network trained with skorch.

    Notes
    -----
    Windows are given as ``(n_windows, n_timestamps, n_channels)`` (2-D input is one
    channel). The kernels span 9 timestamps: shorter windows are zero-padded at the end
    (the method is meant for windows of dozens of timestamps or more). Without ``groups`` the held-out share is
    a random one: overlapping windows of one recording then sit on both sides and the
    temperature comes out somewhat overconfident; pass the groups of the windows (e.g.
    :func:`~sklearn_privacy.model_selection.window_groups`) for honest probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.adversaries import RocketClassifier
    >>> rng = np.random.RandomState(0)
    >>> t = np.arange(64) / 50.0
    >>> freq = np.repeat([1.0, 4.0], 20)
    >>> X = np.sin(2 * np.pi * freq[:, None] * t) + 0.3 * rng.randn(40, 64)
    >>> y = np.repeat(["slow", "fast"], 20)
    >>> clf = RocketClassifier(n_kernels=168, random_state=0).fit(X, y)
    >>> clf.predict(X[[0, -1]]).tolist()
    ['slow', 'fast']
    >>> clf.predict_proba(X[:2]).sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """

    _parameter_constraints: dict = {
        "variant": [StrOptions({"minirocket", "multirocket"})],
        "n_kernels": [Interval(Integral, 84, None, closed="left")],
        "alphas": [None, "array-like"],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_jobs": [Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        variant="minirocket",
        n_kernels=10_000,
        alphas=None,
        calibration_fraction=0.2,
        n_jobs=1,
        random_state=None,
    ):
        self.variant = variant
        self.n_kernels = n_kernels
        self.alphas = alphas
        self.calibration_fraction = calibration_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- helpers -----------------------------------------------------------------------
    def _alphas(self):
        if self.alphas is None:
            return np.logspace(-3, 3, 10)
        alphas = np.asarray(self.alphas, dtype=np.float64).reshape(-1)
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError(
                f"alphas must be positive finite numbers; got {self.alphas!r}."
            )
        return alphas

    def _validate_X(self, X, *, reset):
        X = validate_motion_windows(self, X, reset=reset, dtype=np.float64)
        if X.shape[1] < _MIN_TIMESTAMPS:
            # The kernels span 9 timestamps: shorter windows are zero-padded at the end.
            X = np.pad(X, ((0, 0), (0, _MIN_TIMESTAMPS - X.shape[1]), (0, 0)))
        # aeon's layout: (n_windows, n_channels, n_timestamps).
        return np.ascontiguousarray(np.transpose(X, (0, 2, 1)))

    def _features(self, X):
        Xt = np.asarray(self.transformer_.transform(X), dtype=np.float32)
        return self.scaler_.transform(Xt)

    @staticmethod
    def _score_matrix(scores):
        """Ridge scores as one column per class (binary ridge gives one signed score)."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim == 1:
            scores = np.column_stack([-scores, scores])
        return scores

    # -- API -------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Fit the kernels, the ridge head and the softmax temperature.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows (2-D input is one channel).
        y : array-like of shape (n_windows,)
            Class of each window.
        groups : array-like of shape (n_windows,) or (n_windows, n_columns), default=None
            Group of each window (1-D ids, or rows such as the (subject, recording,
            segment) rows of :func:`~sklearn_privacy.model_selection.window_groups`,
            each distinct row one group). The calibration share holds out whole
            groups, so overlapping windows never sit on both sides.

        Returns
        -------
        self : RocketClassifier
        """
        rng = check_random_state_local(self.random_state)
        if y is None:
            raise ValueError("RocketClassifier requires y to be passed, but the target y is None.")
        alphas = self._alphas()
        Xa = self._validate_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(Xa, y)
        check_class_labels(y, "y")
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "RocketClassifier needs samples of at least 2 classes in y; got 1 class "
                f"({self.classes_[0]!r})."
            )
        if groups is not None:
            groups, _ = check_fit_groups(groups, len(y_enc))
        rocket_cls = _import_rocket(self.variant)

        self.transformer_ = rocket_cls(
            n_kernels=self.n_kernels, n_jobs=self.n_jobs, random_state=draw_seed(rng)
        )
        features = np.asarray(self.transformer_.fit_transform(Xa), dtype=np.float32)

        # Temperature: a ridge head fitted without a held-out share, scored on it.
        train_idx, cal_idx = validation_split(
            y_enc, groups, self.calibration_fraction, rng,
            disable_hint="a larger calibration_fraction or finer groups",
        )
        scaler = StandardScaler().fit(features[train_idx])
        ridge_cv = RidgeClassifierCV(alphas=alphas).fit(
            scaler.transform(features[train_idx]), y_enc[train_idx]
        )
        self.alpha_ = float(ridge_cv.alpha_)
        scores = self._score_matrix(
            ridge_cv.decision_function(scaler.transform(features[cal_idx]))
        )
        # Columns of the held-out scores follow the classes seen in the training share
        # (all of them with groups; a tiny ungrouped split may miss a rare class).
        y_cal = y_enc[cal_idx]
        known = np.isin(y_cal, ridge_cv.classes_)
        if known.any():
            cal_cols = np.searchsorted(ridge_cv.classes_, y_cal[known])
            self.temperature_ = _fit_temperature(scores[known], cal_cols)
        else:
            self.temperature_ = 1.0

        # The head used for prediction sees every training window.
        self.scaler_ = StandardScaler().fit(features)
        with warnings.catch_warnings():
            # A small alpha on more features than windows: the solve is still accurate
            # enough for a classifier, and the warning would only worry users.
            warnings.simplefilter("ignore", LinAlgWarning)
            self.ridge_ = RidgeClassifier(alpha=self.alpha_).fit(
                self.scaler_.transform(features), y_enc
            )
        return self

    def decision_function(self, X):
        """Ridge scores of each class (before the softmax temperature).

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_windows, n_classes) or (n_windows,)
            One column per class of ``classes_``; for two classes, the score of the
            second class (as scikit-learn's linear classifiers return).
        """
        check_is_fitted(self)
        Xa = self._validate_X(X, reset=False)
        return self.ridge_.decision_function(self._features(Xa))

    def predict_log_proba(self, X):
        """Log-probability of each class: the log-softmax of the scaled ridge scores.

        Summing these over the windows of one recording pools them into a
        recording-level decision.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        log_proba : ndarray of shape (n_windows, n_classes)
            Columns follow ``classes_``.
        """
        scores = self._score_matrix(self.decision_function(X))
        return log_softmax(self.temperature_ * scores, axis=1)

    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_windows, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """Most probable class of each window.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_windows,)
        """
        scores = self._score_matrix(self.decision_function(X))
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags


register_estimator_check_config(
    "RocketClassifier",
    fast_params={"n_kernels": 84, "random_state": 0},
)
