"""Synthetic motion data, a spying protector and search results shared by the tests of
the trade-off search (test_model_selection) and of the evaluation layer (test_evaluation).
"""

from numbers import Real

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import Interval

from sklearn_privacy.base import BaseProtector


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def flat_lr():
    return make_pipeline(FunctionTransformer(_flatten), LogisticRegression(max_iter=500))


def make_data(n_subjects=6, n_recordings=2, n_windows=10, n_timestamps=8, seed=0):
    """Channel 0 carries the person (an offset), channel 1 the activity."""
    rng = np.random.RandomState(seed)
    n = n_subjects * n_recordings * n_windows
    subject = np.repeat(np.arange(n_subjects), n_recordings * n_windows)
    recording = np.repeat(np.arange(n_subjects * n_recordings), n_windows) % n_recordings
    y = rng.randint(2, size=n)
    t = np.linspace(0, 2 * np.pi, n_timestamps)
    X = 0.3 * rng.normal(size=(n, n_timestamps, 2))
    X[:, :, 0] += subject[:, None]
    X[:, :, 1] += np.where(y[:, None] == 1, 1.0, -1.0) * np.sin(t)
    return X.astype(np.float32), y, subject, np.column_stack([subject, recording])


class SpyNoise(BaseProtector):
    """Adds Gaussian noise of scale ``sigma``; records the windows and labels of ``fit``."""

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }
    fit_calls = []

    def __init__(self, sigma=0.0, random_state=0):
        self.sigma = sigma
        self.random_state = random_state

    def fit(self, X, y=None, *, sensitive_features=None):
        Xv = self._validate_motion(X, reset=True)
        s = self._check_sensitive(sensitive_features, len(Xv), required=False)
        self.rng_ = np.random.RandomState(self.random_state)
        type(self).fit_calls.append({"X": Xv.copy(), "sensitive_features": s})
        return self

    def transform(self, X):
        Xv = self._validate_motion(X, reset=False)
        # Fresh noise at every call: a noise pattern repeated across calls would be a
        # fingerprint of the row position.
        noise = self.rng_.normal(size=Xv.shape)
        return self._restore_motion(Xv + (self.sigma * noise).astype(Xv.dtype), X)


RESULTS = {
    "mean_test_utility": [0.90, 0.80, 0.70, 0.60, 0.80, np.nan, 0.50],
    "std_test_utility": [0.01] * 7,
    "mean_test_privacy": [0.10, 0.50, 0.40, 0.90, 0.50, 0.99, 0.90],
    "std_test_privacy": [0.05] * 7,
    "params": [{"protector__sigma": s} for s in (0.0, 0.5, 0.6, 1.0, 0.5, 2.0, 3.0)],
}
