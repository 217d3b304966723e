"""TimeSeriesCNNClassifier's architectures, augmentation and learning-rate schedule."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

from sklearn_privacy.adversaries import TimeSeriesCNNClassifier
from sklearn_privacy.adversaries._ts_modules import (
    ARCHITECTURES,
    InceptionTimeNet,
    TimeSeriesNet,
    augment_windows,
)

FS = 50.0
ARCHS = sorted(ARCHITECTURES)
# Small networks: each fit takes a second or two.
FAST = dict(n_filters=8, lr=1e-2, batch_size=32, dropout=0.0)


def make_sinusoids(n_per_class, *, T=64, seed=0, freqs=(1.5, 4.0, 9.0)):
    """Two-channel windows whose frequency gives the class; random phase and gain."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FS
    f = np.repeat(np.asarray(freqs), n_per_class)
    phase = rng.uniform(0, 2 * np.pi, size=(f.size, 1, 2))
    X = np.sin(2 * np.pi * f[:, None, None] * t[None, :, None] + phase)
    X *= rng.uniform(0.8, 1.25, size=(f.size, 1, 2))
    X += 0.1 * rng.standard_normal(X.shape)
    return X.astype(np.float32), np.repeat(np.arange(len(freqs)), n_per_class)


@pytest.fixture(scope="module")
def sinusoids():
    X, y = make_sinusoids(20, seed=0)
    X_test, y_test = make_sinusoids(15, seed=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def fitted(sinusoids):
    X, y, _, _ = sinusoids
    return {
        arch: TimeSeriesCNNClassifier(
            architecture=arch, **FAST, max_epochs=10, early_stopping=False, random_state=0,
        ).fit(X, y)
        for arch in ARCHS
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_learns_frequencies(fitted, sinusoids, arch):
    _, _, X_test, y_test = sinusoids
    clf = fitted[arch]
    assert clf.module_.architecture == arch
    assert clf.score(X_test, y_test) > 0.9


def test_architectures_follow_the_papers():
    kwargs = dict(dropout=0.0, mean=np.zeros(3), std=np.ones(3), augment=False)
    resnet = TimeSeriesNet(3, 5, architecture="resnet", n_filters=64, kernel_size=8,
                           n_blocks=3, **kwargs)
    convs = [m for m in resnet.body.modules() if isinstance(m, torch.nn.Conv1d)]
    # Three blocks of kernels 8, 5, 3 plus a 1x1 shortcut each; widths 64, 128, 128.
    assert [c.kernel_size[0] for c in convs] == [8, 5, 3, 1] * 3
    assert [c.out_channels for c in convs[::4]] == [64, 128, 128]
    inception = InceptionTimeNet(3, n_filters=32, kernel_size=40, n_blocks=6)
    module = inception.inception[0]
    assert [c.kernel_size[0] for c in module.convs] == [39, 19, 9]
    assert inception.out_channels == 128 and len(inception.shortcuts) == 2
    # The estimator's n_filters=64 gives InceptionTime's 32 filters per branch.
    X, y = make_sinusoids(4, T=16)
    clf = TimeSeriesCNNClassifier(architecture="inception", max_epochs=1,
                                  early_stopping=False, random_state=0).fit(X, y)
    assert clf.module_.body.out_channels == 128
    assert [c.kernel_size[0] for c in clf.module_.body.inception[0].convs] == [39, 19, 9]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("T", [1, 2, 7, 33])
def test_odd_and_short_windows(arch, T):
    X, y = make_sinusoids(6, T=T, seed=2)
    clf = TimeSeriesCNNClassifier(architecture=arch, n_filters=4, max_epochs=1, batch_size=8,
                                  early_stopping=False, random_state=0).fit(X, y)
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 3)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((2, T + 1, 2)))


