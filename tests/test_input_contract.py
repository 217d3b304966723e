"""Property-based input contract of every public estimator.

Malformed input (NaN, infinity, empty, wrong number of dimensions, wrong channel count
at transform, string or object values, mismatched lengths, single-class labels) and
invalid hyperparameters must raise a ``ValueError`` or ``TypeError`` that says what is
wrong, raised by our own validation or scikit-learn's, never a traceback from inside
torch, numpy or scipy. Valid but unusual input (one sample, float16, bool, lists,
non-contiguous arrays, pandas) must work, keep the sample count and order, and give the
same result as the plain array. With a seed, fitting is deterministic.

Hypothesis is derandomized so that a failure reproduces; examples are few because each
estimator is fitted once per module (transform-time checks) and fit-time checks fail in
validation, before any training.
"""

import os
import re
import traceback

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)

from sklearn_privacy.adversaries import (
    DTWNeighborsClassifier,
    ImageCNNClassifier,
    MotionFeatures,
    RocketClassifier,
    TimeSeriesCNNClassifier,
    make_feature_attacker,
)
from sklearn_privacy.image import (
    ColorFool,
    EdgeFool,
    HeuristicSegmenter,
    ImageClassifier,
    PrivateFGSM,
    TorchSegmenterAdapter,
)
from sklearn_privacy.model_selection import RecordingDisjointSplit, SubjectDisjointSplit
from sklearn_privacy.motion import (
    Downsampler,
    GaussianNoise,
    MotionAnonymizer,
    ReplacementAutoEncoder,
    SSASmoother,
)
from sklearn_privacy.utils.estimator_checks import all_estimators

FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=8,
    # No shrinking: a failing example may train a network, and the first one is clear.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

N, T, D = 12, 16, 2  # motion windows
N_IMG, SIDE = 6, 8  # images

_RNG = np.random.default_rng(0)
X_MOTION = _RNG.normal(size=(N, T, D)).astype(np.float64)
Y_MOTION = np.arange(N) % 3  # activities 0, 1, 2 (RAE: 2 sensitive, 1 neutral)
S_MOTION = np.arange(N) % 2  # who
X_IMG = _RNG.integers(0, 256, size=(N_IMG, SIDE, SIDE, 3), dtype=np.uint8)
S_IMG = np.arange(N_IMG) % 2


def _pool_net():
    """A tiny, seeded 3-class image classifier (the global torch RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 3, kernel_size=1),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        ).eval()


# -- registry: each estimator at its cheapest settings ------------------------------------
#: name -> (factory, labels its fit needs: {"y": ..., "sensitive_features": ...}).
#: After fit, classifiers are applied with ``predict``, the others with ``transform``.
MOTION_PROTECTORS = {
    "Downsampler": (lambda: Downsampler(), {}),
    "SSASmoother": (lambda: SSASmoother(embedding_window=2), {}),
    "GaussianNoise": (lambda: GaussianNoise(random_state=0), {}),
    "MotionAnonymizer": (
        lambda: MotionAnonymizer(
            n_filters=2, classifier_filters=2, n_rounds=1, classifier_epochs=1,
            anonymizer_epochs=1, batch_size=32, device="cpu", random_state=0,
        ),
        {"y": Y_MOTION, "sensitive_features": S_MOTION},
    ),
    "ReplacementAutoEncoder": (
        lambda: ReplacementAutoEncoder(
            sensitive=[2], neutral=[1], max_epochs=1, batch_size=32, device="cpu",
            random_state=0,
        ),
        {"y": Y_MOTION},
    ),
    "MotionFeatures": (lambda: MotionFeatures(), {}),
}
MOTION_CLASSIFIERS = {
    "TimeSeriesCNNClassifier": (
        lambda: TimeSeriesCNNClassifier(
            n_filters=2, kernel_size=3, n_blocks=1, max_epochs=1, early_stopping=False,
            device="cpu", random_state=0,
        ),
        {"y": S_MOTION},
    ),
    "make_feature_attacker": (
        lambda: make_feature_attacker(random_state=0, band_edges=(0.0, 5.0, 25.0)),
        {"y": S_MOTION},
    ),
    "RocketClassifier": (lambda: RocketClassifier(n_kernels=84, random_state=0), {"y": S_MOTION}),
    "DTWNeighborsClassifier": (
        lambda: DTWNeighborsClassifier(n_neighbors=3, sakoe_chiba_radius=2), {"y": S_MOTION}
    ),
}
IMAGE_PROTECTORS = {
    "ColorFool": (
        lambda: ColorFool(_pool_net(), segmenter=None, n_trials=2, device="cpu", random_state=0),
        {},
    ),
    "PrivateFGSM": (
        lambda: PrivateFGSM(_pool_net(), max_iter=1, device="cpu", random_state=0), {}
    ),
    "EdgeFool": (
        lambda: EdgeFool(_pool_net(), max_iter=1, n_channels=3, device="cpu", random_state=0),
        {},
    ),
}
IMAGE_CLASSIFIERS = {
    "ImageCNNClassifier": (
        lambda: ImageCNNClassifier(
            n_filters=2, input_size=8, max_epochs=1, early_stopping=False, device="cpu",
            random_state=0,
        ),
        {"y": S_IMG},
    ),
}
MOTION = {**MOTION_PROTECTORS, **MOTION_CLASSIFIERS}
IMAGE = {**IMAGE_PROTECTORS, **IMAGE_CLASSIFIERS}
ALL = {**MOTION, **IMAGE}
CLASSIFIERS = {**MOTION_CLASSIFIERS, **IMAGE_CLASSIFIERS}


def _apply(est, X):
    return est.predict(X) if hasattr(est, "predict") else est.transform(X)


def _fit(name, X=None, **overrides):
    factory, labels = ALL[name]
    est = factory()
    if X is None:
        X = X_MOTION if name in MOTION else X_IMG
    kwargs = {**labels, **overrides}
    y = kwargs.pop("y", None)
    return est.fit(X, y, **kwargs) if kwargs else est.fit(X, y)


@pytest.fixture(scope="module")
def fitted():
    """Each estimator fitted once on valid data, for the transform-time checks."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _fit(name)
        return cache[name]

    return get


