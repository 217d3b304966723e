"""The torch plumbing every estimator shares: local random state, device, pickling
(CUDA -> CPU), progress, and the template ``fit`` of the protectors."""

import inspect
import io
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from sklearn_privacy.adversaries._torch_base import BaseTorchClassifier
from sklearn_privacy.base import BaseProtector
from sklearn_privacy.image import ImageClassifier, TorchSegmenterAdapter
from sklearn_privacy.motion import (
    Downsampler,
    GaussianNoise,
    SSASmoother,
)
from sklearn_privacy.utils._torch import check_random_state_local, validation_split
from sklearn_privacy.utils.estimator_checks import FAST_TEST_PARAMS, all_estimators

ESTIMATORS = dict(all_estimators())
TORCH_OR_PROTECTOR = sorted(
    name for name, cls in ESTIMATORS.items()
    if issubclass(cls, (BaseProtector, BaseTorchClassifier))
)
#: Extra parameters so each estimator exercises its random parts (noise, validation).
EXTRA = {
    # An explicit noise seed: by default the transform noise is fresh OS entropy.
    "MotionAnonymizer": {"latent_noise": 0.1, "noise_at_transform": True, "noise_random_state": 0},
    "TimeSeriesCNNClassifier": {"early_stopping": True, "max_epochs": 2},
    "ImageCNNClassifier": {"early_stopping": True, "max_epochs": 2},
    "EdgeFool": {"mode": "universal", "max_iter": 2},
}


def _is_image(name):
    cls = ESTIMATORS[name]
    return getattr(cls, "input_kind", None) == "image" or name == "ImageCNNClassifier"


def _param_names(name):
    return set(inspect.signature(ESTIMATORS[name]).parameters)


def _make(name, **params):
    params = {**FAST_TEST_PARAMS.get(name, {}), **EXTRA.get(name, {}), **params}
    return ESTIMATORS[name](**{k: v for k, v in params.items() if k in _param_names(name)})


def _data(name):
    rng = np.random.default_rng(0)
    if _is_image(name):
        X = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
        y = np.tile([0, 1], 6)
        return X, y, y
    X = rng.normal(size=(48, 16, 2)).astype(np.float32)
    y = np.repeat([0, 1, 2], 16)
    s = np.tile([0, 1], 24)
    return X, y, s


def _fit(est, name, X, y, s):
    if isinstance(est, BaseTorchClassifier):
        return est.fit(X, y)
    return est.fit(X, y, sensitive_features=s)


def _output(est, X):
    if isinstance(est, BaseTorchClassifier):
        return est.predict_proba(X)
    return np.asarray(est.transform(X), dtype=np.float64)


def _global_state():
    return np.random.get_state(), torch.get_rng_state()


def _assert_same_state(before, after):
    (np_before, torch_before), (np_after, torch_after) = before, after
    assert np_before[0] == np_after[0] and np_before[2:] == np_after[2:]
    np.testing.assert_array_equal(np_before[1], np_after[1], err_msg="numpy's global state moved")
    assert torch.equal(torch_before, torch_after), "torch's global state moved"


@pytest.mark.parametrize("random_state", [None, 0])
@pytest.mark.parametrize("name", TORCH_OR_PROTECTOR)
def test_fit_and_transform_leave_the_global_random_state_alone(name, random_state):
    X, y, s = _data(name)
    est = _make(name, random_state=random_state)
    np.random.seed(123)
    torch.manual_seed(123)
    before = _global_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _fit(est, name, X, y, s)
        _output(est, X)
    _assert_same_state(before, _global_state())