def test_augmentation_only_while_training(fitted, sinusoids):
    X_test = sinusoids[2]
    clf = fitted["resnet"]
    assert clf.module_.augment and not clf.module_.training
    first = clf.predict_proba(X_test)
    assert_array_equal(clf.predict_proba(X_test), first)
    # The same weights without augmentation predict the same: it is off at predict.
    plain = pickle.loads(pickle.dumps(clf))
    plain.module_.augment = False
    assert_array_equal(plain.predict_proba(X_test), first)
    # In training mode the network does perturb its input.
    module = pickle.loads(pickle.dumps(clf)).module_
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.eval()  # only the augmentation is random in train mode
    module.train()
    x = torch.from_numpy(X_test[:8])
    with torch.no_grad():
        assert not torch.allclose(module(x), module(x))


def test_augment_windows_perturbs_without_changing_shape():
    gen_state = torch.random.get_rng_state()
    x = torch.randn(4, 3, 50)
    torch.manual_seed(0)
    a = augment_windows(x)
    torch.manual_seed(0)
    b = augment_windows(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)
    # Only the shift: every window is a circular roll of the original.
    rolled = augment_windows(x, scale=0.0, jitter=0.0)
    for i in range(4):
        assert any(torch.equal(rolled[i], torch.roll(x[i], s, dims=-1)) for s in range(50))
    assert torch.equal(augment_windows(x, scale=0.0, jitter=0.0, shift=False), x)
    torch.random.set_rng_state(gen_state)


@pytest.mark.parametrize("arch", ARCHS)
def test_seeded_reproducibility_leaves_global_state(sinusoids, arch):
    X, y, X_test, _ = sinusoids
    params = dict(architecture=arch, n_filters=4, max_epochs=2, batch_size=32,
                  validation_fraction=0.2, random_state=3)
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    p1 = TimeSeriesCNNClassifier(**params).fit(X, y).predict_proba(X_test)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert_array_equal(np.random.get_state()[1], np_state)
    p2 = TimeSeriesCNNClassifier(**params).fit(X, y).predict_proba(X_test)
    assert_array_equal(p1, p2)
    p3 = TimeSeriesCNNClassifier(**{**params, "random_state": 4}).fit(X, y).predict_proba(X_test)
    assert not np.allclose(p1, p3)


@pytest.mark.parametrize("arch", ARCHS)
def test_pickle_round_trip(fitted, sinusoids, arch):
    X_test = sinusoids[2]
    clf = fitted[arch]
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))
    assert clone(clf).get_params() == clf.get_params()


def test_cosine_schedule_and_constant(sinusoids):
    X, y, _, _ = sinusoids
    params = dict(n_filters=4, max_epochs=4, lr=0.01, early_stopping=False, random_state=0)
    cosine = TimeSeriesCNNClassifier(**params).fit(X, y)
    lrs = cosine.history_[:, "event_lr"]
    assert lrs[0] == pytest.approx(0.01) and all(np.diff(lrs) < 0)
    constant = TimeSeriesCNNClassifier(**params, lr_schedule="constant").fit(X, y)
    assert "event_lr" not in constant.history_[-1]


def test_best_validation_weights_restored_with_augmentation(sinusoids):
    X, y, _, _ = sinusoids
    groups = np.arange(len(y)) // 5
    clf = TimeSeriesCNNClassifier(**FAST, max_epochs=6, patience=2, random_state=0)
    clf.fit(X, y, groups=groups)
    val = np.isin(groups, clf.validation_groups_)
    log_proba = clf.predict_log_proba(X[val])
    val_loss = -log_proba[np.arange(val.sum()), y[val]].mean()
    losses = clf.history_[:, "valid_loss"]
    assert val_loss == pytest.approx(min(losses), rel=1e-4)
    assert val_loss == pytest.approx(losses[clf.best_epoch_ - 1], rel=1e-4)


def test_bad_architecture(sinusoids):
    X, y, _, _ = sinusoids
    with pytest.raises(ValueError, match="architecture"):
        TimeSeriesCNNClassifier(architecture="lstm").fit(X, y)
    with pytest.raises(ValueError, match="lr_schedule"):
        TimeSeriesCNNClassifier(lr_schedule="step").fit(X, y)
    with pytest.raises(ValueError, match="augment"):
        TimeSeriesCNNClassifier(augment="yes").fit(X, y)