# -- the checker --------------------------------------------------------------------------
_FOREIGN = (
    f"{os.sep}torch{os.sep}", f"{os.sep}numpy{os.sep}", f"{os.sep}scipy{os.sep}",
    f"{os.sep}skorch{os.sep}", f"{os.sep}numba{os.sep}", f"{os.sep}pandas{os.sep}",
)


def _raising_file(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1].filename if frames else ""


def assert_clear_error(func, *words, exc_types=(ValueError, TypeError)):
    """``func()`` raises a ValueError/TypeError, from our or scikit-learn's validation,
    whose message contains one of ``words`` (case-insensitive)."""
    with pytest.raises(exc_types) as info:
        func()
    exc = info.value
    where = _raising_file(exc)
    assert not any(part in where for part in _FOREIGN), (
        f"{type(exc).__name__} raised from inside a dependency ({where}): {exc}"
    )
    assert "sklearn_privacy" in where or f"{os.sep}sklearn{os.sep}" in where, where
    message = str(exc).lower()
    assert any(w.lower() in message for w in words), (
        f"message does not name the problem (expected one of {words}): {exc}"
    )
    return exc


def _n_out(out):
    return len(out)


def _close(a, b):
    """Equal up to the precision of the output dtype (float16 output for float16
    input is allowed to round)."""
    tol = 2e-2 if np.asarray(a).dtype == np.float16 else 1e-4
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- strategies ---------------------------------------------------------------------------
def _corrupt_nonfinite(draw, X):
    X = np.array(X, dtype=np.float64)
    flat = X.reshape(-1)
    idx = draw(st.integers(0, flat.size - 1))
    flat[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return X


@st.composite
def nonfinite_motion(draw):
    return _corrupt_nonfinite(draw, X_MOTION)


@st.composite
def nonfinite_images(draw):
    return _corrupt_nonfinite(draw, X_IMG / 255.0)


@st.composite
def wrong_ndim_motion(draw):
    kind = draw(st.sampled_from(["1d", "4d", "scalar"]))
    if kind == "1d":
        return X_MOTION[:, 0, 0]
    if kind == "4d":
        return X_MOTION[..., np.newaxis]
    return np.float64(draw(st.floats(-1, 1)))


@st.composite
def wrong_shape_images(draw):
    kind = draw(st.sampled_from(["3d", "2d", "5d", "1ch", "4ch", "channels_first"]))
    x = X_IMG
    return {
        "3d": x[0],
        "2d": x[0, :, :, 0],
        "5d": x[np.newaxis],
        "1ch": x[..., :1],
        "4ch": np.concatenate([x, x[..., :1]], axis=-1),
        "channels_first": np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
    }[kind]


@st.composite
def string_values(draw, base):
    X = np.asarray(base).astype(object)
    flat = X.reshape(-1)
    flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(["a", "walk", ""]))
    return X


# -- malformed X at fit: clear errors, before training ------------------------------------
@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(X=nonfinite_motion())
def test_fit_rejects_nonfinite_motion(name, X):
    assert_clear_error(lambda: _fit(name, X), "nan", "inf")


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(X=nonfinite_images())
def test_fit_rejects_nonfinite_images(name, X):
    assert_clear_error(lambda: _fit(name, X), "nan", "inf")


@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(X=wrong_ndim_motion())
def test_fit_rejects_wrong_ndim_motion(name, X):
    assert_clear_error(
        lambda: _fit(name, X), "dimension", "3-d", "2-d", "2d", "3d", "ndim", "shape"
    )


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(X=wrong_shape_images())
def test_fit_rejects_wrong_shape_images(name, X):
    assert_clear_error(lambda: _fit(name, X), "shape")


