"""Tests of the replacement autoencoder (ReplacementAutoEncoder)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sklearn_privacy.motion._aae import MotionAnonymizer
from sklearn_privacy.motion._rae import ReplacementAutoEncoder

FAST = dict(max_epochs=12, patience=12, batch_size=32, device="cpu", random_state=0)
WHITE, NEUTRAL, SENSITIVE = 0, 1, 2


def make_activities(n=240, n_timestamps=16, seed=0):
    """Three activities, each a fixed waveform with random amplitude and noise."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n)
    t = 2 * np.pi * np.arange(n_timestamps) / n_timestamps
    templates = np.stack(
        [
            np.stack([np.sin(t), np.cos(t)], axis=-1),  # white: kept
            np.stack([np.sin(3 * t), -np.cos(2 * t)], axis=-1),  # neutral: replacement
            np.stack([np.sign(np.sin(2 * t)), np.sin(5 * t)], axis=-1),  # sensitive
        ]
    )
    gain = rng.uniform(0.8, 1.2, (n, 1, 1))
    X = 3.0 + gain * templates[y] + 0.1 * rng.normal(size=(n, n_timestamps, 2))
    who = rng.randint(0, 3, n)
    return X, y, who


@pytest.fixture(scope="module")
def data():
    return make_activities()


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _ = data
    return ReplacementAutoEncoder(sensitive=[SENSITIVE], neutral=[NEUTRAL], **FAST).fit(X, y)


def test_sensitive_windows_read_as_neutral_and_white_windows_kept(fitted):
    X, y, _ = make_activities(n=300, seed=1)  # unseen windows
    app = LogisticRegression(max_iter=1000).fit(X.reshape(len(X), -1), y)  # trained on raw
    assert app.score(X.reshape(len(X), -1), y) > 0.95
    Xt = fitted.transform(X)  # no labels needed
    pred = app.predict(Xt.reshape(len(Xt), -1))
    sensitive, white = y == SENSITIVE, y == WHITE
    assert np.mean(pred[sensitive] == NEUTRAL) > 0.8
    assert np.mean(pred[white] == WHITE) > 0.9
    assert np.mean(pred[y == NEUTRAL] == NEUTRAL) > 0.9
    # White windows are reproduced closely, sensitive ones are not.
    variance = X.var()
    white_mse = np.mean((Xt[white] - X[white]) ** 2) / variance
    sensitive_mse = np.mean((Xt[sensitive] - X[sensitive]) ** 2) / variance
    assert white_mse < 0.1 < sensitive_mse


def test_fitted_attributes(fitted):
    np.testing.assert_array_equal(fitted.classes_, [0, 1, 2])
    np.testing.assert_array_equal(fitted.sensitive_, [SENSITIVE])
    np.testing.assert_array_equal(fitted.neutral_, [NEUTRAL])
    assert 1 <= len(fitted.history_) <= 12
    assert {"train_loss", "valid_loss"} <= set(fitted.history_[0])
    assert fitted.history_[-1]["train_loss"] < fitted.history_[0]["train_loss"]


def test_early_stopping_on_validation_loss(data):
    X, y, _ = data
    params = {**FAST, "max_epochs": 40, "patience": 1}
    rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params)
    rae.fit(X, y)
    assert len(rae.history_) < 40


def _training_pairs(monkeypatch, X, y, **params):
    """The (input, target) windows the autoencoder would be trained on, without training."""
    seen = {}

    def spy(self, X_train, y_train):
        seen["X"], seen["y"] = X_train, y_train
        return self.initialize()

    monkeypatch.setattr("skorch.NeuralNet.fit", spy)
    monkeypatch.setattr("skorch.NeuralNet.trim_for_prediction", lambda self: None)
    params = {**FAST, "validation_fraction": None, **params}
    ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params).fit(X, y)
    return seen["X"], seen["y"]


def test_replacement_pairs_draw_neutral_windows(data, monkeypatch):
    """Each sensitive window's target is a neutral window; others map to themselves."""
    X, y, _ = data
    inputs, targets = _training_pairs(monkeypatch, X, y)
    kept = y != SENSITIVE
    np.testing.assert_array_equal(targets[kept], inputs[kept])
    neutral = inputs[y == NEUTRAL].reshape((y == NEUTRAL).sum(), -1)
    for target in targets[~kept].reshape((~kept).sum(), -1):
        assert np.any(np.all(neutral == target, axis=1))


