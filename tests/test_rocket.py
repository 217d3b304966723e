"""RocketClassifier: random convolution kernels and a calibrated ridge head."""

import pickle
import sys

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_privacy.adversaries import RocketClassifier

pytest.importorskip("aeon", reason="RocketClassifier needs the optional package aeon")

FAST = {"n_kernels": 168, "random_state": 0}


def _waves(n_per_class=30, n_timestamps=64, n_channels=2, noise=0.6, seed=0):
    """Three classes told apart by frequency, with random phases and heavy noise."""
    rng = np.random.RandomState(seed)
    t = np.arange(n_timestamps) / 50.0
    freq = np.repeat([1.0, 3.0, 6.0], n_per_class)
    phase = rng.uniform(0, 2 * np.pi, (len(freq), 1, n_channels))
    X = np.sin(2 * np.pi * freq[:, None, None] * t[None, :, None] + phase)
    X = X + noise * rng.randn(*X.shape)
    y = np.repeat(np.array(["low", "mid", "high"]), n_per_class)
    return X, y


def test_learns_a_separable_problem_far_above_chance():
    X, y = _waves(seed=0)
    X_test, y_test = _waves(seed=1)
    clf = RocketClassifier(**FAST).fit(X, y)
    assert clf.score(X_test, y_test) > 0.9  # chance is 1/3


def test_probabilities_sum_to_one_and_follow_classes():
    X, y = _waves()
    clf = RocketClassifier(**FAST).fit(X, y)
    assert clf.classes_.tolist() == ["high", "low", "mid"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    assert clf.decision_function(X).shape == (len(X), 3)
    assert clf.temperature_ > 0


def test_calibrated_probabilities_are_not_overconfident_on_noisy_data():
    # Classes that overlap heavily: a calibrated head must not claim certainty.
    X, y = _waves(noise=4.0, seed=0)
    X_test, y_test = _waves(noise=4.0, seed=1)
    clf = RocketClassifier(**FAST).fit(X, y)
    log_proba = clf.predict_log_proba(X_test)
    cols = np.searchsorted(clf.classes_, y_test)
    log_loss = -log_proba[np.arange(len(y_test)), cols].mean()
    # A uniform guess scores log(3) ~ 1.10; an overconfident ridge softmax far worse.
    assert log_loss < 1.3
    assert clf.predict_proba(X_test).max(axis=1).mean() < 0.95


def test_binary_problem_gives_two_probability_columns():
    X, y = _waves()
    keep = y != "mid"
    clf = RocketClassifier(**FAST).fit(X[keep], y[keep])
    assert clf.decision_function(X[keep]).shape == (keep.sum(),)
    proba = clf.predict_proba(X[keep])
    assert proba.shape == (keep.sum(), 2)
    assert np.mean(clf.classes_[proba.argmax(axis=1)] == y[keep]) > 0.9


def test_two_dimensional_input_is_one_channel():
    X, y = _waves(n_channels=1)
    clf = RocketClassifier(**FAST).fit(X[:, :, 0], y)
    assert clf.n_channels_in_ == 1
    np.testing.assert_allclose(clf.predict_proba(X[:, :, 0]), clf.predict_proba(X))


def test_short_windows_are_zero_padded():
    X, y = _waves()
    clf = RocketClassifier(**FAST).fit(X[:, :5], y)
    assert clf.n_timestamps_in_ == 5
    padded = np.concatenate([X[:, :5], np.zeros((len(X), 4, X.shape[2]))], axis=1)
    np.testing.assert_allclose(
        clf.decision_function(X[:, :5]),
        RocketClassifier(**FAST).fit(padded, y).decision_function(padded),
    )


def test_groups_hold_out_whole_groups_for_the_temperature():
    X, y = _waves()
    groups = np.arange(len(y)) // 5  # runs of 5 windows of one class
    clf = RocketClassifier(**FAST).fit(X, y, groups=groups)
    assert np.isfinite(clf.temperature_)
    with pytest.raises(ValueError, match="groups"):
        RocketClassifier(**FAST).fit(X, y, groups=groups[:-1])


def test_seeded_fits_are_reproducible_and_seeds_matter():
    X, y = _waves()
    a = RocketClassifier(**FAST).fit(X, y).predict_proba(X)
    b = RocketClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    scores = RocketClassifier(**FAST).fit(X, y).decision_function(X)
    other = RocketClassifier(n_kernels=168, random_state=1).fit(X, y).decision_function(X)
    assert not np.allclose(scores, other)


def test_clone_and_pickle_round_trip():
    X, y = _waves()
    clf = RocketClassifier(**FAST)
    assert clone(clf).get_params() == clf.get_params()
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


@pytest.mark.slow  # MultiRocket's compiled kernels take long to compile the first time
def test_multirocket_variant_learns_and_makes_eight_features_per_kernel():
    X, y = _waves(seed=0)
    X_test, y_test = _waves(seed=1)
    clf = RocketClassifier(**FAST, variant="multirocket").fit(X, y)
    assert clf.scaler_.n_features_in_ == 8 * 168
    assert clf.score(X_test, y_test) > 0.9


def test_transform_is_pure():
    X, y = _waves()
    clf = RocketClassifier(**FAST).fit(X, y)
    before = pickle.dumps(clf)
    clf.predict_proba(X)
    clf.predict(X)
    assert pickle.dumps(clf) == before


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"variant": "rocket"}, "variant"),
        ({"n_kernels": 10}, "n_kernels"),
        ({"alphas": [1.0, -1.0]}, "alphas must be positive"),
        ({"calibration_fraction": 1.0}, "calibration_fraction"),
    ],
)
def test_bad_input_errors(params, match):
    X, y = _waves()
    with pytest.raises(ValueError, match=match):
        RocketClassifier(**{**FAST, **params}).fit(X, y)


def test_bad_labels_and_shapes():
    X, y = _waves()
    with pytest.raises(ValueError, match="at least 2 classes"):
        RocketClassifier(**FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="NaN"):
        RocketClassifier(**FAST).fit(X, np.where(np.arange(len(X)) == 0, np.nan, 1.0))
    clf = RocketClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="expecting"):
        clf.predict(X[:, :, :1])


def test_missing_aeon_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.transformations.collection.convolution_based", None)
    X, y = _waves()
    with pytest.raises(ImportError, match=r'pip install "sklearn-privacy\[rocket\]"'):
        RocketClassifier(**FAST).fit(X, y)