@pytest.mark.parametrize("name", sorted(ALL))
def test_fit_rejects_empty(name):
    X = X_MOTION[:0] if name in MOTION else X_IMG[:0]
    labels = {k: v[:0] for k, v in ALL[name][1].items()}
    assert_clear_error(lambda: _fit(name, X, **labels), "empty", "0 sample", "at least one")


@pytest.mark.parametrize("name", sorted(MOTION))
def test_fit_rejects_zero_length_windows(name):
    X = X_MOTION[:, :0]
    assert_clear_error(lambda: _fit(name, X), "zero", "timestamp", "empty", "at least")


@pytest.mark.parametrize("name", sorted(ALL))
@FUZZ
@given(data=st.data())
def test_fit_rejects_strings_in_X(name, data):
    X = data.draw(string_values(X_MOTION if name in MOTION else X_IMG))
    assert_clear_error(lambda: _fit(name, X), "string", "numeric", "convert", "dtype", "float")


@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(data=st.data())
def test_ragged_window_lists_name_the_window(name, data, fitted):
    windows = list(X_MOTION)
    i = data.draw(st.integers(1, N - 1))
    windows[i] = data.draw(st.sampled_from(
        [X_MOTION[i, : T - 3], X_MOTION[i, :, :1], np.concatenate([X_MOTION[i]] * 2, axis=1)]
    ))
    for call in (lambda: _fit(name, windows), lambda: _apply(fitted(name), windows)):
        exc = assert_clear_error(call, "same shape")
        assert f"window {i}" in str(exc)


@pytest.mark.parametrize("name", sorted(ALL))
def test_fit_rejects_sparse_X(name):
    from scipy import sparse

    X = sparse.csr_matrix(X_MOTION[:, :, 0] if name in MOTION else X_IMG.reshape(N_IMG, -1))
    assert_clear_error(lambda: _fit(name, X), "sparse", "shape")


@pytest.mark.parametrize("name", sorted(ALL))
def test_fit_rejects_complex_X(name):
    X = (X_MOTION if name in MOTION else X_IMG / 255.0) + 0j
    assert_clear_error(lambda: _fit(name, X), "complex", "numeric", "dtype")


# -- labels at fit -------------------------------------------------------------------------
_LABELLED = sorted(n for n in ALL if ALL[n][1])


@pytest.mark.parametrize("name", _LABELLED)
@FUZZ
@given(data=st.data())
def test_fit_rejects_mismatched_label_lengths(name, data):
    labels = ALL[name][1]
    key = data.draw(st.sampled_from(sorted(labels)))
    delta = data.draw(st.sampled_from([-1, 1, -3]))
    value = labels[key]
    bad = value[:delta] if delta < 0 else np.concatenate([value, value[:delta]])
    assert_clear_error(
        lambda: _fit(name, **{key: bad}), "sample", "rows", "entries", "length", "inconsistent"
    )


@pytest.mark.parametrize("name", _LABELLED)
@FUZZ
@given(data=st.data())
def test_fit_rejects_nonfinite_labels(name, data):
    labels = ALL[name][1]
    key = data.draw(st.sampled_from(sorted(labels)))
    bad = labels[key].astype(np.float64)
    bad[data.draw(st.integers(0, len(bad) - 1))] = data.draw(st.sampled_from([np.nan, np.inf]))
    assert_clear_error(lambda: _fit(name, **{key: bad}), "nan", "inf", "finite", "continuous")


@pytest.mark.parametrize("name", _LABELLED)
@FUZZ
@given(data=st.data())
def test_fit_rejects_2d_column_mismatch_labels(name, data):
    """A label array of the wrong number of dimensions is refused (3-D never fits)."""
    labels = ALL[name][1]
    key = data.draw(st.sampled_from(sorted(labels)))
    bad = labels[key].reshape(-1, 1, 1)
    assert_clear_error(
        lambda: _fit(name, **{key: bad}), "shape", "dim", "1-d", "1d", "2-d"
    )


_SINGLE_CLASS = {
    # name -> the label key whose single class makes learning meaningless (the feature
    # attacker's classifier is the user's scikit-learn estimator: its own contract)
    "TimeSeriesCNNClassifier": "y",
    "ImageCNNClassifier": "y",
    "MotionAnonymizer": "sensitive_features",
}


_TORCH_LABELLED = [
    (name, key)
    for name in _LABELLED
    if name != "make_feature_attacker"  # its classifier is the user's scikit-learn one
    for key in sorted(ALL[name][1])
]


@pytest.mark.parametrize("bad", [None, "x"], ids=["None", "str"])
@pytest.mark.parametrize("name,key", _TORCH_LABELLED)
def test_fit_rejects_unsortable_labels(name, key, bad):
    """Labels mixing types (or holding None) cannot be classes: a clear error, not
    numpy's comparison error from sorting them."""
    for position in (0, 3):  # scikit-learn reads the label type from the first one
        labels = ALL[name][1][key].astype(object)
        labels[position] = bad
        exc = assert_clear_error(lambda: _fit(name, **{key: labels}), key)
        assert re.search(rf"\b{key}\b", str(exc)), exc