def test_nearest_pairing_targets_the_closest_neutral_window(data, monkeypatch):
    X, y, _ = data
    inputs, targets = _training_pairs(monkeypatch, X, y, pairing="nearest")
    neutral = inputs[y == NEUTRAL].reshape((y == NEUTRAL).sum(), -1)
    for source, target in zip(inputs[y == SENSITIVE], targets[y == SENSITIVE]):
        distances = ((neutral - source.ravel()) ** 2).sum(axis=1)
        np.testing.assert_array_equal(target.ravel(), neutral[distances.argmin()])


def test_reproducible_and_pickles(fitted, data):
    X, y, _ = data
    params = {**FAST, "max_epochs": 2}
    one = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params).fit(X, y)
    two = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params).fit(X, y)
    np.testing.assert_allclose(one.transform(X), two.transform(X), rtol=1e-5, atol=1e-5)
    other = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**params, "random_state": 1})
    assert not np.allclose(other.fit(X, y).transform(X), one.transform(X), atol=1e-3)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_model_marked_as_cuda_loads_on_cpu(fitted, data):
    state = pickle.loads(pickle.dumps(fitted)).__getstate__()
    state["device_"] = "cuda:0"  # as if trained on a GPU
    restored = ReplacementAutoEncoder.__new__(ReplacementAutoEncoder)
    restored.__setstate__(state)
    assert restored.device_ == "cpu"
    np.testing.assert_array_equal(restored.transform(data[0]), fitted.transform(data[0]))


def test_batched_transform_equals_unbatched_and_layout(fitted, data):
    X = data[0]
    whole = fitted.transform(X)
    small = pickle.loads(pickle.dumps(fitted)).set_params(batch_size=5)
    np.testing.assert_allclose(small.transform(X), whole, rtol=1e-5, atol=1e-5)
    assert fitted.transform(X.astype(np.float32)).dtype == np.float32
    assert whole.dtype == np.float64 and whole.shape == X.shape


def test_pipeline_rae_then_aae_routes_labels_to_both(data):
    """The published combined method: RAE first, then an AAE hiding an attribute."""
    X, y, who = data
    rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**FAST, "max_epochs": 2})
    aae = MotionAnonymizer(
        n_filters=4, classifier_filters=4, n_rounds=1, classifier_epochs=1,
        anonymizer_epochs=1, batch_size=64, device="cpu", random_state=0,
    )
    with config_context(enable_metadata_routing=True):
        pipe = Pipeline([("rae", rae), ("aae", aae)]).fit(X, y, sensitive_features=who)
        routing = pipe.get_metadata_routing()
        assert pipe.transform(X).shape == X.shape
    np.testing.assert_array_equal(pipe.named_steps["rae"].classes_, [0, 1, 2])
    np.testing.assert_array_equal(pipe.named_steps["aae"].classes_, [0, 1, 2])
    np.testing.assert_array_equal(pipe.named_steps["aae"].sensitive_classes_, [0, 1, 2])
    # sensitive_features reaches both; the RAE requests it and ignores it.
    assert "sensitive_features" in str(rae.get_metadata_routing())
    assert "sensitive_features" in str(routing)


def test_sensitive_features_are_ignored_when_passed_directly(data):
    X, y, who = data
    params = {**FAST, "max_epochs": 2}
    a = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params).fit(X, y, sensitive_features=who)
    b = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **params).fit(X, y)
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-5, atol=1e-5)


def test_gate_returns_unflagged_windows_unchanged(data):
    X, y, _ = data
    rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], gate=True, **FAST).fit(X, y)
    X_new, y_new, _ = make_activities(n=300, seed=1)
    flagged = rae.gate_.predict(X_new).astype(bool)
    # The gate finds the sensitive windows (a distinct waveform)...
    assert np.mean(flagged == (y_new == SENSITIVE)) > 0.95
    Xt = rae.transform(X_new)
    # ...every other window comes back bit for bit, the flagged ones are replaced.
    np.testing.assert_array_equal(Xt[~flagged], X_new[~flagged])
    ungated = pickle.loads(pickle.dumps(rae)).set_params(gate=False).transform(X_new)
    np.testing.assert_allclose(Xt[flagged], ungated[flagged], rtol=1e-5)
    app = LogisticRegression(max_iter=1000).fit(X_new.reshape(len(X_new), -1), y_new)
    pred = app.predict(Xt.reshape(len(Xt), -1))
    assert np.mean(pred[y_new == SENSITIVE] == NEUTRAL) > 0.8


