"""DTWNeighborsClassifier: k nearest neighbours under dynamic time warping."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_privacy.adversaries import DTWNeighborsClassifier

FAST = {"n_neighbors": 3, "sakoe_chiba_radius": 2}


def _waves(n_per_class=12, n_timestamps=32, n_channels=2, noise=0.3, seed=0):
    """Three classes told apart by frequency, with random phases."""
    rng = np.random.RandomState(seed)
    t = np.arange(n_timestamps) / 16.0
    freq = np.repeat([0.5, 2.0, 4.0], n_per_class)
    phase = rng.uniform(0, 0.5, (len(freq), 1, n_channels))
    X = np.sin(2 * np.pi * freq[:, None, None] * (t[None, :, None] + phase))
    X = X + noise * rng.randn(*X.shape)
    y = np.repeat(np.array([10, 20, 30]), n_per_class)
    return X, y


def test_learns_a_separable_problem_far_above_chance():
    X, y = _waves(seed=0)
    X_test, y_test = _waves(seed=1)
    assert DTWNeighborsClassifier(**FAST).fit(X, y).score(X_test, y_test) > 0.9


def test_probabilities_sum_to_one_and_follow_classes():
    X, y = _waves()
    clf = DTWNeighborsClassifier(**FAST, smoothing=0.01).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.min() > 0  # smoothing keeps log-probabilities finite
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_array_equal(clf.predict(X), y)  # each window is its own neighbour
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)


def test_uniform_vote_shares_without_smoothing():
    X, y = _waves()
    clf = DTWNeighborsClassifier(n_neighbors=3, weights="uniform", smoothing=0.0).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba * 3, np.round(proba * 3))  # shares of 3 votes


def test_two_dimensional_input_downsampling_and_znormalisation():
    X, y = _waves(n_channels=1)
    clf = DTWNeighborsClassifier(**FAST, downsample=2, z_normalize=True).fit(X[:, :, 0], y)
    # Downsampling averages pairs of timestamps.
    halved = X.reshape(len(X), 16, 2, 1).mean(axis=2)
    plain = DTWNeighborsClassifier(**FAST, z_normalize=True).fit(halved, y)
    np.testing.assert_allclose(clf.predict_proba(X), plain.predict_proba(halved))
    np.testing.assert_allclose(clf.predict_proba(X[:, :, 0]), clf.predict_proba(X))
    # z-normalisation removes the amplitude: a scaled, shifted copy is the same window.
    np.testing.assert_allclose(clf.predict_proba(3 * X + 5), clf.predict_proba(X), atol=1e-9)


def test_subsampling_is_seeded_and_per_class():
    X, y = _waves()
    a = DTWNeighborsClassifier(**FAST, max_train_per_class=4, random_state=0).fit(X, y)
    b = DTWNeighborsClassifier(**FAST, max_train_per_class=4, random_state=0).fit(X, y)
    c = DTWNeighborsClassifier(**FAST, max_train_per_class=4, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.train_indices_, b.train_indices_)
    assert not np.array_equal(a.train_indices_, c.train_indices_)
    assert np.bincount(a.train_codes_).tolist() == [4, 4, 4]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_clone_and_pickle_round_trip():
    X, y = _waves()
    clf = DTWNeighborsClassifier(**FAST)
    assert clone(clf).get_params() == clf.get_params()
    clf.fit(X, y, groups=np.arange(len(y)))
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"weights": "gaussian"}, "weights"),
        ({"downsample": 64}, "at least 64 timestamps"),
        ({"smoothing": -1.0}, "smoothing"),
    ],
)
def test_bad_parameters(params, match):
    X, y = _waves()
    with pytest.raises(ValueError, match=match):
        DTWNeighborsClassifier(**{**FAST, **params}).fit(X, y)


def test_bad_input():
    X, y = _waves()
    with pytest.raises(ValueError, match="NaN"):
        DTWNeighborsClassifier(**FAST).fit(np.where(X > 0.9, np.nan, X), y)
    with pytest.raises(ValueError, match="y to be passed"):
        DTWNeighborsClassifier(**FAST).fit(X, None)
    clf = DTWNeighborsClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="expecting"):
        clf.predict(X[:, :16])