@pytest.mark.parametrize("name,key", sorted(_SINGLE_CLASS.items()))
def test_fit_rejects_single_class(name, key):
    n = N if name in MOTION else N_IMG
    assert_clear_error(lambda: _fit(name, **{key: np.zeros(n, dtype=int)}), "class")


def test_motion_anonymizer_rejects_single_class_task():
    """A task with one activity has nothing to preserve: the error names y."""
    exc = assert_clear_error(lambda: _fit("MotionAnonymizer", y=np.zeros(N, dtype=int)), "class")
    assert re.search(r"\by\b", str(exc)), exc


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_string_labels_round_trip(name):
    labels = np.array(["alice", "bob"])[ALL[name][1]["y"]]
    est = _fit(name, y=labels)
    X = X_MOTION if name in MOTION else X_IMG
    pred = est.predict(X)
    assert pred.shape == (len(X),)
    assert set(pred) <= {"alice", "bob"}


def test_motion_anonymizer_string_labels():
    est = _fit(
        "MotionAnonymizer",
        y=np.array(["sit", "walk", "run"])[Y_MOTION],
        sensitive_features=np.array(["ann", "bo"])[S_MOTION],
    )
    assert est.transform(X_MOTION).shape == X_MOTION.shape


# -- transform-time contract ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MOTION))
def test_transform_rejects_wrong_window_shape(name, fitted):
    est = fitted(name)
    for bad in (X_MOTION[:, :, :1], X_MOTION[:, : T - 1], np.concatenate([X_MOTION] * 2, axis=2)):
        assert_clear_error(lambda: _apply(est, bad), "features", "channel", "shape")


@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(X=nonfinite_motion())
def test_transform_rejects_nonfinite_motion(name, X, fitted):
    est = fitted(name)
    assert_clear_error(lambda: _apply(est, X), "nan", "inf")


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(X=nonfinite_images())
def test_transform_rejects_nonfinite_images(name, X, fitted):
    est = fitted(name)
    assert_clear_error(lambda: _apply(est, X), "nan", "inf")


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(X=wrong_shape_images())
def test_transform_rejects_wrong_shape_images(name, X, fitted):
    est = fitted(name)
    assert_clear_error(lambda: _apply(est, X), "shape")


@pytest.mark.parametrize("name", sorted(ALL))
def test_transform_rejects_empty(name, fitted):
    est = fitted(name)
    X = X_MOTION[:0] if name in MOTION else X_IMG[:0]
    assert_clear_error(lambda: _apply(est, X), "empty", "0 sample", "at least one")


@pytest.mark.parametrize("name", sorted(IMAGE))
def test_transform_rejects_out_of_range_float_images(name, fitted):
    est = fitted(name)
    for bad in (X_IMG.astype(np.float32), X_IMG / 255.0 - 0.5):
        assert_clear_error(lambda: _apply(est, bad), "[0, 1]", "range")


@pytest.mark.parametrize("name", sorted(ALL))
def test_unfitted_transform_raises_not_fitted(name):
    from sklearn.exceptions import NotFittedError

    est = ALL[name][0]()
    X = X_MOTION if name in MOTION else X_IMG
    with pytest.raises(NotFittedError):
        _apply(est, X)


# -- valid but unusual input: works, keeps count and order --------------------------------
def _deterministic(name):
    """Whether transforming a subset or a permutation reproduces the full batch's rows.

    GaussianNoise draws fresh noise per call, so it only keeps count and shape.
    """
    return name != "GaussianNoise"


def _motion_variants(draw):
    """(kind, X variant, plain float64 equivalent) of the reference windows."""
    kind = draw(st.sampled_from(
        ["float16", "float32", "int", "bool", "fortran", "strided", "list", "object"]
    ))
    X = X_MOTION
    if kind == "float16":
        v = X.astype(np.float16)
        return kind, v, v.astype(np.float64)
    if kind == "float32":
        v = X.astype(np.float32)
        return kind, v, v.astype(np.float64)
    if kind == "int":
        v = np.round(X * 10).astype(np.int64)
        return kind, v, v.astype(np.float64)
    if kind == "bool":
        v = X > 0
        return kind, v, v.astype(np.float64)
    if kind == "fortran":
        return kind, np.asfortranarray(X), X
    if kind == "strided":
        return kind, np.repeat(X, 2, axis=0)[::2], X
    if kind == "list":
        return kind, X.tolist(), X
    return kind, X.astype(object), X


@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(data=st.data())
def test_transform_accepts_unusual_motion_layouts(name, data, fitted):
    est = fitted(name)
    kind, X, X_ref = _motion_variants(data.draw)
    out = _apply(est, X)
    assert _n_out(out) == N
    if name not in CLASSIFIERS:
        assert np.all(np.isfinite(np.asarray(out, dtype=np.float64))), kind
    if _deterministic(name):
        ref = _apply(est, X_ref)
        if name in CLASSIFIERS:
            np.testing.assert_array_equal(out, ref)
        else:
            _close(out, ref)