def test_gate_without_sensitive_windows_keeps_everything(data):
    X, y, _ = data
    keep = y != SENSITIVE
    with pytest.warns(UserWarning, match="None of the sensitive activities"):
        rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], gate=True,
                                     **{**FAST, "max_epochs": 1}).fit(X[keep], y[keep])
    assert rae.gate_ is None
    np.testing.assert_array_equal(rae.transform(X), X)


def test_no_sensitive_window_in_y_warns(data):
    X, y, _ = data
    keep = y != SENSITIVE
    with pytest.warns(UserWarning, match="None of the sensitive activities"):
        rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**FAST, "max_epochs": 1})
        rae.fit(X[keep], y[keep])


@pytest.mark.parametrize(
    "sensitive, neutral, y_filter, match",
    [
        ([1], [1, 0], None, "disjoint"),
        ([], [1], None, "non-empty"),
        ([2], [7], None, "none of the neutral activities"),
        ([2], [1], "no_y", "requires y to be passed"),
        ([2], [1], "short_y", "y has 3 entries"),
        ([2], [1], "one", "n_samples = 1"),
    ],
)
def test_bad_input(data, sensitive, neutral, y_filter, match):
    X, y, _ = data
    rae = ReplacementAutoEncoder(sensitive, neutral, **FAST)
    if y_filter == "no_y":
        y = None
    elif y_filter == "short_y":
        y = y[:3]
    elif y_filter == "one":
        X, y = X[:1], y[:1]
    with pytest.raises(ValueError, match=match):
        rae.fit(X, y)


# -- hardening -------------------------------------------------------------------------------
def test_requests_sensitive_features_like_every_protector(data):
    # Requested (and ignored), so a pipeline holding only label-free steps accepts it.
    X, y, who = data
    rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**FAST, "max_epochs": 1})
    assert rae.get_metadata_routing().fit.requests["sensitive_features"] is True
    with config_context(enable_metadata_routing=True):
        pipe = Pipeline([("rae", rae), ("clf", LogisticRegression())])
        pipe.fit(X[:, :, 0], y, sensitive_features=who)


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_even_kernel_sizes_are_supported(data, kernel_size):
    # Regression: every even kernel crashed inside torch ("mat1 and mat2 shapes cannot
    # be multiplied"): the convolutions lengthened the windows by one sample.
    from sklearn_privacy.motion._modules import ReplacementNetwork

    for T in (16, 7):
        assert ReplacementNetwork(2, T, kernel_size).eval()(torch.zeros(3, 2, T)).shape == (3, 2, T)
    X, y, _ = data
    rae = ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**FAST, "max_epochs": 2,
                                                            "kernel_size": kernel_size})
    out = rae.fit(X, y).transform(X)
    assert out.shape == X.shape and np.isfinite(out).all()


@pytest.mark.parametrize("lr", [1e6, 10.0])
def test_diverging_training_is_a_clear_error(data, lr):
    X, y, _ = data
    with pytest.raises(ValueError, match=rf"diverged.*lr={lr}.*smaller lr"):
        ReplacementAutoEncoder([SENSITIVE], [NEUTRAL], **{**FAST, "lr": lr}).fit(X, y)


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float64), (np.float32, np.float32), (np.float64, np.float64),
    (np.int64, np.float64),
])
def test_output_dtype_convention(fitted, data, dtype, expected):
    # Regression: float16 input came back float16, against the documented convention.
    X = (4 * data[0]).astype(dtype)
    assert fitted.transform(X).dtype == expected


def test_transform_makes_no_full_size_float64_copy(fitted):
    # Regression: standardising and de-standardising the whole input in float64 took
    # about 6x the input (float32) in temporaries. Now: the output and one batch.
    import tracemalloc

    X = np.random.default_rng(0).normal(size=(2000, 16, 2)).astype(np.float32)
    fitted.transform(X[:10])
    tracemalloc.start()
    try:
        out = fitted.transform(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32
    assert peak <= 1.5 * X.nbytes, peak / X.nbytes