@pytest.mark.parametrize("name", TORCH_OR_PROTECTOR)
def test_int_random_state_reproduces_the_fit(name):
    X, y, s = _data(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = _output(_fit(_make(name, random_state=0), name, X, y, s), X)
        torch.manual_seed(999)  # the caller's global state plays no part
        np.random.seed(999)
        b = _output(_fit(_make(name, random_state=0), name, X, y, s), X)
    np.testing.assert_array_equal(a, b)


def test_random_state_none_draws_fresh_entropy_not_numpys_global_generator():
    np.random.seed(5)
    a = check_random_state_local(None).randint(1 << 30, size=4)
    np.random.seed(5)
    b = check_random_state_local(None).randint(1 << 30, size=4)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(
        check_random_state_local(3).randint(1 << 30, size=4),
        np.random.RandomState(3).randint(1 << 30, size=4),
    )


def test_validation_split_does_not_touch_numpys_global_generator():
    y = np.repeat([0, 1, 2], 10)
    before = _global_state()
    validation_split(y, None, 0.2, None)
    validation_split(y, np.arange(30) // 3, 0.2, None)
    _assert_same_state(before, _global_state())


# -- device ----------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize(
    "name", [n for n in TORCH_OR_PROTECTOR if "device" in _param_names(n)]
)
def test_explicit_cuda_without_cuda_is_a_clear_error_at_fit(name):
    X, y, s = _data(name)
    est = _make(name, device="cuda")
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not available"):
        _fit(est, name, X, y, s)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_explicit_cuda_without_cuda_in_wrappers():
    net = torch.nn.Conv2d(3, 2, kernel_size=1)
    with pytest.raises(ValueError, match="CUDA is not available"):
        ImageClassifier(net, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        TorchSegmenterAdapter(net, {"sky": [1]}, device="cuda")(np.zeros((1, 4, 4, 3)))


# -- pickling: the real loading paths ----------------------------------------------------
PICKLED = ["MotionAnonymizer", "ReplacementAutoEncoder", "TimeSeriesCNNClassifier",
           "ImageCNNClassifier", "EdgeFool"]

_CHILD = textwrap.dedent(
    """
    import pickle, sys, warnings
    import numpy as np, torch
    assert not torch.cuda.is_available()
    out = {}
    for tag, path in zip(sys.argv[2::2], sys.argv[1::2]):
        with open(path, "rb") as f:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                bundle = pickle.load(f)
        for name, (est, X, method) in bundle.items():
            result = getattr(est, method)(X)
            if isinstance(result, dict):  # a segmenter's masks
                result = np.stack(list(result.values()))
            out[f"{tag}/{name}"] = np.asarray(result, dtype=np.float64)
            out[f"{tag}/{name}/device"] = np.array(str(getattr(est, "device_", "cpu")))
        out[f"{tag}/warnings"] = np.array([str(w.message) for w in caught] or [""])
    np.savez(sys.argv[-1], **out)
    """
)


def _bundle(device="auto"):
    """Fitted estimators and wrappers with their inputs and outputs (in this process)."""
    bundle, expected = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name in PICKLED:
            X, y, s = _data(name)
            est = _fit(_make(name, random_state=0, device=device), name, X, y, s)
            assert str(est.device_).startswith(device if device != "auto" else "")
            method = "predict_proba" if isinstance(est, BaseTorchClassifier) else "transform"
            bundle[name] = (est, X, method)
            expected[name] = _output(est, X)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(3, 2))
    images = np.random.default_rng(1).random((3, 8, 8, 3)).astype(np.float32)
    clf = ImageClassifier(net, input_size=8, device=device)
    bundle["ImageClassifier"] = (clf, images, "decision_function")
    expected["ImageClassifier"] = clf.decision_function(images)
    seg = TorchSegmenterAdapter(torch.nn.Conv2d(3, 3, kernel_size=1), {"sky": [1]}, device=device)
    bundle["TorchSegmenterAdapter"] = (seg, images, "__call__")
    expected["TorchSegmenterAdapter"] = np.stack(list(seg(images).values()))
    return bundle, expected


def _load_without_cuda(tmp_path, **pickles):
    """Unpickle each of ``pickles`` (tag=bytes) in one fresh interpreter that sees no
    GPU; return its outputs, keyed ``tag/name``."""
    args = []
    for tag, data in pickles.items():
        path = tmp_path / f"{tag}.pkl"
        path.write_bytes(data)
        args += [str(path), tag]
    out = tmp_path / "out.npz"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _CHILD, *args, str(out)], check=True, env=env,
                   cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
    return dict(np.load(out))


def _check_outputs(loaded, tag, expected, atol):
    for name, value in expected.items():
        np.testing.assert_allclose(loaded[f"{tag}/{name}"], value, atol=atol, err_msg=name)
        assert str(loaded[f"{tag}/{name}/device"]) == "cpu", name


@contextmanager
def _storages_tagged_as_cuda():
    """Make ``torch.save`` label CPU storages ``cuda:0``, as on a GPU machine.

    Loading such bytes without a CPU map location fails on a machine without CUDA, so
    the unpickling path must choose the map location itself.
    """
    registry = torch.serialization._package_registry
    entry = (-1, lambda obj: "cuda:0" if obj.device.type == "cpu" else None, lambda obj, loc: None)
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a GPU pickle on a CPU machine")
def test_pickles_load_in_a_process_without_cuda(tmp_path):
    bundle, expected = _bundle()
    plain = pickle.dumps(bundle)
    for est, _, _ in bundle.values():  # what a GPU fit records ...
        if hasattr(est, "device_"):
            est.device_ = "cuda:0"
            if hasattr(est, "net_"):
                est.net_.device = "cuda:0"
    with _storages_tagged_as_cuda():  # ... and how its tensors are serialised
        gpu_like = pickle.dumps(bundle)
        buffer = io.BytesIO()
        torch.save(torch.zeros(1), buffer)
    with pytest.raises(RuntimeError, match="CUDA"):  # the bytes really say CUDA
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    loaded = _load_without_cuda(tmp_path, plain=plain, gpu_like=gpu_like)
    _check_outputs(loaded, "plain", expected, atol=1e-6)
    assert str(loaded["plain/warnings"][0]) == ""  # saved on the CPU: nothing to say
    _check_outputs(loaded, "gpu_like", expected, atol=1e-6)
    assert any("CUDA is not available, loading on CPU" in str(w)
               for w in loaded["gpu_like/warnings"])


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_pickles_load_in_a_process_without_cuda(tmp_path):
    bundle, expected = _bundle(device="cuda")
    loaded = _load_without_cuda(tmp_path, gpu=pickle.dumps(bundle))
    _check_outputs(loaded, "gpu", expected, atol=1e-4)  # CPU vs GPU kernels
    assert any("CUDA is not available, loading on CPU" in str(w) for w in loaded["gpu/warnings"])