@pytest.mark.parametrize("name", sorted(MOTION))
def test_one_channel_2d_and_dataframe(name):
    """2-D input is one channel; a DataFrame in gives a DataFrame out with its index."""
    X2 = X_MOTION[:, :, 0]
    est = _fit(name, X2)
    frame = pd.DataFrame(X2, index=pd.Index(np.arange(100, 100 + N)[::-1], name="window"))
    out = _apply(est, frame)
    assert _n_out(out) == N
    if _deterministic(name):
        ref = _apply(est, X2)
        if name in CLASSIFIERS:
            np.testing.assert_array_equal(out, ref)
        else:
            _close(out, ref)
    if isinstance(out, pd.DataFrame):
        pd.testing.assert_index_equal(out.index, frame.index)


@pytest.mark.parametrize("name", sorted(MOTION))
@FUZZ
@given(perm=st.permutations(range(N)), size=st.integers(1, N))
def test_motion_sample_count_and_order(name, perm, size, fitted):
    est = fitted(name)
    idx = np.asarray(perm)[:size]
    out = _apply(est, X_MOTION[idx])
    assert _n_out(out) == size
    if _deterministic(name):
        full = _apply(est, X_MOTION)
        if name in CLASSIFIERS:
            np.testing.assert_array_equal(out, full[idx])
        else:
            _close(out, np.asarray(full)[idx])


def _image_variants(draw):
    kind = draw(st.sampled_from(["float32", "float64", "float16", "strided", "list", "fortran"]))
    f = (X_IMG / 255.0).astype(np.float32)
    if kind == "float32":
        return f, f
    if kind == "float64":
        return f.astype(np.float64), f
    if kind == "float16":
        v = f.astype(np.float16)
        return v, v.astype(np.float32)
    if kind == "strided":
        return np.repeat(X_IMG, 2, axis=0)[::2], X_IMG
    if kind == "list":
        return list(X_IMG), X_IMG
    return np.asfortranarray(X_IMG), X_IMG


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(data=st.data())
def test_transform_accepts_unusual_image_layouts(name, data, fitted):
    est = fitted(name)
    X, X_ref = _image_variants(data.draw)
    out = _apply(est, X)
    assert _n_out(out) == N_IMG
    ref = _apply(est, X_ref)
    if name in CLASSIFIERS:
        np.testing.assert_array_equal(out, ref)
    else:
        assert [np.shape(o) for o in out] == [np.shape(r) for r in ref]


@pytest.mark.parametrize("name", sorted(IMAGE_PROTECTORS))
def test_image_protectors_take_lists_of_sizes(name, fitted):
    est = fitted(name)
    images = [X_IMG[0], X_IMG[1, :5, :7], X_IMG[2]]
    out = est.transform(images)
    assert isinstance(out, list)
    assert [o.shape for o in out] == [i.shape for i in images]
    assert all(o.dtype == np.uint8 for o in out)


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(data=st.data())
def test_image_lists_with_a_bad_image(name, data, fitted):
    est = fitted(name)
    images = list(X_IMG)
    i = data.draw(st.integers(0, N_IMG - 1))
    images[i] = data.draw(st.sampled_from([X_IMG[i, ..., :2], X_IMG[i, 0], X_IMG[i, ..., None]]))
    exc = assert_clear_error(lambda: _apply(est, images), "shape")
    assert f"image {i}" in str(exc)


def test_one_size_estimators_reject_lists_of_sizes(fitted):
    est = fitted("ImageCNNClassifier")
    images = [X_IMG[0], X_IMG[1, :5, :7]]
    assert_clear_error(lambda: est.predict(images), "same size")
    assert_clear_error(lambda: _fit("ImageCNNClassifier", images, y=[0, 1]), "same size")


def test_integer_images_error_names_dtype(fitted):
    est = fitted("ImageCNNClassifier")
    exc = assert_clear_error(lambda: est.predict(X_IMG.astype(np.int64)), "[0, 1]")
    assert "int64" in str(exc) and "uint8" in str(exc)


@pytest.mark.parametrize("name", sorted(IMAGE))
@FUZZ
@given(perm=st.permutations(range(N_IMG)), size=st.integers(1, N_IMG))
def test_image_sample_count_and_order(name, perm, size, fitted):
    est = fitted(name)
    idx = np.asarray(perm)[:size]
    out = _apply(est, X_IMG[idx])
    assert _n_out(out) == size
    full = _apply(est, X_IMG)
    if _deterministic(name):
        np.testing.assert_array_equal(np.asarray(out), np.asarray(full)[idx])
    else:
        assert np.shape(out) == np.shape(np.asarray(full)[idx])


