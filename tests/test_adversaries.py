"""Tests of the attackers: CNNs on windows and images, motion features + boosting."""

import pickle

import numpy as np
import pytest
import scipy.stats
import sklearn
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as sk_checks

from sklearn_privacy.adversaries import (
    ImageCNNClassifier,
    MotionFeatures,
    TimeSeriesCNNClassifier,
    make_feature_attacker,
)
from sklearn_privacy.adversaries._modules import ClassWeightedCrossEntropy, random_flip_crop
from sklearn_privacy.utils._torch import validation_split

FS = 50.0

# Small, quick networks for every test.
TS_FAST = dict(n_filters=8, kernel_size=5, n_blocks=3, lr=1e-2, batch_size=32, dropout=0.1)
IMG_FAST = dict(n_filters=4, input_size=16, lr=1e-2, batch_size=32, dropout=0.0)


# -- data ------------------------------------------------------------------------------
def make_sinusoids(n_per_class, *, T=64, seed=0, freqs=(1.5, 4.0, 9.0)):
    """Two-channel windows whose frequency gives the class; random phase, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FS
    f = np.repeat(np.asarray(freqs), n_per_class)
    phase = rng.uniform(0, 2 * np.pi, size=(f.size, 1, 2))
    X = np.sin(2 * np.pi * f[:, None, None] * t[None, :, None] + phase)
    X *= rng.uniform(0.8, 1.25, size=(f.size, 1, 2))
    X += 0.1 * rng.standard_normal(X.shape) + rng.normal(0, 0.3, size=(f.size, 1, 2))
    labels = np.array(["slow", "mid", "fast"])
    y = np.repeat(labels[: len(freqs)], n_per_class)
    return X.astype(np.float32), y


def make_squares(n_per_class, *, size=16, seed=0):
    """uint8 images of a noisy grey background with a red, green or blue square."""
    rng = np.random.default_rng(seed)
    n = 3 * n_per_class
    y = np.repeat(np.arange(3), n_per_class)
    X = rng.integers(60, 140, size=(n, size, size, 3)).astype(np.float64)
    side = size // 2
    top = rng.integers(0, size - side + 1, size=n)
    left = rng.integers(0, size - side + 1, size=n)
    rows = top[:, None] + np.arange(side)
    cols = left[:, None] + np.arange(side)
    idx = np.arange(n)[:, None, None]
    X[idx, rows[:, :, None], cols[:, None, :], :] = 30.0
    X[idx, rows[:, :, None], cols[:, None, :], y[:, None, None]] = 230.0
    return X.astype(np.uint8), y


@pytest.fixture(scope="module")
def sinusoids():
    X, y = make_sinusoids(40, seed=0)
    X_test, y_test = make_sinusoids(20, seed=1)
    groups = np.arange(len(y)) // 5  # "recordings" of 5 consecutive windows
    return X, y, groups, X_test, y_test


@pytest.fixture(scope="module")
def fitted_ts(sinusoids):
    X, y, groups, _, _ = sinusoids
    clf = TimeSeriesCNNClassifier(**TS_FAST, max_epochs=25, patience=4, random_state=0)
    return clf.fit(X, y, groups=groups)


@pytest.fixture(scope="module")
def squares():
    X, y = make_squares(30, seed=0)
    X_test, y_test = make_squares(15, seed=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def fitted_img(squares):
    X, y, _, _ = squares
    clf = ImageCNNClassifier(**IMG_FAST, max_epochs=15, early_stopping=False, random_state=0)
    return clf.fit(X, y)


# -- TimeSeriesCNNClassifier -----------------------------------------------------------
def test_ts_cnn_learns_frequencies(fitted_ts, sinusoids):
    _, _, _, X_test, y_test = sinusoids
    assert set(fitted_ts.classes_) == {"slow", "mid", "fast"}
    assert fitted_ts.score(X_test, y_test) > 0.95
    proba = fitted_ts.predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    assert_allclose(np.log(proba), fitted_ts.predict_log_proba(X_test), atol=1e-10)
    assert_array_equal(fitted_ts.classes_[proba.argmax(axis=1)], fitted_ts.predict(X_test))
    assert fitted_ts.n_features_in_ == 64 * 2
    assert 1 <= fitted_ts.best_epoch_ <= fitted_ts.n_iter_ <= 25


def test_ts_cnn_restores_best_validation_weights(fitted_ts, sinusoids):
    X, y, groups, _, _ = sinusoids
    val = np.isin(groups, fitted_ts.validation_groups_)
    log_proba = fitted_ts.predict_log_proba(X[val])
    cols = np.searchsorted(fitted_ts.classes_, y[val])
    val_loss = -log_proba[np.arange(val.sum()), cols].mean()
    valid_losses = fitted_ts.history_[:, "valid_loss"]
    assert val_loss == pytest.approx(min(valid_losses), rel=1e-4)
    assert val_loss == pytest.approx(valid_losses[fitted_ts.best_epoch_ - 1], rel=1e-4)


def test_ts_cnn_grouped_validation_never_mixes_groups(fitted_ts, sinusoids):
    _, _, groups, _, _ = sinusoids
    held_out = fitted_ts.validation_groups_
    assert 0 < len(held_out) < len(np.unique(groups))
    # About 15 % of the 120 windows, in whole groups of 5: within half a group of 18.
    assert abs(np.isin(groups, held_out).sum() - 0.15 * len(groups)) <= 2.5
    # skorch validated on exactly the windows of the held-out groups, trained on the rest.
    batches = fitted_ts.history_[0, "batches"]
    n_valid = sum(b["valid_batch_size"] for b in batches if "valid_batch_size" in b)
    n_train = sum(b["train_batch_size"] for b in batches if "train_batch_size" in b)
    assert n_valid == np.isin(groups, held_out).sum()
    assert n_train == len(groups) - n_valid


def test_validation_split_grouped_and_stratified():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 30)
    groups = rng.randint(0, 12, size=90)
    train, val = validation_split(y, groups, 0.25, random_state=0)
    assert len(np.intersect1d(train, val)) == 0
    assert len(train) + len(val) == 90
    assert not set(groups[train]) & set(groups[val])
    # About a quarter of the samples: within half the largest group of 22.5.
    assert abs(len(val) - 22.5) <= np.bincount(groups).max() / 2
    assert set(y[train]) == {0, 1, 2}
    # Another seed takes other groups.
    assert any(
        set(groups[validation_split(y, groups, 0.25, random_state=seed)[1]]) != set(groups[val])
        for seed in range(1, 6)
    )

    train, val = validation_split(y, None, 0.2, random_state=0)
    assert_array_equal(np.bincount(y[val]), [6, 6, 6])  # stratified
    # Tiny or single-class-per-side cases still give non-empty sides.
    train, val = validation_split(np.array([0, 1, 1]), None, 0.5, random_state=0)
    assert len(train) == 2 and len(val) == 1
    with pytest.raises(ValueError, match="cannot hold out any of the 1 group"):
        validation_split(y, np.zeros(90), 0.2, random_state=0)
    with pytest.raises(ValueError, match="NaN"):
        validation_split(y, np.full(90, np.nan), 0.2, random_state=0)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        validation_split(y, np.zeros((89, 2)), 0.2, random_state=0)
    with pytest.raises(ValueError, match="distinct rows"):
        validation_split(y, np.zeros((90, 2, 1)), 0.2, random_state=0)


def _one_recording_per_subject(n_subjects=6, n_segments=4, seed=0):
    """(subject, recording, segment) rows: one recording per subject, runs of 2-9 windows."""
    rng = np.random.RandomState(seed)
    sizes = rng.randint(2, 10, size=n_subjects * n_segments)
    segment = np.repeat(np.arange(len(sizes)), sizes)
    subject = segment // n_segments
    rows = np.column_stack([subject, 100 + subject, segment])
    return subject, rows


@pytest.mark.parametrize("seed", range(5))
def test_validation_split_keeps_every_class_in_training(seed):
    # Identity attacker with one training recording per person: segments are held out,
    # every person keeps training windows, no segment is on both sides.
    y, rows = _one_recording_per_subject(seed=seed)
    train, val = validation_split(y, rows, 0.15, random_state=seed)
    assert len(val) > 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert set(y[train]) == set(y)
    assert not set(rows[train, 2]) & set(rows[val, 2])
    assert abs(len(val) - 0.15 * len(y)) <= 9 / 2 + 1e-9  # within half a segment
    # Each distinct row is one group: (subject, recording) pairs are whole people here,
    # and holding one out would remove a class: the clear error.
    with pytest.raises(ValueError, match=r"cannot hold out any.*\(subject, recording, segment\)"
                                         r".*early_stopping=False"):
        validation_split(y, rows[:, :2], 0.15, random_state=seed)


def test_validation_split_skips_groups_that_hold_a_class():
    # Class 2 lives in one group only: that group is never held out, whatever the seed.
    y = np.array([0] * 6 + [1] * 6 + [2] * 3)
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6])
    for seed in range(20):
        train, val = validation_split(y, groups, 0.3, random_state=seed)
        assert 6 not in groups[val] and len(val) > 0
        assert set(y[train]) == {0, 1, 2}
    # When every admissible group is larger than the target, the smallest one is held out.
    y = np.array([0] * 10 + [1] * 10)
    groups = np.repeat([0, 1, 2, 3], [6, 4, 7, 3])
    for seed in range(5):
        _, val = validation_split(y, groups, 0.01, random_state=seed)
        assert set(groups[val]) == {3}  # the smallest group (3 samples)
    with pytest.raises(ValueError, match="at least 3 samples"):
        validation_split(np.array([0, 1]), None, 0.5, random_state=0)


def test_ts_cnn_reproducible_with_random_state(sinusoids):
    X, y, groups, X_test, _ = sinusoids
    params = dict(TS_FAST, max_epochs=3, random_state=7)
    p1 = TimeSeriesCNNClassifier(**params).fit(X, y, groups=groups).predict_proba(X_test)
    p2 = TimeSeriesCNNClassifier(**params).fit(X, y, groups=groups).predict_proba(X_test)
    assert_array_equal(p1, p2)
    params["random_state"] = 8
    p3 = TimeSeriesCNNClassifier(**params).fit(X, y, groups=groups).predict_proba(X_test)
    assert not np.allclose(p1, p3)


def test_ts_cnn_pickle_round_trip(fitted_ts, sinusoids):
    X_test = sinusoids[3]
    restored = pickle.loads(pickle.dumps(fitted_ts))
    assert_array_equal(restored.predict_proba(X_test), fitted_ts.predict_proba(X_test))
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    # The clone is unfitted and keeps the parameters.
    assert clone(fitted_ts).get_params() == fitted_ts.get_params()


def test_ts_cnn_torch_model_matches_predict(fitted_ts, sinusoids):
    X_test = sinusoids[3]
    module = fitted_ts.torch_model()
    assert not module.training
    with torch.no_grad():
        logits = module(torch.from_numpy(X_test[:10]))
    assert_allclose(
        torch.log_softmax(logits.double(), 1).numpy(),
        fitted_ts.predict_log_proba(X_test[:10]),
        atol=1e-5,
    )


def test_ts_cnn_bad_input(fitted_ts, sinusoids):
    X, y, groups, _, _ = sinusoids
    with pytest.raises(ValueError, match="expecting 128 features"):
        fitted_ts.predict(X[:, :32])
    with pytest.raises(ValueError, match="3-D array"):
        fitted_ts.predict(X[..., None])
    X_nan = X.copy()
    X_nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted_ts.predict(X_nan)
    clf = TimeSeriesCNNClassifier(**TS_FAST, max_epochs=1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clone(clf).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clone(clf).fit(X, y, groups=groups[:-1])
    with pytest.raises(ValueError, match="cannot hold out any of the 1 group"):
        clone(clf).fit(X, y, groups=np.zeros(len(X)))
    with pytest.raises(ValueError, match="requires y"):
        clone(clf).fit(X, None)
    with pytest.raises(ValueError, match="n_filters"):
        clone(clf).set_params(n_filters=0).fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        clone(clf).set_params(class_weight="unknown").fit(X, y)


def test_ts_cnn_groups_routed_by_cross_validate(sinusoids):
    X, y, groups, _, _ = sinusoids
    clf = TimeSeriesCNNClassifier(**TS_FAST, max_epochs=1, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            clf, X, y, cv=GroupKFold(n_splits=2), params={"groups": groups},
            return_estimator=True, return_indices=True,
        )
    for est, train, test in zip(result["estimator"], *result["indices"].values()):
        # The estimator received the training fold's groups only.
        assert set(est.validation_groups_) <= set(groups[train])
        assert not set(est.validation_groups_) & set(groups[test])


def test_ts_cnn_accepts_window_group_rows(sinusoids):
    # The (subject, recording, segment) rows of window_groups, as metadata routing
    # sends them: one "recording" per class, several segments in each.
    X, y, groups, _, _ = sinusoids
    label = np.unique(y, return_inverse=True)[1]
    rows = np.column_stack([label, np.full(len(y), 7), groups])
    clf = TimeSeriesCNNClassifier(**TS_FAST, max_epochs=2, random_state=0)
    clf.fit(X, y, groups=rows)
    held = clf.validation_groups_
    assert held.ndim == 2 and held.shape[1] == 3 and len(held) > 0
    assert set(held[:, 0]) <= set(label)
    val = (rows[:, None, :] == held[None]).all(axis=2).any(axis=1)
    n_valid = sum(b.get("valid_batch_size", 0) for b in clf.history_[0, "batches"])
    assert n_valid == val.sum() and set(y[~val]) == set(y)
    # Rows that are whole classes cannot be held out: the clear error, not ~0 accuracy.
    with pytest.raises(ValueError, match="finer groups"):
        clone(clf).fit(X, y, groups=rows[:, :2])
    # Mixed-type rows (e.g. from a DataFrame with string subjects) work too.
    named = rows.astype(object)
    named[:, 0] = np.array(["ann", "bob", "cid"])[label]
    held_named = clone(clf).set_params(max_epochs=1).fit(X, y, groups=named).validation_groups_
    assert held_named.dtype == object and held_named.shape == held.shape
    assert [tuple(r) for r in held_named[:, 1:]] == [tuple(r) for r in held[:, 1:]]
    # Without early stopping the groups are only validated.
    clone(clf).set_params(early_stopping=False).fit(X, y, groups=rows[:, :2])
    with pytest.raises(ValueError, match="distinct rows"):
        clone(clf).fit(X, y, groups=rows[:, :, None])


def test_ts_cnn_class_weight_and_verbose(capsys):
    # Uninformative windows: only the class weights can move the decision.
    rng = np.random.default_rng(0)
    X, X_test = rng.standard_normal((84, 32, 2)), rng.standard_normal((40, 32, 2))
    y = np.array(["slow"] * 40 + ["mid"] * 40 + ["fast"] * 4)
    weights = {"fast": 1000.0, "mid": 1e-3, "slow": 1e-3}
    clf = TimeSeriesCNNClassifier(
        **TS_FAST, max_epochs=3, class_weight=weights, early_stopping=False,
        verbose=1, random_state=0,
    ).fit(X, y)
    assert np.mean(clf.predict(X_test) == "fast") > 0.9
    unweighted = clone(clf).set_params(class_weight=None, verbose=0).fit(X, y)
    assert np.mean(unweighted.predict(X_test) == "fast") < 0.5
    out = capsys.readouterr()
    # The library's one progress bar (tqdm, on stderr): one step per epoch.
    assert "TimeSeriesCNNClassifier" in out.err and "3/3" in out.err
    assert clf.n_iter_ == 3 and clf.best_epoch_ == 3 and clf.validation_groups_ is None
    balanced = clone(clf).set_params(class_weight="balanced", verbose=0).fit(X, y)
    assert balanced.predict_proba(X_test).shape == (len(X_test), 3)


def test_class_weighted_cross_entropy_weights_each_sample():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 0, 1])  # no class 2
    weight = torch.tensor([0.5, 2.0, 100.0])
    per_sample = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    expected = (per_sample * weight[target]).mean()
    assert torch.allclose(ClassWeightedCrossEntropy(weight)(logits, target), expected)
    assert torch.allclose(ClassWeightedCrossEntropy()(logits, target), per_sample.mean())


# -- MotionFeatures -------------------------------------------------------------------
def reference_features(x, fs, lag_range):
    """Straightforward per-channel features of one window ``(T, d)`` (loops, scipy)."""
    T, d = x.shape
    out = {}
    for c in range(d):
        s = x[:, c].astype(np.float64)
        sc = s - s.mean()
        ref = {
            "mean": s.mean(), "std": s.std(), "min": s.min(), "max": s.max(),
            "p10": np.percentile(s, 10), "p50": np.median(s), "p90": np.percentile(s, 90),
            "skew": scipy.stats.skew(s), "kurtosis": scipy.stats.kurtosis(s),
            "mad": np.mean(np.abs(sc)),
            "zcr": sum(sc[t] * sc[t + 1] < 0 for t in range(T - 1)) / (T - 1),
            "energy": np.mean(s**2),
        }
        # Band powers from the two-sided DFT: power at +f and -f, divided by T^2.
        full = np.abs(np.fft.fft(sc)) ** 2 / T**2
        fr = np.abs(np.fft.fftfreq(T, d=1 / fs))
        ref["band_0-3Hz"] = full[(fr >= 0) & (fr < 3)].sum()
        ref["band_3-25Hz"] = full[(fr >= 3) & (fr <= 25)].sum()
        acf = np.array([np.dot(sc[: T - k], sc[k:]) for k in range(T)]) / np.dot(sc, sc)
        lo, hi = int(np.ceil(lag_range[0] * fs)), int(np.floor(lag_range[1] * fs))
        peaks = [k for k in range(max(lo, 1), min(hi, T - 2) + 1)
                 if acf[k] >= acf[k - 1] and acf[k] > acf[k + 1]]
        best = max(peaks, key=lambda k: acf[k])
        ref["acf_peak_lag"] = best / fs
        ref["acf_peak_height"] = acf[best]
        out.update({f"ch{c}_{k}": v for k, v in ref.items()})
    out["corr_ch0_ch1"] = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    return out


def test_motion_features_match_reference():
    X, _ = make_sinusoids(2, T=96, seed=3)
    mf = MotionFeatures(percentiles=(10, 50, 90), band_edges=(0, 3, 25),
                        autocorr_lag_range=(0.1, 1.2)).fit(X)
    feats = mf.transform(X)
    names = list(mf.get_feature_names_out())
    assert feats.shape == (len(X), len(names)) and feats.dtype == np.float64
    for i in (0, 5):
        ref = reference_features(X[i], FS, (0.1, 1.2))
        for name, value in ref.items():
            assert feats[i, names.index(name)] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_motion_features_pure_sinusoid():
    t = np.arange(100) / FS
    X = np.stack([3.0 * np.sin(2 * np.pi * 2.0 * t), np.cos(2 * np.pi * 7.0 * t)], axis=-1)
    mf = MotionFeatures(channel_names=["acc_x", "acc_y"]).fit(X[None])
    f = dict(zip(mf.get_feature_names_out(), mf.transform(X[None])[0]))
    assert f["acc_x_dominant_freq"] == pytest.approx(2.0)
    assert f["acc_y_dominant_freq"] == pytest.approx(7.0)
    # All the power A^2 / 2 of the sinusoid lies in the band holding its frequency.
    assert f["acc_x_band_1-3Hz"] == pytest.approx(4.5)
    assert f["acc_x_band_0-1Hz"] + f["acc_x_band_3-6Hz"] == pytest.approx(0.0, abs=1e-12)
    assert f["acc_y_band_6-12Hz"] == pytest.approx(0.5)
    assert f["acc_x_acf_peak_lag"] == pytest.approx(0.5)  # period of 2 Hz
    assert f["acc_x_zcr"] == pytest.approx(7 / 99)  # 8 crossings of which 1 at t = 0
    assert f["acc_x_energy"] == pytest.approx(4.5)
    assert abs(f["corr_acc_x_acc_y"]) < 1e-10


def test_motion_features_constant_and_tiny_windows_are_finite():
    X = np.ones((3, 1, 2))  # one timestamp
    feats = MotionFeatures().fit_transform(X)
    assert np.all(np.isfinite(feats))
    X = np.full((2, 40, 2), 5.0)
    mf = MotionFeatures().fit(X)
    f = dict(zip(mf.get_feature_names_out(), mf.transform(X)[0]))
    assert np.all(np.isfinite(list(f.values())))
    assert f["ch0_std"] == 0 and f["ch0_skew"] == 0 and f["ch0_kurtosis"] == 0
    assert f["ch0_zcr"] == 0 and f["ch0_dominant_freq"] == 0 and f["corr_ch0_ch1"] == 0


def test_motion_features_chunked_transform_matches():
    X, _ = make_sinusoids(10, T=64, seed=2)
    mf = MotionFeatures().fit(X)
    full = mf.transform(X)
    with sklearn.config_context(working_memory=0.02):  # a few windows per chunk
        chunked = mf.transform(X)
    assert_allclose(chunked, full, rtol=1e-12, atol=1e-12)
    assert_allclose(mf.transform(X[7:9]), full[7:9], rtol=1e-12, atol=1e-12)


def test_motion_features_bad_params_and_input():
    X, _ = make_sinusoids(2, T=32)
    with pytest.raises(ValueError, match="band_edges"):
        MotionFeatures(band_edges=(0, 5, 3)).fit(X)
    with pytest.raises(ValueError, match="percentiles"):
        MotionFeatures(percentiles=(50, 101)).fit(X)
    with pytest.raises(ValueError, match="autocorr_lag_range"):
        MotionFeatures(autocorr_lag_range=(1.0, 0.5)).fit(X)
    with pytest.raises(ValueError, match="channel names"):
        MotionFeatures(channel_names=["a"]).fit(X)
    mf = MotionFeatures().fit(X)
    with pytest.raises(ValueError, match="expecting 64 features"):
        mf.transform(X[:, :10])
    with pytest.raises(ValueError, match="channel names"):
        mf.get_feature_names_out(["a", "b", "c"])


@pytest.mark.parametrize("params, match", [
    # NaN compares False with everything: it used to pass the checks and give zeros.
    (dict(band_edges=(0.0, np.nan, 25.0)), "band_edges must hold finite numbers"),
    (dict(band_edges=(0.0, 3.0, np.inf)), "band_edges must hold finite numbers"),
    (dict(band_edges=(0.0, 3.0, 30.0)), "band_edges must not exceed the Nyquist.*25 Hz"),
    (dict(sampling_rate=20.0), "band_edges must not exceed the Nyquist.*10 Hz"),
    (dict(band_edges=(-1.0, 3.0)), "band_edges .*non-negative"),
    (dict(band_edges=(3.0,)), "band_edges must hold at least 2"),
    (dict(band_edges=((0, 1), (2, 3))), "band_edges must be a flat sequence"),
    (dict(percentiles=(50, np.nan)), "percentiles must hold finite numbers"),
    (dict(percentiles=(50, 50)), "percentiles must be distinct"),
    (dict(percentiles=("median",)), "percentiles must hold numbers"),
    (dict(autocorr_lag_range=(0.1, np.nan)), "autocorr_lag_range must hold finite"),
    (dict(autocorr_lag_range=(np.nan, 1.0)), "autocorr_lag_range must hold finite"),
    (dict(autocorr_lag_range=(0.1, 0.5, 1.0)), "autocorr_lag_range must be"),
    (dict(channel_names=["acc", "acc"]), "channel_names must be distinct"),
    (dict(sampling_rate=np.inf), "sampling_rate"),
    (dict(sampling_rate=np.nan), "sampling_rate"),
])
def test_motion_features_refuses_invalid_parameters(params, match):
    X, _ = make_sinusoids(2, T=32)
    with pytest.raises(ValueError, match=match):
        MotionFeatures(**params).fit(X)


def test_motion_features_band_edges_up_to_nyquist_of_a_lower_rate():
    t = np.arange(80) / 20.0
    X = np.sin(2 * np.pi * 4.0 * t)[None, :, None]  # 4 Hz sampled at 20 Hz
    mf = MotionFeatures(sampling_rate=20.0, band_edges=(0, 2, 5, 10)).fit(X)
    f = dict(zip(mf.get_feature_names_out(), mf.transform(X)[0]))
    assert f["ch0_band_2-5Hz"] == pytest.approx(0.5)  # all the power A^2 / 2
    assert f["ch0_dominant_freq"] == pytest.approx(4.0)


def test_motion_features_pandas_output_behind_a_protector():
    import pandas as pd
    from sklearn.pipeline import make_pipeline

    from sklearn_privacy.motion import Downsampler, SSASmoother

    X, y = make_sinusoids(6, T=32, seed=4)
    expected = MotionFeatures().fit(X).get_feature_names_out()
    assert expected[0] == "ch0_mean" and "corr_ch0_ch1" in expected
    pipe = make_pipeline(Downsampler(target_rate=25.0), MotionFeatures())
    pipe.set_output(transform="pandas")
    out = pipe.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(expected) == list(pipe[-1].get_feature_names_out())
    # The protector's windows stay a 3-D array (no DataFrame holds them)...
    protected = pipe[0].transform(X)
    assert isinstance(protected, np.ndarray) and protected.shape == X.shape
    # ...and the table is the features of the protected windows, rows in order.
    assert_allclose(out.to_numpy(), MotionFeatures().fit(protected).transform(protected))
    assert_allclose(pipe.transform(X).to_numpy(), out.to_numpy())
    # The global configuration works too, and a classifier after it sees the names.
    with sklearn.config_context(transform_output="pandas"):
        clf = make_pipeline(Downsampler(target_rate=25.0), MotionFeatures(),
                            LogisticRegression(max_iter=200)).fit(X, y)
    assert list(clf[-1].feature_names_in_) == list(expected)
    # Every protector takes the setting (it used to raise "set_output is not available").
    pipe = make_pipeline(SSASmoother(), MotionFeatures()).set_output(transform="pandas")
    assert pipe[-1]._sklearn_output_config["transform"] == "pandas"
    with pytest.raises(ValueError, match="transform must be"):
        SSASmoother().set_output(transform="arrow")
    # One-channel windows given as a DataFrame keep their index.
    frame = pd.DataFrame(X[:, :, 0], index=[f"w{i}" for i in range(len(X))])
    table = MotionFeatures(channel_names=["acc"]).set_output(transform="pandas")
    assert list(table.fit_transform(frame).index) == list(frame.index)


def test_feature_attacker_learns_and_defaults():
    X, y = make_sinusoids(30, T=64, seed=0)
    X_test, y_test = make_sinusoids(15, T=64, seed=1)
    attacker = make_feature_attacker(random_state=0, sampling_rate=FS)
    assert isinstance(attacker, Pipeline)
    assert isinstance(attacker.named_steps["clf"], HistGradientBoostingClassifier)
    attacker.set_params(clf__max_iter=30)
    assert attacker.fit(X, y).score(X_test, y_test) > 0.9
    custom = make_feature_attacker(LogisticRegression(max_iter=500), correlations=False)
    assert not custom.named_steps["features"].correlations
    assert isinstance(custom.named_steps["clf"], LogisticRegression)


# -- ImageCNNClassifier ----------------------------------------------------------------
def test_image_cnn_learns_colours(fitted_img, squares):
    _, _, X_test, y_test = squares
    assert fitted_img.score(X_test, y_test) > 0.9
    assert fitted_img.n_features_in_ == 16 * 16 * 3
    assert fitted_img.image_shape_in_ == (16, 16)
    # Float input in [0, 1] is the same image as uint8.
    assert_allclose(
        fitted_img.predict_proba(X_test.astype(np.float32) / 255), fitted_img.predict_proba(X_test),
        atol=1e-6,
    )


def test_image_cnn_torch_model_any_size_and_differentiable(fitted_img, squares):
    _, _, X_test, _ = squares
    module = fitted_img.torch_model()
    x = torch.from_numpy(X_test[:8].astype(np.float32) / 255).permute(0, 3, 1, 2)
    logits = module(x)
    assert_allclose(
        torch.log_softmax(logits.double(), 1).detach().numpy(),
        fitted_img.predict_log_proba(X_test[:8]), atol=1e-5,
    )
    # Larger images are resized inside the module (and by predict).
    big = torch.nn.functional.interpolate(x, size=(48, 48), mode="nearest")
    big_np = big.permute(0, 2, 3, 1).numpy()
    assert_array_equal(fitted_img.predict(big_np).shape, (8,))
    assert module(big).shape == (8, 3)
    big.requires_grad_(True)
    module(big)[:, 0].sum().backward()
    assert big.grad is not None and big.grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["wide", "resnet"])
def test_image_cnn_other_architectures_and_pickle(architecture, squares):
    X, y, X_test, _ = squares
    clf = ImageCNNClassifier(
        **IMG_FAST, architecture=architecture, max_epochs=2, augment=True, random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    assert_array_equal(clf.predict_proba(X_test), proba)  # no augmentation at inference
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X_test), proba)


def test_image_cnn_reproducible(squares):
    X, y, X_test, _ = squares
    params = dict(IMG_FAST, max_epochs=2, augment=True, random_state=3)
    p1 = ImageCNNClassifier(**params).fit(X, y).predict_proba(X_test)
    p2 = ImageCNNClassifier(**params).fit(X, y).predict_proba(X_test)
    assert_array_equal(p1, p2)


def test_image_cnn_bad_input(fitted_img, squares):
    X, y, _, _ = squares
    with pytest.raises(ValueError, match=r"\(n_images, height, width, 3\)"):
        fitted_img.predict(X.reshape(len(X), -1))
    with pytest.raises(ValueError, match=r"\(n_images, height, width, 3\)"):
        clone(fitted_img).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fitted_img.predict(X.astype(np.float32))
    with pytest.raises(ValueError, match="architecture"):
        clone(fitted_img).set_params(architecture="vgg").fit(X, y)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        clone(fitted_img).predict(X)


@pytest.mark.parametrize(
    "check",
    [
        sk_checks.check_no_attributes_set_in_init,
        sk_checks.check_parameters_default_constructible,
        sk_checks.check_get_params_invariance,
        sk_checks.check_set_params,
        sk_checks.check_estimator_repr,
        sk_checks.check_estimator_cloneable,
        sk_checks.check_do_not_raise_errors_in_init_or_set_params,
        sk_checks.check_valid_tag_types,
        sk_checks.check_estimator_tags_renamed,
        sk_checks.check_mixin_order,
    ],
    ids=lambda c: c.__name__,
)
def test_image_cnn_data_free_sklearn_checks(check):
    # scikit-learn's harness skips the image classifier (its checks feed 2-D data);
    # the checks that need no data still apply.
    check("ImageCNNClassifier", ImageCNNClassifier())


def test_random_flip_crop_is_a_flip_and_translation():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    pad = 2
    out = random_flip_crop(x, pad)
    assert out.shape == x.shape
    for img, res in zip(x, out):
        candidates = []
        for flipped in (img, img.flip(-1)):
            padded = torch.nn.functional.pad(flipped[None], (pad,) * 4, mode="reflect")[0]
            candidates += [padded[:, i:i + 8, j:j + 8]
                           for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
        assert any(torch.equal(res, c) for c in candidates)
