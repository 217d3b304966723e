"""BaseProtector: routing of sensitive labels, seeding, device, input validation."""

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_privacy.base import BaseProtector
from sklearn_privacy.utils import check_images, check_motion_windows
from sklearn_privacy.utils._torch import resolve_device


class RecordingProtector(BaseProtector):
    """Test protector: records the sensitive labels it was fitted with, adds noise."""

    def __init__(self, strength=0.0, random_state=None, device="auto"):
        self.strength = strength
        self.random_state = random_state
        self.device = device

    def _fit(self, X, y, sensitive_features, *, rng):
        self.seen_sensitive_ = sensitive_features
        self.torch_draw_ = torch.rand(3).numpy()
        self.numpy_draw_ = rng.random_sample(3)
        return self

    def transform(self, X):
        X_valid = self._validate_motion(X, reset=False)
        return self._restore_motion(X_valid + self.strength, X)


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 16, 2)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20)
    X[:, :, 0] += y[:, None]
    s = np.tile([0, 1], 30)
    return X, y, s


def test_sensitive_features_requested_by_default():
    routing = RecordingProtector().get_metadata_routing()
    assert routing.fit.requests["sensitive_features"] is True


def test_pipeline_and_gridsearch_route_sensitive_features(windows):
    X, y, s = windows
    pipe = Pipeline(
        [("protect", RecordingProtector()), ("flat", FunctionTransformer(_flatten)),
         ("app", LogisticRegression(max_iter=200))]
    )
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, {"protect__strength": [0.0, 1.0]}, cv=3)
        search.fit(X, y, sensitive_features=s)
    seen = search.best_estimator_.named_steps["protect"].seen_sensitive_
    np.testing.assert_array_equal(seen, s)  # refit on all data: every label, in order


def test_missing_sensitive_features_is_a_clear_error(windows):
    X, y, _ = windows
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        RecordingProtector().fit(X, y)


def test_sensitive_features_length_mismatch(windows):
    X, y, s = windows
    with pytest.raises(ValueError, match="59 rows but X has 60"):
        RecordingProtector().fit(X, y, sensitive_features=s[:-1])


def test_random_state_seeds_torch(windows):
    X, y, s = windows
    a = RecordingProtector(random_state=3).fit(X, y, sensitive_features=s).torch_draw_
    b = RecordingProtector(random_state=3).fit(X, y, sensitive_features=s).torch_draw_
    c = RecordingProtector(random_state=4).fit(X, y, sensitive_features=s).torch_draw_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_randomstate_instance_is_reproducible(windows):
    X, y, s = windows
    a = RecordingProtector(random_state=np.random.RandomState(7)).fit(X, y, sensitive_features=s)
    b = RecordingProtector(random_state=np.random.RandomState(7)).fit(X, y, sensitive_features=s)
    np.testing.assert_array_equal(a.torch_draw_, b.torch_draw_)
    np.testing.assert_array_equal(a.numpy_draw_, b.numpy_draw_)


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_two_dimensional_input_is_one_channel_and_comes_back_2d(windows):
    X = windows[0][:, :, 0]
    p = RecordingProtector(strength=1.0).fit(X, sensitive_features=np.zeros(len(X)))
    assert (p.n_timestamps_in_, p.n_channels_in_) == (16, 1)
    out = p.transform(X)
    assert out.shape == X.shape
    np.testing.assert_allclose(out, X + 1.0, rtol=1e-6)


def test_dataframe_keeps_index(windows):
    X = pd.DataFrame(windows[0][:, :, 0], index=np.arange(100, 160)[::-1])
    out = RecordingProtector().fit(X, sensitive_features=np.zeros(60)).transform(X)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, X.index)


def test_transform_rejects_other_window_shape(windows):
    X, y, s = windows
    p = RecordingProtector().fit(X, y, sensitive_features=s)
    with pytest.raises(ValueError, match=r"windows of shape \(8, 2\) were given, \(16, 2\) expected"):
        p.transform(X[:, :8])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 16, 2)), "0 sample"),
        (np.full((2, 16, 2), np.nan), "NaN"),
        (np.zeros(5), "Expected 2D array"),
        (np.zeros((2, 3, 4, 5)), "ndim=4"),
        (np.zeros((2, 3), dtype=complex), "Complex data not supported"),
    ],
)
def test_check_motion_windows_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        check_motion_windows(bad)


def test_check_images_conventions():
    imgs = np.full((2, 4, 5, 3), 255, dtype=np.uint8)
    out, was_uint8 = check_images(imgs)
    assert was_uint8 and out.dtype == np.float32 and out.max() == 1.0
    with pytest.raises(ValueError, match=r"\(n_images, height, width, 3\)"):
        check_images(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        check_images(np.full((1, 2, 2, 3), 2.0))
    sizes, _ = check_images([imgs[0], imgs[0, :2]], allow_different_sizes=True)
    assert [im.shape for im in sizes] == [(4, 5, 3), (2, 5, 3)]


def test_make_pipeline_without_routing_passes_step_params(windows):
    X, y, s = windows
    pipe = make_pipeline(RecordingProtector(), FunctionTransformer(_flatten), LogisticRegression())
    pipe.fit(X, y, recordingprotector__sensitive_features=s)
    np.testing.assert_array_equal(pipe[0].seen_sensitive_, s)


def test_base_protector_docstring_has_only_numpydoc_sections():
    docscrape = pytest.importorskip("numpydoc.docscrape")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpydoc warns "Unknown section ..."
        doc = docscrape.ClassDoc(BaseProtector)
    assert any("random_state" in line for line in doc["Notes"])


def test_subclass_overriding_fit_itself_still_works(windows):
    class LegacyProtector(BaseProtector):
        def fit(self, X, y=None, *, sensitive_features=None):
            self._validate_motion(X, reset=True)
            return self

        def transform(self, X):
            return self._restore_motion(self._validate_motion(X, reset=False), X)

    X = windows[0]
    np.testing.assert_array_equal(LegacyProtector().fit_transform(X), X)