@pytest.mark.parametrize("name", sorted(ALL))
def test_fit_on_one_sample_works_or_says_why(name):
    """One training sample: either fits (and transforms it) or a clear error says why."""
    X = (X_MOTION if name in MOTION else X_IMG)[:1]
    labels = {k: v[:1] for k, v in ALL[name][1].items()}
    try:
        est = _fit(name, X, **labels)
    except (ValueError, TypeError) as exc:
        where = _raising_file(exc)
        assert not any(part in where for part in _FOREIGN), (where, exc)
        words = ("1 ", "one", "at least", "class", "sample", "window")
        assert any(w in str(exc) for w in words), exc
        return
    assert _n_out(_apply(est, X)) == 1


# -- determinism --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
def test_seeded_fit_is_deterministic(name, fitted):
    X = X_MOTION if name in MOTION else X_IMG
    first = fitted(name)
    again = clone(first)
    kwargs = dict(ALL[name][1])
    y = kwargs.pop("y", None)
    again.fit(X, y, **kwargs)
    if name == "GaussianNoise":
        # Its noise is seeded apart from the rest where it has its own seed (a seed
        # makes the noise reproducible, for experiments).
        params = first.get_params()
        seed = "noise_random_state" if "noise_random_state" in params else "random_state"
        a, b = (clone(first).set_params(**{seed: 0}).fit(X) for _ in range(2))
        np.testing.assert_array_equal(a.transform(X), b.transform(X))
        return
    np.testing.assert_array_equal(np.asarray(_apply(first, X)), np.asarray(_apply(again, X)))


# -- invalid hyperparameters --------------------------------------------------------------
_JUNK = [-1, 0, -0.5, 1.5, 10**9, np.nan, np.inf, "bogus", None, True, [1, 2], (), object()]


def _estimator_for(name):
    est = ALL[name][0]()
    return est.steps[0][1] if hasattr(est, "steps") else est


_CONSTRAINED = sorted(n for n in ALL if n != "make_feature_attacker")


@pytest.mark.parametrize("name", _CONSTRAINED)
def test_every_parameter_is_constrained(name):
    est = _estimator_for(name)
    missing = set(est.get_params(deep=False)) - set(est._parameter_constraints)
    assert not missing, f"{name} parameters without constraints: {sorted(missing)}"


@pytest.mark.parametrize("name", _CONSTRAINED)
def test_invalid_hyperparameter_named_in_error(name):
    """Every constrained parameter, every junk value its constraints refuse: fit raises
    scikit-learn's InvalidParameterError naming that parameter, before any training."""
    X = X_MOTION if name in MOTION else X_IMG
    kwargs = dict(ALL[name][1])
    y = kwargs.pop("y", None)
    constraints = _estimator_for(name)._parameter_constraints
    n_checked = 0
    for param in sorted(constraints):
        for value in _JUNK:
            try:
                validate_parameter_constraints(
                    {param: constraints[param]}, {param: value}, caller_name=name
                )
            except InvalidParameterError:
                pass
            else:
                continue  # a valid value: nothing to check here (it would train)
            est = _estimator_for(name).set_params(**{param: value})
            exc = assert_clear_error(lambda: est.fit(X, y, **kwargs), repr(param))
            assert isinstance(exc, InvalidParameterError)
            n_checked += 1
    assert n_checked >= len(constraints)


_DATA_DEPENDENT = {
    # test id: (estimator factory, word the error must contain)
    "ssa-window-too-long": (lambda: SSASmoother(embedding_window=T + 1), "embedding_window"),
    "ssa-too-many-components": (
        lambda: SSASmoother(n_components=3, embedding_window=2), "n_components"
    ),
    "downsampler-upsampling": (lambda: Downsampler(target_rate=60.0), "target_rate"),
    "features-decreasing-bands": (lambda: MotionFeatures(band_edges=(5.0, 1.0)), "band_edges"),
    "features-negative-percentile": (lambda: MotionFeatures(percentiles=(-1, 50)), "percentiles"),
    "features-nan-percentile": (lambda: MotionFeatures(percentiles=(10, np.nan)), "percentiles"),
    "features-none-percentile": (lambda: MotionFeatures(percentiles=[None]), "percentiles"),
    "features-dict-bands": (lambda: MotionFeatures(band_edges={"a": 1}), "band_edges"),
    "features-one-lag": (lambda: MotionFeatures(autocorr_lag_range=(1.0,)), "autocorr_lag_range"),
    "features-channel-names": (lambda: MotionFeatures(channel_names=["a"]), "channel names"),
    "rae-overlap": (
        lambda: ReplacementAutoEncoder(sensitive=[1], neutral=[1], device="cpu"), "disjoint"
    ),
    "rae-none-sensitive": (
        lambda: ReplacementAutoEncoder(sensitive=[None], neutral=[1], device="cpu"),
        "sensitive",
    ),
    "rae-dict-neutral": (
        lambda: ReplacementAutoEncoder(sensitive=[2], neutral={"a": 1}, device="cpu"),
        "neutral",
    ),
    "aae-cnn-head-without-bottleneck": (
        lambda: MotionAnonymizer(task_head="cnn", device="cpu"), "task_head"
    ),
}