# -- progress ----------------------------------------------------------------------------
def test_verbose_is_one_tqdm_bar_on_stderr(capsys):
    X, y, s = _data("ReplacementAutoEncoder")
    _make("ReplacementAutoEncoder", verbose=1).fit(X, y)
    X, y, s = _data("EdgeFool")
    _make("EdgeFool", verbose=1).fit(X, sensitive_features=s)
    captured = capsys.readouterr()
    assert captured.out == ""  # no print, no skorch table
    assert "ReplacementAutoEncoder" in captured.err and "2/2" in captured.err
    assert "EdgeFool" in captured.err


# -- the template fit: X, then y, then sensitive_features --------------------------------
def test_replacement_autoencoder_rejects_nan_in_y():
    X, y, _ = _data("ReplacementAutoEncoder")
    y = y.astype(float)
    y[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        _make("ReplacementAutoEncoder").fit(X, y)


def test_motion_anonymizer_rejects_single_class_y_and_warns_without_y():
    X, y, s = _data("MotionAnonymizer")
    with pytest.raises(ValueError, match="needs y with at least 2 classes"):
        _make("MotionAnonymizer").fit(X, np.zeros(len(X)), sensitive_features=s)
    with pytest.warns(UserWarning, match="fitted without y"):
        _make("MotionAnonymizer").fit(X, sensitive_features=s)


def test_fit_validates_x_then_y_then_sensitive_features():
    X, y, s = _data("MotionAnonymizer")
    est = _make("MotionAnonymizer")
    bad_X, bad_y, bad_s = np.full_like(X, np.nan), y[:-1], s[:-2]
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad_X, bad_y, sensitive_features=bad_s)
    with pytest.raises(ValueError, match="y has 47 entries"):
        est.fit(X, bad_y, sensitive_features=bad_s)
    with pytest.raises(ValueError, match="sensitive_features has 46 rows"):
        est.fit(X, y, sensitive_features=bad_s)
    with pytest.raises(ValueError, match="sensitive_features contains NaN or None"):
        est.fit(X, y, sensitive_features=np.array([None] * len(X), dtype=object))


def test_motion_protectors_never_write_state_in_transform():
    X, y, s = _data("MotionAnonymizer")
    for est in [_make("MotionAnonymizer", random_state=0), _make("ReplacementAutoEncoder"),
                Downsampler(), SSASmoother(embedding_window=2)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            est.fit(X, y, sensitive_features=s)
        keys = set(vars(est))
        first = est.transform(X)
        np.testing.assert_array_equal(est.transform(X), first)
        assert set(vars(est)) == keys, type(est).__name__


# -- pandas output -------------------------------------------------------------------------
@pytest.mark.parametrize("protector", [SSASmoother(), GaussianNoise(random_state=0),
                                       Downsampler(restore_length=False)])
def test_set_output_pandas_on_2d_input(protector):
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 50)),
                     columns=[f"t{i}" for i in range(50)], index=np.arange(10, 16)[::-1])
    out = clone(protector).set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, X.index)
    fitted = clone(protector).fit(X)
    assert list(out.columns) == list(fitted.get_feature_names_out())
    if out.shape[1] == X.shape[1]:
        assert list(out.columns) == list(X.columns)


@pytest.mark.parametrize("n_channels", [1, 2])
def test_3d_windows_have_no_feature_names_and_pass_through_pandas_output(n_channels):
    # Windows are no table: without get_feature_names_out, scikit-learn's set_output
    # wrapping returns them as they are, even with a pandas container asked for.
    X = np.random.default_rng(0).normal(size=(4, 32, n_channels))
    smoother = SSASmoother().set_output(transform="pandas").fit(X)
    assert not hasattr(smoother, "get_feature_names_out")
    Xt = smoother.transform(X)
    assert isinstance(Xt, np.ndarray) and Xt.shape == X.shape
