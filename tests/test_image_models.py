"""Accurate-image-classifier recipe, the model cache, and bringing your own image model."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skorch.callbacks import LRScheduler
from torch import nn

from sklearn_privacy.adversaries import ImageCNNClassifier
from sklearn_privacy.adversaries._modules import (
    ClassWeightedCrossEntropy,
    ImageCNN,
    random_flip_crop,
)
from sklearn_privacy.image import ImageClassifier, PrivateFGSM
from sklearn_privacy.utils import cache_key, fit_or_load_cached, get_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def _module(architecture, n_filters=4, input_size=16, augment=False, cutout=0):
    return ImageCNN(
        5, architecture=architecture, n_filters=n_filters, input_size=input_size,
        dropout=0.0, mean=np.zeros(3), std=np.ones(3), augment=augment, cutout=cutout,
    )


def _two_class_images(n=32, size=8, seed=0):
    rng = np.random.RandomState(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.randint(0, 60, (n, size, size, 3)).astype(np.uint8)
    X[y == 1, ..., 0] += 180
    return X, y


# -- architectures and training recipe ---------------------------------------------------
@pytest.mark.parametrize("architecture", ["resnet9", "resnet20"])
@pytest.mark.parametrize("input_size, image_size", [(16, 16), (16, 40), (24, 12)])
def test_new_architectures_map_any_image_size_to_logits(architecture, input_size, image_size):
    module = _module(architecture, input_size=input_size).eval()
    out = module(torch.rand(3, 3, image_size, image_size))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


def test_resnet9_and_resnet20_have_the_published_shapes():
    # ResNet-20 with the paper's width 16: about 0.27 M parameters (19 convs + 1 linear).
    resnet20 = _module("resnet20", n_filters=16)
    convs = [m for m in resnet20.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19
    n_params = sum(p.numel() for p in resnet20.parameters())
    assert 0.26e6 < n_params < 0.28e6
    # ResNet-9: 8 conv layers of 3x3, widest 8 x n_filters.
    resnet9 = _module("resnet9", n_filters=8)
    convs = [m for m in resnet9.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and convs[-1].out_channels == 64


def test_augmentation_only_while_training():
    torch.manual_seed(0)
    module = _module("resnet9", augment=True, cutout=4)
    x = torch.rand(4, 3, 16, 16)
    module.eval()
    assert torch.equal(module(x), module(x))  # deterministic at prediction time
    module.train()
    # Same input, same weights, batch-norm on the same batch: only augmentation differs.
    assert not torch.allclose(module(x), module(x))
    plain = _module("resnet9", augment=False).train()
    assert torch.equal(plain(x), plain(x))


def test_cutout_masks_a_square_with_the_mean_colour():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    torch.manual_seed(1)
    out = random_flip_crop(x, 0, cutout=6)
    torch.manual_seed(1)
    no_cut = random_flip_crop(x, 0)
    changed = (out != no_cut).any(dim=1)  # (n, h, w)
    n_changed = changed.flatten(1).sum(1)
    assert (n_changed > 0).all() and (n_changed <= 36).all()
    mean = no_cut.mean(dim=(-2, -1))
    for i in range(8):
        ys, xs = torch.nonzero(changed[i], as_tuple=True)
        assert torch.allclose(out[i][:, ys, xs], mean[i][:, None].expand(-1, len(ys)))


def test_label_smoothing_matches_torch():
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = ClassWeightedCrossEntropy(label_smoothing=0.2)(logits, target)
    assert torch.isclose(loss, F.cross_entropy(logits, target, label_smoothing=0.2))
    assert not torch.isclose(loss, F.cross_entropy(logits, target))


def test_sgd_onecycle_schedule_is_planned_for_every_batch():
    clf = ImageCNNClassifier(optimizer="sgd", momentum=0.8, lr=0.3, lr_schedule="onecycle",
                             max_epochs=7, label_smoothing=0.1)
    options = {}
    (name, scheduler), = clf._training_options(options, n_batches=5)
    assert options["optimizer"] is torch.optim.SGD and options["optimizer__nesterov"]
    assert options["optimizer__momentum"] == 0.8
    assert options["criterion__label_smoothing"] == 0.1
    assert isinstance(scheduler, LRScheduler) and scheduler.step_every == "batch"
    assert scheduler.kwargs["total_steps"] == 35 and scheduler.kwargs["max_lr"] == 0.3
    assert ImageCNNClassifier()._training_options({}, 5) == []


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_scheduled_fit_runs_exactly_the_planned_steps(schedule):
    # 33 images, batch 8: the last batch of 1 is dropped (batch norm), so 4 steps an
    # epoch; a one-cycle schedule stepped past its plan would raise.
    X, y = _two_class_images(n=34)
    X, y = X[:33], y[:33]
    clf = ImageCNNClassifier(
        architecture="resnet9", n_filters=4, input_size=8, max_epochs=3, batch_size=8,
        optimizer="sgd", lr=0.05, lr_schedule=schedule, augment=True, cutout=2,
        early_stopping=False, random_state=0, device="cpu",
    ).fit(X, y)
    assert clf.n_iter_ == 3
    assert sum(len(row["batches"]) for row in clf.history_) == 12


def test_new_parameters_are_validated():
    X, y = _two_class_images()
    for params in ({"architecture": "resnet50"}, {"optimizer": "adam"},
                   {"lr_schedule": "step"}, {"label_smoothing": 1.0}, {"cutout": -1},
                   {"momentum": 1.0}):
        with pytest.raises(ValueError, match=next(iter(params))):
            ImageCNNClassifier(**params).fit(X, y)


# -- cache -------------------------------------------------------------------------------
def _fast(**params):
    base = dict(n_filters=2, input_size=8, max_epochs=2, early_stopping=True, patience=1,
                random_state=0, device="cpu")
    base.update(params)
    return ImageCNNClassifier(**base)


def test_get_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SKLEARN_PRIVACY_CACHE", str(tmp_path / "c"))
    assert get_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SKLEARN_PRIVACY_CACHE")
    assert get_cache_dir() == Path.home() / ".cache" / "sklearn-privacy"
    assert get_cache_dir("~/x") == Path.home() / "x"


def test_cache_round_trip_and_misses(monkeypatch, tmp_path):
    monkeypatch.setenv("SKLEARN_PRIVACY_CACHE", str(tmp_path))
    X, y = _two_class_images()
    labels = np.where(y == 1, "woman", "man")
    fits = []
    original_fit = ImageCNNClassifier.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(self.get_params()["lr"])
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(ImageCNNClassifier, "fit", counting_fit)

    first = fit_or_load_cached(_fast(class_weight="balanced"), X, labels, key="gender")
    assert len(fits) == 1
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("gender-") and files[0].endswith(".json")

    again = fit_or_load_cached(_fast(class_weight="balanced", verbose=0), X, labels, key="gender")
    assert len(fits) == 1  # loaded, not refitted
    assert again is not first
    np.testing.assert_array_equal(again.classes_, first.classes_)
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), rtol=1e-6)
    assert again.get_params() == first.get_params()
    assert again.n_iter_ == first.n_iter_ and again.best_epoch_ == first.best_epoch_
    assert again.history_[-1, "train_loss"] == pytest.approx(first.history_[-1, "train_loss"])

    fit_or_load_cached(_fast(class_weight="balanced", lr=2e-3), X, labels, key="gender")
    assert len(fits) == 2  # a changed parameter misses
    X2 = X.copy()
    X2[0, 0, 0, 0] ^= 1
    fit_or_load_cached(_fast(class_weight="balanced"), X2, labels, key="gender")
    assert len(fits) == 3  # changed data misses
    assert len(list(tmp_path.iterdir())) == 6


def test_cache_key_depends_on_params_and_data_only():
    X, y = _two_class_images()
    key = cache_key(_fast(), X, y)
    assert len(key) == 64
    assert key == cache_key(_fast(verbose=1, device="auto"), X, y)
    assert key != cache_key(_fast(cutout=2), X, y)
    assert key != cache_key(_fast(), X, 1 - y)
    assert key != cache_key(_fast(), X.astype(np.float32) / 255, y)
    assert key != cache_key(_fast(), X, y, groups=np.arange(len(y)))


def test_saved_weights_load_without_pickle(tmp_path):
    X, y = _two_class_images()
    clf = _fast(class_weight={0: 1.0, 1: 3.0}).fit(X, y)
    clf.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["params"]["architecture"] == "small"
    loaded = ImageCNNClassifier.load(tmp_path / "m.pt", device="cpu")
    assert loaded.class_weight == {0: 1.0, 1: 3.0}
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_cache_errors(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = _two_class_images()
    with pytest.raises(TypeError, match="save"):
        fit_or_load_cached(LogisticRegression(), X.reshape(len(X), -1), y, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="key"):
        fit_or_load_cached(_fast(), X, y, key="../evil", cache_dir=tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not an ImageCNNClassifier"):
        ImageCNNClassifier.load(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="JSON"):
        _fast(random_state=np.random.RandomState(0)).fit(X, y).save(tmp_path / "r.pt")


# -- bring your own model ----------------------------------------------------------------
class _Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
        self.drop = nn.Dropout(0.9)  # must be off: the wrapper runs preprocessing in eval mode

    def forward(self, x):
        return self.drop((x - self.mean) / self.std)


def _net(n_classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, n_classes))


def test_any_model_with_custom_preprocessing_module():
    net, pre = _net().train(), _Normalize().train()
    clf = ImageClassifier(net, input_size=12, preprocess=pre, device="cpu")
    images = torch.rand(5, 3, 20, 20)
    got = clf.logits(images)
    net.eval()
    resized = F.interpolate(images, size=(12, 12), mode="bilinear", antialias=True)
    expected = net((resized - pre.mean) / pre.std)
    torch.testing.assert_close(got, expected)
    net.train()
    clf.logits(images)
    assert net.training and pre.training  # the caller's modes are given back
    np.testing.assert_array_equal(
        clf.predict((images.permute(0, 2, 3, 1).numpy())), expected.argmax(1).numpy()
    )


def test_gradients_flow_through_preprocessing():
    pre_calls = []

    def preprocess(x):  # a plain function (no module), differentiable
        pre_calls.append(x.shape)
        return (x - 0.5) * 4.0

    clf = ImageClassifier(_net(), input_size=(10, 14), preprocess=preprocess, device="cpu")
    x = torch.rand(2, 3, 20, 20, requires_grad=True)
    (grad,) = torch.autograd.grad(clf.logits(x)[:, 1].sum(), x)
    assert pre_calls[-1] == (2, 3, 10, 14)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    # The gradient is that of the whole chain: preprocess scales it by 4.
    clf_plain = ImageClassifier(_net(), input_size=(10, 14), mean=(0.5,) * 3,
                                std=(0.25,) * 3, device="cpu")
    (grad_plain,) = torch.autograd.grad(clf_plain.logits(x)[:, 1].sum(), x)
    torch.testing.assert_close(grad, grad_plain)


def test_pfgsm_through_custom_preprocessing():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 24 * 24, 4))
    clf = ImageClassifier(net, input_size=24, preprocess=_Normalize(), device="cpu")
    before = clf.predict(images)
    out = PrivateFGSM(clf, k=1, max_iter=30, device="cpu").fit_transform(images)
    assert np.abs(out.astype(int) - images).max() <= 8
    assert (clf.predict(out) != before).mean() >= 0.75


def test_model_outputs_and_dtype():
    class HFOutput:
        def __init__(self, logits):
            self.logits = logits

    class HFModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, x):
            return HFOutput(self.net(x))

    x = torch.rand(2, 3, 8, 8)
    hf = ImageClassifier(HFModel(), device="cpu")
    assert hf.logits(x).shape == (2, 4)
    half = ImageClassifier(_net().to(torch.bfloat16), device="cpu")
    out = half.logits(x)
    assert out.dtype == torch.float32 and out.shape == (2, 4)

    class Bad(nn.Module):
        def forward(self, x):
            return [x]

    with pytest.raises(TypeError, match="logits tensor"):
        ImageClassifier(Bad(), device="cpu").logits(x)
    with pytest.raises(ValueError, match="channels first"):
        hf.logits(torch.rand(2, 8, 8, 3))


def test_preprocess_errors():
    from sklearn.dummy import DummyClassifier

    with pytest.raises(TypeError, match="preprocess must be a callable"):
        ImageClassifier(_net(), preprocess="imagenet")
    black_box = DummyClassifier().fit(np.zeros((2, 1)), [0, 1])
    with pytest.raises(ValueError, match="preprocess must be None"):
        ImageClassifier(black_box, preprocess=lambda x: x)
    clf = ImageClassifier(_net(), preprocess=lambda x: x.numpy(), device="cpu")
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        clf.logits(torch.rand(1, 3, 8, 8))


def test_bring_your_own_model_example_runs_offline(capsys):
    runpy.run_path(str(ROOT / "examples" / "bring_your_own_image_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "class hidden (top-1) for" in out
    assert "still in training mode: True" in out


def test_wrapper_with_preprocess_module_pickles():
    import pickle

    clf = ImageClassifier(_net(), input_size=12, preprocess=_Normalize(), device="cpu")
    images = torch.rand(3, 3, 16, 16)
    restored = pickle.loads(pickle.dumps(clf))
    assert isinstance(restored.preprocess_fn, _Normalize)
    torch.testing.assert_close(restored.logits(images), clf.logits(images))