@pytest.mark.parametrize("case", sorted(_DATA_DEPENDENT))
def test_data_dependent_parameter_errors(case):
    make, param = _DATA_DEPENDENT[case]
    est = make()
    kwargs = {}
    if isinstance(est, (ReplacementAutoEncoder, MotionAnonymizer)):
        kwargs = {"y": Y_MOTION}
    if isinstance(est, MotionAnonymizer):
        kwargs["sensitive_features"] = S_MOTION
    y = kwargs.pop("y", None)
    assert_clear_error(lambda: est.fit(X_MOTION, y, **kwargs).transform(X_MOTION), param)


@pytest.mark.parametrize("name", sorted(MOTION))
@pytest.mark.parametrize("scale", [0.0, 1e-30, 1e30])
def test_extreme_but_finite_windows_give_finite_output(name, scale):
    """Constant, tiny and huge (but float32-finite) windows are valid input: the
    output is finite (no overflow in a variance, no division by a zero spread)."""
    X = X_MOTION * scale + 3.0 * (scale == 0.0)
    out = _apply(_fit(name, X), X)
    assert _n_out(out) == N
    if name not in CLASSIFIERS:
        assert np.all(np.isfinite(np.asarray(out, dtype=np.float64)))


def test_gaussian_noise_overflowing_sigma():
    """A sigma whose noise overflows float32 is refused (naming sigma) or clipped, but
    never returns infinite windows."""
    est = GaussianNoise(sigma=1e300, random_state=0)
    try:
        out = est.fit_transform(X_MOTION)
    except (ValueError, TypeError) as exc:
        assert "sigma" in str(exc)
    else:
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", _LABELLED)
def test_pandas_labels_are_read_by_position(name, fitted):
    """Labels as a Series with its own index give the same model as the plain array."""
    labels = {
        k: pd.Series(v, index=np.arange(len(v))[::-1] + 1000) for k, v in ALL[name][1].items()
    }
    X = X_MOTION if name in MOTION else X_IMG
    est = _fit(name, **labels)
    np.testing.assert_array_equal(np.asarray(_apply(est, X)), np.asarray(_apply(fitted(name), X)))


# -- image helpers that are not estimators ---------------------------------------------------
_IMAGE_CALLABLES = {
    "ImageClassifier": lambda: ImageClassifier(_pool_net(), input_size=8, device="cpu").predict,
    "HeuristicSegmenter": lambda: HeuristicSegmenter(),
    "TorchSegmenterAdapter": lambda: TorchSegmenterAdapter(
        torch.nn.Conv2d(3, 5, kernel_size=1), {"sky": [1], "water": [3, 4]}, device="cpu"
    ),
}


@pytest.mark.parametrize("name", sorted(_IMAGE_CALLABLES))
@FUZZ
@given(X=wrong_shape_images())
def test_image_helpers_reject_wrong_shapes(name, X):
    func = _IMAGE_CALLABLES[name]()
    assert_clear_error(lambda: func(X), "shape")


@pytest.mark.parametrize("name", sorted(_IMAGE_CALLABLES))
@FUZZ
@given(X=nonfinite_images())
def test_image_helpers_reject_nonfinite(name, X):
    func = _IMAGE_CALLABLES[name]()
    assert_clear_error(lambda: func(X), "nan", "inf")


@pytest.mark.parametrize("name", sorted(_IMAGE_CALLABLES))
def test_image_helpers_reject_empty(name):
    func = _IMAGE_CALLABLES[name]()
    assert_clear_error(lambda: func(X_IMG[:0]), "empty", "at least one")


@pytest.mark.parametrize("name", sorted(_IMAGE_CALLABLES))
def test_image_helpers_reject_strings(name):
    func = _IMAGE_CALLABLES[name]()
    strings = X_IMG.astype(object)
    strings[0, 0, 0, 0] = "x"
    assert_clear_error(lambda: func(strings), "numeric", "dtype", "string", "convert")


@pytest.mark.parametrize("name", sorted(_IMAGE_CALLABLES))
@FUZZ
@given(perm=st.permutations(range(N_IMG)), size=st.integers(1, N_IMG))
def test_image_helpers_keep_count_and_order(name, perm, size):
    func = _IMAGE_CALLABLES[name]()
    idx = np.asarray(perm)[:size]
    out, full = func(X_IMG[idx]), func(X_IMG)
    if isinstance(out, dict):
        for region in out:
            assert len(out[region]) == size
            np.testing.assert_allclose(out[region], full[region][idx], atol=1e-6)
    else:
        np.testing.assert_array_equal(out, full[idx])


@pytest.mark.parametrize("name", ["HeuristicSegmenter", "TorchSegmenterAdapter"])
def test_segmenters_read_uint8_as_0_255(name):
    """uint8 images follow the [0, 255] convention, like everywhere else (or are refused
    clearly), never read as floats in [0, 255]."""
    segment = _IMAGE_CALLABLES[name]()
    try:
        as_uint8 = segment(X_IMG)
    except ValueError as exc:
        assert "uint8" in str(exc) or "[0, 1]" in str(exc), exc
    else:
        as_float = segment(X_IMG / 255.0)
        for region in as_float:
            np.testing.assert_allclose(as_uint8[region], as_float[region], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": (8,)}, "input_size"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"std": [1.0, 0.0, 1.0]}, "std"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"device": 3}, "device"),
        ({"antialias": "yes"}, "antialias"),
    ],
)
def test_image_classifier_invalid_parameters(kwargs, param):
    assert_clear_error(lambda: ImageClassifier(_pool_net(), **kwargs), param)


def test_image_classifier_rejects_non_classifier():
    assert_clear_error(lambda: ImageClassifier("resnet"), "classifier")


# -- splitters ------------------------------------------------------------------------------
_SPLITTERS = {
    "RecordingDisjointSplit": RecordingDisjointSplit,
    "SubjectDisjointSplit": SubjectDisjointSplit,
}
_GROUPS = np.column_stack([np.repeat([1, 2, 3], 4), np.tile([10, 10, 11, 11], 3)])


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
@FUZZ
@given(n_splits=st.sampled_from([-1, 0, 1, 2.5, "2", None, True, np.nan]))
def test_splitter_invalid_n_splits(name, n_splits):
    assert_clear_error(lambda: _SPLITTERS[name](n_splits=n_splits), "n_splits")


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
@FUZZ
@given(shuffle=st.sampled_from(["yes", 1, None, np.bool_(True)]), seed=st.sampled_from([None, 0]))
def test_splitter_invalid_shuffle(name, shuffle, seed):
    if isinstance(shuffle, np.bool_):
        # numpy booleans are booleans: accepted like True.
        _SPLITTERS[name](n_splits=2, shuffle=shuffle, random_state=seed)
        return
    assert_clear_error(lambda: _SPLITTERS[name](n_splits=2, shuffle=shuffle), "shuffle")


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
def test_splitter_invalid_random_state(name):
    assert_clear_error(
        lambda: list(_SPLITTERS[name](n_splits=2, shuffle=True, random_state="seed").split(
            X_MOTION, groups=_GROUPS)),
        "random_state",
    )


@st.composite
def bad_groups(draw):
    kind = draw(st.sampled_from(["short", "long", "nan", "3d", "4cols", "none", "mixed"]))
    g = _GROUPS.astype(np.float64)
    if kind == "short":
        return g[:-draw(st.integers(1, 5))]
    if kind == "long":
        return np.vstack([g, g[:draw(st.integers(1, 5))]])
    if kind == "nan":
        g[draw(st.integers(0, N - 1)), draw(st.integers(0, 1))] = np.nan
        return g
    if kind == "3d":
        return g[:, :, np.newaxis]
    if kind == "4cols":
        return np.column_stack([g, g])
    if kind == "none":
        return None
    mixed = g.astype(object)
    mixed[0, 0] = "alice"
    return mixed


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
@FUZZ
@given(groups=bad_groups())
def test_splitter_rejects_bad_groups(name, groups):
    cv = _SPLITTERS[name](n_splits=2)
    assert_clear_error(
        lambda: list(cv.split(X_MOTION, S_MOTION, groups)),
        "groups", "rows", "nan", "sortable", "shape",
    )


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
def test_splitter_rejects_empty(name):
    cv = _SPLITTERS[name](n_splits=2)
    assert_clear_error(lambda: list(cv.split(X_MOTION[:0], groups=_GROUPS[:0])), "empty")


@pytest.mark.parametrize("name", sorted(_SPLITTERS))
@FUZZ
@given(data=st.data())
def test_splitter_partitions_samples(name, data):
    """Every sample is tested exactly once (recording split: subjects with enough
    recordings), whatever the id types; order of indices is sorted."""
    kind = data.draw(st.sampled_from(["int", "str", "frame", "list", "float"]))
    g = _GROUPS
    groups = {
        "int": g,
        "str": np.char.add("s", g.astype(str)),
        "frame": pd.DataFrame(g, columns=["subject", "recording"]),
        "list": g.tolist(),
        "float": g.astype(np.float64),
    }[kind]
    shuffle = data.draw(st.booleans())
    cv = _SPLITTERS[name](n_splits=2, shuffle=shuffle, random_state=0 if shuffle else None)
    folds = list(cv.split(X_MOTION, groups=groups))
    assert len(folds) == cv.get_n_splits()
    tested = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(N))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        np.testing.assert_array_equal(train, np.sort(train))
    again = list(cv.split(X_MOTION, groups=groups))
    for (a, b), (c, d) in zip(folds, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_every_public_estimator_is_in_the_registry():
    names = {name for name, _ in all_estimators()}
    assert names <= set(ALL), sorted(names - set(ALL))
