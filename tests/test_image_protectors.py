"""ImageClassifier, segmenters, ColorFool and P-FGSM on synthetic images with tiny classifiers."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_privacy.image import (
    ColorFool,
    HeuristicSegmenter,
    ImageClassifier,
    PrivateFGSM,
    TorchSegmenterAdapter,
    rgb_to_lab_array,
    topk_out_rate,
)
from sklearn_privacy.image._pfgsm import select_targets
from sklearn_privacy.utils.validation import check_images


# -- tiny classifiers ------------------------------------------------------------------
def colour_net(gain=20.0, n_classes=3):
    """Logits = gain * mean colour (class k = channel k), a white-box linear model."""
    net = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, n_classes)
    )
    with torch.no_grad():
        net[2].weight.copy_(torch.eye(n_classes, 3) * gain)
        net[2].bias.zero_()
    return net


def mean_colour(X):
    return check_images(X)[0].mean(axis=(1, 2))


class MeanColourClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression on the mean colour; ``torch_model()`` is the same model in torch."""

    def __init__(self, C=100.0):
        self.C = C

    def fit(self, X, y):
        self.lr_ = LogisticRegression(C=self.C, max_iter=1000).fit(mean_colour(X), y)
        self.classes_ = self.lr_.classes_
        return self

    def predict(self, X):
        return self.lr_.predict(mean_colour(X))

    def torch_model(self):
        coef, intercept = self.lr_.coef_, self.lr_.intercept_
        if coef.shape[0] == 1:  # binary: logits (0, w.x + b)
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        lin = torch.nn.Linear(3, coef.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(coef))
            lin.bias.copy_(torch.as_tensor(intercept))
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), lin)


def fit_diagnose(protector, X, **fit_params):
    """fit, then transform_with_diagnostics: the protected images and the diagnostics."""
    return protector.fit(X, **fit_params).transform_with_diagnostics(X)


def make_images(n=12, size=16, seed=0, bias=100):
    """uint8 images whose dominant channel is the class (k = i % 3), by ``bias`` levels."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 120, (n, size, size, 3)).astype(np.uint8)
    y = np.arange(n) % 3
    X[np.arange(n), :, :, y] += np.uint8(bias)
    return X, y


# -- ImageClassifier ---------------------------------------------------------------------
def test_image_classifier_preprocessing_matches_manual_pipeline():
    net = colour_net()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    clf = ImageClassifier(net, input_size=(8, 6), mean=mean, std=std, device="cpu")
    x = torch.rand(4, 3, 20, 18, generator=torch.Generator().manual_seed(0))
    resized = torch.nn.functional.interpolate(x, size=(8, 6), mode="bilinear", antialias=True)
    manual = net((resized - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    np.testing.assert_allclose(clf.logits(x).detach().numpy(), manual.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert clf.is_differentiable and clf.native_size == (8, 6)
    # Gradients flow to the pixels through resize and normalisation.
    x.requires_grad_(True)
    clf.logits(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # numpy uint8, float and lists of different sizes all predict the same way.
    X, y = make_images(6, 20)
    np.testing.assert_array_equal(clf.predict(X), clf.predict(X / 255.0))
    np.testing.assert_array_equal(clf.predict(list(X)), clf.predict(X))
    mixed = [X[0], X[1, :10, :14]]
    assert clf.predict(mixed).shape == (2,)
    np.testing.assert_array_equal(clf.predict(X), manual_predict(net, X, mean, std))


def manual_predict(net, X, mean, std):
    t = torch.as_tensor(X / 255.0, dtype=torch.float32).permute(0, 3, 1, 2)
    t = torch.nn.functional.interpolate(t, size=(8, 6), mode="bilinear", antialias=True)
    t = (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return net(t).argmax(1).numpy()


def test_image_classifier_kinds_and_errors():
    X, y = make_images(12)
    labels = np.array(["red", "green", "blue"])[y]
    black_box = make_pipeline(FunctionTransformer(mean_colour), LogisticRegression(C=100)).fit(X, labels)
    clf = ImageClassifier(black_box)
    assert clf.kind == "black_box" and not clf.is_differentiable
    np.testing.assert_array_equal(clf.predict(X), black_box.predict(X))
    np.testing.assert_array_equal(clf.classes_[clf.labels_to_indices(labels)], labels)
    with pytest.raises(AttributeError, match="white-box"):
        clf.logits(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="not among"):
        clf.labels_to_indices(["purple"])
    with pytest.raises(ValueError, match="mean/std"):
        ImageClassifier(black_box, mean=(0.5, 0.5, 0.5))

    est = MeanColourClassifier().fit(X, labels)
    wrapped = ImageClassifier(est)
    assert wrapped.kind == "torch_model" and wrapped.is_differentiable
    np.testing.assert_array_equal(wrapped.predict(X), est.predict(X))

    unfitted = ImageClassifier(MeanColourClassifier(), input_size=8)
    assert unfitted.kind == "unfitted"
    with pytest.raises(NotFittedError):
        unfitted.predict(X)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ImageClassifier("not a model")
    with pytest.raises(ValueError, match="input_size"):
        ImageClassifier(colour_net(), input_size=(0, 3))


def test_image_classifier_pickles_and_leaves_the_module_alone():
    net = colour_net().train()
    clf = ImageClassifier(net, input_size=8, device="cpu")
    X, _ = make_images(5, 12)
    before = clf.predict(X)
    assert net.training  # eval mode only while predicting
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict(X), before)


def test_image_classifier_accepts_a_fitted_skorch_net():
    from skorch import NeuralNetClassifier

    X, y = make_images(12, 8)
    net = NeuralNetClassifier(
        colour_net, module__gain=1.0, max_epochs=2, lr=0.1, batch_size=4,
        train_split=None, verbose=0, classes=np.array(["r", "g", "b"]),
    )
    tensors = torch.as_tensor(X / 255.0, dtype=torch.float32).permute(0, 3, 1, 2)
    net.fit(tensors, y)  # skorch trains on class indices; classes_ names them
    clf = ImageClassifier(net, device="cpu")
    assert clf.kind == "skorch" and clf.is_differentiable
    np.testing.assert_array_equal(clf.predict_indices(X), net.predict(tensors))
    np.testing.assert_array_equal(clf.predict(X), net.classes_[net.predict(tensors)])


def test_image_classifier_saved_on_cuda_loads_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    clf = ImageClassifier(colour_net(), input_size=8, device="cpu")
    state = clf.__getstate__()
    state["device"] = "cuda"  # as pickled by a GPU run with device="cuda"
    restored = ImageClassifier.__new__(ImageClassifier)
    with pytest.warns(UserWarning, match="loading on CPU"):
        restored.__setstate__(state)
    X, _ = make_images(3, 8)
    assert restored.device_ == "cpu"
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))


def test_topk_out_rate():
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    X = np.zeros((4, 2, 2, 3))
    X[0, ..., :] = (0.9, 0.5, 0.1)  # ranks R > G > B
    X[1, ..., :] = (0.1, 0.5, 0.9)  # ranks B > G > R
    X[2, ..., :] = (0.5, 0.9, 0.1)
    X[3, ..., :] = (0.5, 0.1, 0.9)
    labels = np.array([0, 0, 0, 0])  # true class R: rank 0, 2, 1, 1
    assert topk_out_rate(net, X, labels, k=1) == 0.75
    assert topk_out_rate(net, X, labels, k=2) == 0.25
    assert topk_out_rate(net, X, labels, k=3) == 0.0
    with pytest.raises(ValueError, match="positive"):
        topk_out_rate(net, X, labels, k=0)


# -- segmenters --------------------------------------------------------------------------
def landscape(height=32, width=32):
    img = np.zeros((height, width, 3), dtype=np.float32)
    img[: height // 2] = (0.45, 0.65, 0.95)  # sky blue
    img[height // 2 :] = (0.20, 0.55, 0.12)  # grass green
    img[20:28, 4:12] = (0.85, 0.62, 0.50)  # a patch of skin
    img[24:, 20:] = (0.10, 0.30, 0.60)  # water at the bottom right
    return img[np.newaxis]


def test_heuristic_segmenter_finds_the_regions():
    masks = HeuristicSegmenter()(landscape())
    assert set(masks) == {"person", "sky", "vegetation", "water"}
    assert all(m.shape == (1, 32, 32) and m.min() >= 0 and m.max() <= 1 for m in masks.values())
    total = sum(masks.values())
    assert total.max() <= 1 + 1e-6
    assert masks["sky"][0, 2:12, 2:30].mean() > 0.8
    assert masks["vegetation"][0, 17:20, 14:30].mean() > 0.8
    assert masks["person"][0, 22:26, 6:10].mean() > 0.8
    assert masks["water"][0, 26:31, 22:31].mean() > 0.8
    assert masks["sky"][0, 20:].max() < 0.2 and masks["water"][0, :10].max() < 0.2
    # Internal batching changes nothing.
    many = np.concatenate([landscape(), landscape()[:, ::-1], landscape()[:, :, ::-1]])
    a, b = HeuristicSegmenter(batch_size=1)(many), HeuristicSegmenter(batch_size=3)(many)
    for region in a:
        np.testing.assert_allclose(a[region], b[region], atol=1e-6)
        np.testing.assert_allclose(a[region][:1], masks[region], atol=1e-6)


def test_torch_segmenter_adapter_sums_mapped_probabilities():
    net = torch.nn.Conv2d(3, 5, kernel_size=1)
    seg = TorchSegmenterAdapter(net, {"sky": [1], "water": [3, 4]}, input_size=8, device="cpu")
    images = np.random.default_rng(0).random((2, 12, 10, 3)).astype(np.float32)
    masks = seg(images)
    assert set(masks) == {"sky", "water"} and masks["sky"].shape == (2, 12, 10)
    t = torch.nn.functional.interpolate(
        torch.from_numpy(images).permute(0, 3, 1, 2), size=(8, 8), mode="bilinear", antialias=True
    )
    with torch.no_grad():
        proba = torch.softmax(net(t), 1)
        proba = torch.nn.functional.interpolate(proba, size=(12, 10), mode="bilinear")
    np.testing.assert_allclose(masks["water"], (proba[:, 3] + proba[:, 4]).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="5 classes"):
        TorchSegmenterAdapter(net, {"sky": [7]}, device="cpu")(images)
    with pytest.raises(ValueError, match="unknown region"):
        TorchSegmenterAdapter(net, {"road": [1]}, device="cpu")(images)


# -- ColorFool ---------------------------------------------------------------------------
def test_colorfool_batched_trials_equal_the_sequential_loop():
    X, _ = make_images(8, 16)
    clf = ImageClassifier(colour_net(), input_size=8, device="cpu")
    runs = []
    # trial_batch_size=1 is the sequential loop of the paper.
    for trial_batch_size, batch_size in [(1, 8), (7, 3), (120, 1)]:
        cf = ColorFool(
            clf, segmenter="heuristic", n_trials=120, trial_batch_size=trial_batch_size,
            batch_size=batch_size, random_state=3, device="cpu",
        )
        out, diag = fit_diagnose(cf, X)
        runs.append((out, diag.n_trials, diag.success))
    out0, n0, s0 = runs[0]
    assert n0.min() > 1 and len(np.unique(n0)) > 2  # a real search happened
    for out, n, s in runs[1:]:
        np.testing.assert_array_equal(out, out0)
        np.testing.assert_array_equal(n, n0)
        np.testing.assert_array_equal(s, s0)


def test_colorfool_success_is_verified_on_the_saved_images():
    X, _ = make_images(9, 24)
    cf = ColorFool(ImageClassifier(colour_net(), input_size=8, device="cpu"), segmenter=None,
                   n_trials=150, random_state=0, device="cpu")
    out, diag = fit_diagnose(cf, X)
    assert out.dtype == np.uint8 and out.shape == X.shape
    assert diag.success.all()
    # Success = the deployed classifier's label on the saved uint8 image changed.
    np.testing.assert_array_equal(cf.classifier_.predict(out) != cf.classifier_.predict(X), diag.success)
    # L* is kept (up to 8-bit quantisation and gamut clipping).
    dL = np.abs(rgb_to_lab_array(out)[..., 0] - rgb_to_lab_array(X)[..., 0])
    assert np.median(dL) < 0.5
    # Deterministic for a fixed random_state; another seed gives other colours.
    np.testing.assert_array_equal(cf.transform(X), out)
    other = ColorFool(cf.classifier, segmenter=None, n_trials=150, random_state=1, device="cpu")
    assert not np.array_equal(other.fit_transform(X), out)


def conv_bn_net(gain=20.0):
    """colour_net with convolutions and batch norms in front (folded by ColorFool's
    scorer): logits = gain * (nearly) the mean colour."""
    gen = torch.Generator().manual_seed(0)  # not the global RNG: tests stay independent
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1, bias=False),
                            torch.nn.BatchNorm2d(3)),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3)[:, :, None, None])
        net[0].bias.zero_()
        net[3][0].weight.zero_()
        net[3][0].weight[:, :, 1, 1] = torch.eye(3)
        for bn in (net[1], net[3][1]):  # non-trivial running statistics
            bn.running_mean.uniform_(-0.05, 0.05, generator=gen)
            bn.running_var.uniform_(0.9, 1.1, generator=gen)
            bn.weight.uniform_(0.9, 1.1, generator=gen)
            bn.bias.uniform_(0.0, 0.05, generator=gen)
        net[6].weight.copy_(torch.eye(3) * gain)
        net[6].bias.zero_()
    return net.train()  # left in training mode: the scorer uses an eval copy


def test_colorfool_scorer_matches_the_classifier_and_leaves_it_untouched():
    from sklearn_privacy.image._colorfool import _Scorer

    net = conv_bn_net()
    clf = ImageClassifier(net, input_size=8, device="cpu")
    scorer = _Scorer(clf)
    # Batch norms that follow a convolution are folded into it.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in scorer.module.modules())
    levels = torch.randint(0, 256, (40, 3, 12, 12), generator=torch.Generator().manual_seed(0)).float()
    np.testing.assert_array_equal(scorer(levels), clf.predict_indices(levels / 255.0))
    assert net.training and sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2

    class Flat(torch.nn.Module):  # view() rejects channels-last inputs: plain fallback
        def forward(self, x):
            return x.view(x.shape[0], -1).unflatten(1, (3, -1)).mean(dim=2)

    fallback = _Scorer(ImageClassifier(Flat(), device="cpu"))
    np.testing.assert_array_equal(fallback(levels), levels.mean(dim=(2, 3)).argmax(1).numpy())
    assert fallback.module is None


def test_colorfool_search_at_full_resolution_equals_the_sequential_loop():
    # Images already at the classifier's input size: the searched image is the saved one.
    X, _ = make_images(8, 8)
    clf = ImageClassifier(conv_bn_net(), input_size=8, device="cpu")
    runs = []
    for trial_batch_size, batch_size in [(1, 1), (50, 8), (5, 3)]:
        cf = ColorFool(clf, segmenter="heuristic", n_trials=200,
                       trial_batch_size=trial_batch_size, batch_size=batch_size,
                       random_state=0, device="cpu")
        out, diag = fit_diagnose(cf, X)
        runs.append((out, diag.n_trials, diag.success))
    out0, n0, s0 = runs[0]
    assert s0.any() and len(np.unique(n0)) > 2
    np.testing.assert_array_equal(clf.predict_indices(out0) != clf.predict_indices(X), s0)
    for out, n, s in runs[1:]:
        np.testing.assert_array_equal(out, out0)
        np.testing.assert_array_equal(n, n0)
        np.testing.assert_array_equal(s, s0)


class FixedSegmenter:
    """Segmenter returning fixed masks (tests the region rules exactly)."""

    def __init__(self, **masks):
        self.masks = masks

    def __call__(self, images):
        return {k: np.broadcast_to(v, images.shape[:3]).copy() for k, v in self.masks.items()}


def test_colorfool_region_rules():
    X, _ = make_images(6, 16)
    clf = ImageClassifier(colour_net(), device="cpu")
    # Person is never shifted, and the global shift stays away from it.
    person = np.zeros((16, 16), dtype=np.float32)
    person[:, :8] = 1.0
    cf = ColorFool(clf, segmenter=FixedSegmenter(person=person), n_trials=40, random_state=0, device="cpu")
    out = cf.fit_transform(X)
    np.testing.assert_array_equal(out[:, :, :3], X[:, :, :3])  # far from the blurred border
    assert not np.array_equal(out[:, :, 12:], X[:, :, 12:])
    # A region covering the whole image keeps its natural colour range: a <= 0, and
    # b <= 0 for sky and water, b >= 0 for vegetation (starting inside that range).
    blue = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    blue[...] = (100, 180, 220)
    blue[:, ::2] = (130, 200, 235)
    green = np.zeros_like(blue)
    green[...] = (60, 140, 40)
    green[:, ::2] = (90, 170, 70)
    for region, base, sign_b in [("sky", blue, -1), ("water", blue, -1), ("vegetation", green, 1)]:
        lab_in = rgb_to_lab_array(base)
        assert lab_in[..., 1].max() <= 0 and (sign_b * lab_in[..., 2]).min() >= 0
        cf = ColorFool(clf, segmenter=FixedSegmenter(**{region: np.float32(1.0)}), n_trials=30,
                       random_state=0, device="cpu")
        out = cf.fit_transform(base)
        lab = rgb_to_lab_array(out)
        assert np.abs(lab - lab_in)[..., 1:].max() > 5, region  # colours did move
        assert lab[..., 1].max() <= 1.0, region  # 1.0: 8-bit quantisation slack
        assert (sign_b * lab[..., 2]).min() >= -1.0, region


def test_colorfool_failure_modes_and_given_labels():
    X, y = make_images(4, 12)
    blind = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3))
    with torch.no_grad():
        blind[2].weight.zero_()
        blind[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # always class 0
    cf = ColorFool(blind, segmenter=None, n_trials=5, on_failure="original", random_state=0, device="cpu")
    out, diag = fit_diagnose(cf, X)
    np.testing.assert_array_equal(out, X)
    assert not diag.success.any() and (diag.n_trials == 0).all()
    cf.set_params(on_failure="strongest")
    out, diag = fit_diagnose(cf, X)
    assert not diag.success.any() and (diag.n_trials == 5).all() and not np.array_equal(out, X)

    # Given labels: a label the classifier does not predict is "changed" at once.
    cf = ColorFool(colour_net(), segmenter=None, n_trials=50, label_source="given", random_state=0, device="cpu")
    out = cf.fit_transform(X, sensitive_features=(y + 1) % 3)
    out_d, diag = cf.transform_with_diagnostics(X, sensitive_features=(y + 1) % 3)
    np.testing.assert_array_equal(out_d, out)
    assert diag.success.all() and (diag.n_trials == 1).all()
    # The true (= predicted) labels: a real search.
    _, diag = cf.transform_with_diagnostics(X, sensitive_features=y)
    assert diag.n_trials.min() > 1
    with pytest.raises(ValueError, match="fit_transform"):
        cf.transform(X)
    with pytest.raises(ValueError, match="sensitive_features: expected 4 labels"):
        cf.transform_with_diagnostics(X, sensitive_features=y[:3])


def test_colorfool_dtypes_lists_and_pickle():
    X, _ = make_images(4, 16)
    cf = ColorFool(colour_net(), segmenter="heuristic", n_trials=60, quantization="floor", random_state=0, device="cpu")
    out_f = cf.fit_transform(X / 255.0)
    assert out_f.dtype == np.float32
    np.testing.assert_allclose(out_f * 255, np.round(out_f * 255), atol=1e-3)  # on the 8-bit grid
    images = [X[0], X[1, :12, :10], X[2, :9]]
    out, diag = cf.transform_with_diagnostics(images)
    assert isinstance(out, list) and [o.shape for o in out] == [i.shape for i in images]
    assert all(o.dtype == np.uint8 for o in out) and diag.success.shape == (3,)
    restored = pickle.loads(pickle.dumps(cf))
    for a, b in zip(restored.transform(images), out):
        np.testing.assert_array_equal(a, b)


def test_colorfool_bad_segmenter_output():
    X, _ = make_images(2, 8)
    cf = ColorFool(colour_net(), segmenter=lambda imgs: {"road": np.zeros(imgs.shape[:3])}, device="cpu")
    with pytest.raises(ValueError, match="unknown segmentation regions"):
        cf.fit(X).transform(X)
    cf.set_params(segmenter=lambda imgs: {"sky": np.zeros((1, 2, 2))})
    with pytest.raises(ValueError, match="shape"):
        cf.transform(X)


def _judged(clf, images, labels, transform=None):
    """Whether ``clf`` no longer gives ``labels`` on ``images`` (optionally transformed)."""
    from sklearn_privacy.image._colorfool import ROBUST_TRANSFORMS

    if transform is not None:
        levels = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        images = ROBUST_TRANSFORMS[transform](levels).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    return clf.predict_indices(images) != labels


def test_colorfool_robust_acceptance_holds_under_the_transforms():
    X, _ = make_images(10, 16, bias=60)
    clf = ImageClassifier(conv_bn_net(), input_size=8, device="cpu")
    paper = ColorFool(clf, segmenter="heuristic", n_trials=300, random_state=0, device="cpu")
    out_paper, paper_diag = fit_diagnose(paper, X)
    # Empty options are the paper's algorithm: same images, trials and success.
    same = ColorFool(clf, segmenter="heuristic", n_trials=300, random_state=0, device="cpu",
                     robust_transforms=[], ensemble=[])
    out_same, same_diag = fit_diagnose(same, X)
    np.testing.assert_array_equal(out_same, out_paper)
    np.testing.assert_array_equal(same_diag.n_trials, paper_diag.n_trials)
    # An identity transform accepts exactly the paper's trials.
    ident = ColorFool(clf, segmenter="heuristic", n_trials=300, random_state=0, device="cpu",
                      robust_transforms=[lambda levels: levels])
    np.testing.assert_array_equal(ident.fit_transform(X), out_paper)

    names = ["jpeg", "median", "blur", "shift", "flip"]
    runs = []
    for trial_batch_size, batch_size in [(1, 1), (40, 4)]:
        cf = ColorFool(clf, segmenter="heuristic", n_trials=300, robust_transforms=names,
                       trial_batch_size=trial_batch_size, batch_size=batch_size,
                       random_state=0, device="cpu")
        out, diag = fit_diagnose(cf, X)
        runs.append((out, diag.n_trials, diag.success))
    (out, n_used, ok), (out_b, n_b, ok_b) = runs
    # Batching does not change the result (the first accepted trial is kept).
    np.testing.assert_array_equal(out_b, out)
    np.testing.assert_array_equal(n_b, n_used)
    np.testing.assert_array_equal(ok_b, ok)
    assert ok.sum() >= 5
    # Same random stream, stricter test: never an earlier trial than the paper's, and
    # later ones on some images.
    assert np.all(n_used[ok] >= paper_diag.n_trials[ok]) and np.any(n_used > paper_diag.n_trials)
    # Accepted images fool the classifier on the image and on each transformed copy.
    labels = clf.predict_indices(X)
    for name in [None] + names:
        assert _judged(clf, out[ok], labels[ok], name).all(), name
    # A test nothing passes (a member that never changes its mind) gives the strongest
    # trial, or with on_failure="paper" the paper's output (same random streams).
    blind = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3))
    with torch.no_grad():
        blind[2].weight.zero_()
        blind[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    undo = ColorFool(clf, segmenter=None, n_trials=20, random_state=0, device="cpu",
                     robust_transforms=["flip"], ensemble=[blind])
    _, diag = fit_diagnose(undo, X[:2])
    assert not diag.success.any() and (diag.n_trials == 20).all()
    undo = ColorFool(clf, segmenter="heuristic", n_trials=300, random_state=0, device="cpu",
                     on_failure="paper", batch_size=4, ensemble=[blind])
    out_undo, diag = fit_diagnose(undo, X)
    np.testing.assert_array_equal(out_undo, out_paper)
    np.testing.assert_array_equal(diag.success, paper_diag.success)
    np.testing.assert_array_equal(diag.n_trials, paper_diag.n_trials)
    assert not diag.robust_success.any()
    # Only the images without a robust trial fall back (searching at a lower resolution
    # than the image's, or at the image's own).
    for images, n_trials in ((X, 20), (X[:, ::2, ::2], 20)):
        mixed = ColorFool(clf, segmenter="heuristic", n_trials=n_trials, robust_transforms=names,
                          on_failure="paper", random_state=0, device="cpu")
        out_mixed, mixed_diag = fit_diagnose(mixed, images)
        short = ColorFool(clf, segmenter="heuristic", n_trials=n_trials, random_state=0,
                          device="cpu")
        out_short, short_diag = fit_diagnose(short, images)
        strict = ColorFool(clf, segmenter="heuristic", n_trials=n_trials, robust_transforms=names,
                           random_state=0, device="cpu")
        out_strict, strict_diag = fit_diagnose(strict, images)
        rob = mixed_diag.robust_success
        assert rob.any() and not rob.all()
        np.testing.assert_array_equal(rob, strict_diag.success)
        np.testing.assert_array_equal(out_mixed[rob], out_strict[rob])
        np.testing.assert_array_equal(mixed_diag.n_trials[rob], strict_diag.n_trials[rob])
        np.testing.assert_array_equal(out_mixed[~rob], out_short[~rob])
        np.testing.assert_array_equal(mixed_diag.n_trials[~rob], short_diag.n_trials[~rob])
        np.testing.assert_array_equal(mixed_diag.success, rob | short_diag.success)
    with pytest.raises(ValueError, match="unknown robust transform"):
        ColorFool(clf, robust_transforms=["rotate"], device="cpu").fit(X)


def test_colorfool_ensemble_must_all_be_fooled():
    X, _ = make_images(10, 16, bias=60)
    clf = ImageClassifier(conv_bn_net(), input_size=8, device="cpu")
    paper = ColorFool(clf, segmenter=None, n_trials=300, random_state=0, device="cpu")
    out_paper, paper_diag = fit_diagnose(paper, X)
    # A copy of the attacked classifier as the only member changes nothing.
    twin = ColorFool(clf, segmenter=None, n_trials=300, random_state=0, device="cpu",
                     ensemble=[conv_bn_net()])
    np.testing.assert_array_equal(twin.fit_transform(X), out_paper)
    # Another member (red and green swapped): both labels must change.
    other = colour_net(gain=20.0)
    with torch.no_grad():
        other[2].weight.copy_(torch.eye(3)[[1, 0, 2]] * 20.0)
    cf = ColorFool(clf, segmenter=None, n_trials=300, random_state=0, device="cpu",
                   ensemble=[other])
    out, diag = fit_diagnose(cf, X)
    assert len(cf.ensemble_) == 1 and isinstance(cf.ensemble_[0], ImageClassifier)
    member = cf.ensemble_[0]
    ok = diag.success
    assert ok.sum() >= 5 and np.all(diag.n_trials[ok] >= paper_diag.n_trials[ok])
    assert _judged(clf, out[ok], clf.predict_indices(X[ok])).all()
    assert _judged(member, out[ok], member.predict_indices(X[ok])).all()
    # A member that never changes its mind blocks every trial.
    blind = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3))
    with torch.no_grad():
        blind[2].weight.zero_()
        blind[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    cf.set_params(ensemble=[blind], n_trials=10, on_failure="original")
    out, diag = fit_diagnose(cf, X)
    np.testing.assert_array_equal(out, X)
    assert not diag.success.any()


def test_colorfool_ensemble_members_are_trained_as_surrogates_in_fit():
    X, _, secret = make_task_images()
    est = MeanColourClassifier()
    cf = ColorFool(MeanColourClassifier(), segmenter=None, n_trials=60, random_state=0,
                   device="cpu", ensemble=[est, MeanColourClassifier(C=0.5)],
                   robust_transforms="median")
    out, diag = fit_diagnose(cf, X, sensitive_features=secret)
    assert not hasattr(est, "classes_")  # cloned, not fitted
    assert len(cf.ensemble_) == 2
    for member in [cf.classifier_] + cf.ensemble_:
        assert member.classes_ is not None
        fooled = member.predict(out) != member.predict(X)
        assert np.all(fooled[diag.success])
    assert diag.success.mean() > 0.5
    with pytest.raises(ValueError, match="sensitive_features"):
        ColorFool(colour_net(), ensemble=[MeanColourClassifier()], device="cpu").fit(X)


# -- P-FGSM ------------------------------------------------------------------------------
def test_select_targets_follows_the_paper_rule():
    proba = torch.tensor([[0.6, 0.395, 0.004, 0.001]]).repeat(400, 1)
    u = torch.rand(400, generator=torch.Generator().manual_seed(0))
    t = select_targets(proba, u, sigma=0.99, rule="paper")
    assert set(t.tolist()) == {2, 3}  # outside the top-2 set holding 0.995 >= 0.99
    assert 0.35 < (t == 2).float().mean() < 0.65  # uniform among them
    flat = torch.full((50, 4), 0.25)
    flat[:, 1] = 0.2501
    t = select_targets(flat, u[:50], sigma=0.99, rule="paper")
    assert 1 not in t.tolist()  # every class is needed for 0.99: all but the top-1
    assert select_targets(proba[:2], u[:2], sigma=0.99, rule="least_likely").tolist() == [3, 3]


def test_pfgsm_bound_holds_on_uint8_and_success_is_verified():
    X, y = make_images(10, 16, bias=6)  # small margins: reachable within eps
    net = colour_net(gain=600.0)
    pf = PrivateFGSM(net, eps=6.5 / 255, objective="paper", random_state=0, device="cpu")
    out, diag = fit_diagnose(pf, X)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - X.astype(int)).max() <= 6  # floor(6.5)
    clf = pf.classifier_
    clean = clf.predict(X)
    assert (diag.target != clean).all()
    np.testing.assert_array_equal(clf.predict(out) == diag.target, diag.success)
    assert diag.success.mean() >= 0.5
    assert (diag.n_iter[diag.success] < pf.max_iter).all()  # stopped once p(target) > sigma
    assert topk_out_rate(net, out, y, k=1) >= diag.success.mean()
    np.testing.assert_array_equal(diag.private, clean)
    assert topk_out_rate(net, out, y, k=1) == (diag.rank >= 1).mean()
    # Float input: the bound holds on the 8-bit grid too.
    out_f = pf.transform(X / 255.0)
    assert out_f.dtype == np.float32
    assert np.abs(np.round(out_f * 255) - X).max() <= 6


def test_pfgsm_chunking_zero_iterations_and_black_box_refusal():
    X, _ = make_images(6, 12, bias=6)
    net = colour_net(gain=600.0)
    a = PrivateFGSM(net, batch_size=1, random_state=0, device="cpu").fit_transform(X)
    pf = PrivateFGSM(net, batch_size=6, random_state=0, device="cpu")
    np.testing.assert_array_equal(pf.fit_transform(X), a)
    pf.set_params(max_iter=0)
    out, diag = fit_diagnose(pf, X)
    np.testing.assert_array_equal(out, X)
    assert (diag.n_iter == 0).all() and not diag.success.any()
    black_box = make_pipeline(FunctionTransformer(mean_colour), LogisticRegression()).fit(X, np.arange(6) % 3)
    with pytest.raises(ValueError, match="white-box"):
        PrivateFGSM(black_box).fit(X)


def far_class_net(gain=50.0):
    """5 classes: 3 colour classes (as ``colour_net``) and 2 far classes that hardly move."""
    net = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 5)
    )
    with torch.no_grad():
        w = torch.zeros(5, 3)
        w[:3] = torch.eye(3) * gain
        w[3], w[4] = 0.01, -0.01
        net[2].weight.copy_(w)
        net[2].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -0.5 * gain, -0.5 * gain]))
    return net


def test_pfgsm_topk_objective_hides_the_class_where_the_far_target_fails():
    # The paper's far targets are out of reach, and signed steps of the targeted loss
    # shift every channel alike: the true class stays top-1. The default "topk"
    # objective pushes it out of the top-k, and stops as soon as it is.
    X, y = make_images(12, 16, bias=10)
    net = far_class_net()
    paper = PrivateFGSM(net, objective="paper", max_iter=30, random_state=0, device="cpu")
    out_paper, paper_diag = fit_diagnose(paper, X)
    assert (paper_diag.n_iter == 30).all() and not paper_diag.success.any()
    assert topk_out_rate(net, out_paper, y, k=1) < 0.5
    pf = PrivateFGSM(net, k=2, margin=0.0, max_iter=30, random_state=0, device="cpu")
    assert pf.objective == "topk"  # the default
    out, diag = fit_diagnose(pf, X)
    assert np.abs(out.astype(int) - X.astype(int)).max() <= 8
    np.testing.assert_array_equal(diag.private, y)
    assert topk_out_rate(net, out, y, k=2) == 1.0
    assert diag.success.all() and (diag.rank >= 2).all()
    assert (diag.n_iter < 30).all()  # early stop: done images leave the batch
    # rank and target are measured on the returned uint8 images.
    scores = pf.classifier_.decision_function(out)
    np.testing.assert_array_equal(diag.target, scores.argmax(axis=1))
    true_score = scores[np.arange(len(y)), y]
    np.testing.assert_array_equal(diag.rank, (scores > true_score[:, None]).sum(axis=1))
    # k is capped at n_classes - 1; the margin is met on the saved images.
    pf.set_params(k=10, margin=0.0)
    _, diag = pf.transform_with_diagnostics(X)
    assert (diag.success == (diag.rank >= 4)).all()


def test_pfgsm_topk_searches_on_the_8bit_grid():
    # Float input off the 8-bit grid, and a step below one level: the search still
    # moves (whole levels), and the bound holds on the grid.
    X, _ = make_images(6, 12, bias=3)
    Xf = np.clip(X / 255.0 + 0.4 / 255, 0, 1).astype(np.float32)
    net = far_class_net()
    pf = PrivateFGSM(net, k=1, eps=4 / 255, step_size=0.3 / 255, max_iter=20, margin=0.0,
                     random_state=0, device="cpu")
    out, diag = fit_diagnose(pf, Xf)
    assert out.dtype == np.float32
    levels = out * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.abs(np.round(levels) - np.round(Xf * 255)).max() <= 4
    # The hidden class is the clean top-1 (here not always the dominant colour y).
    assert diag.success.all() and topk_out_rate(net, out, diag.private, k=1) == 1.0
    with pytest.raises(ValueError):
        PrivateFGSM(net, objective="bogus").fit(X)


# -- surrogates, Pipelines and GridSearchCV --------------------------------------------
def make_task_images(n=36, size=12, seed=0):
    """Task: which half is brighter (kept by colour attacks); secret: the dominant colour."""
    rng = np.random.default_rng(seed)
    X = rng.integers(40, 100, (n, size, size, 3))
    task = rng.integers(0, 2, n)
    secret = np.arange(n) % 3
    X[task == 1, : size // 2] += 80
    X[task == 0, size // 2 :] += 80
    X[np.arange(n), :, :, secret] += 60
    return X.astype(np.uint8), task, np.array(["red", "green", "blue"])[secret]


def grey_pixels(X):
    X = np.asarray(X, dtype=np.float32)
    return X.mean(axis=3).reshape(len(X), -1)


def test_unfitted_classifier_is_trained_as_a_surrogate_in_fit():
    X, _, secret = make_task_images()
    est = MeanColourClassifier()
    cf = ColorFool(est, segmenter=None, n_trials=40, random_state=0, device="cpu")
    cf.fit(X, sensitive_features=secret)
    assert not hasattr(est, "classes_")  # the given estimator is cloned, not fitted
    surrogate = cf.classifier_.classifier
    assert cf.classifier_.kind == "torch_model" and surrogate is not est
    assert (surrogate.predict(X) == secret).mean() > 0.9
    out, diag = cf.transform_with_diagnostics(X)
    assert out.shape == X.shape and diag.success.mean() > 0.5
    with pytest.raises(ValueError, match="sensitive_features"):
        ColorFool(MeanColourClassifier(), device="cpu").fit(X)
    # A fitted classifier is only validated: the very object is attacked.
    cf = ColorFool(surrogate, device="cpu").fit(X)
    assert cf.classifier_.classifier is surrogate
    # Through an ImageClassifier, the surrogate keeps the given preprocessing.
    pf = PrivateFGSM(ImageClassifier(MeanColourClassifier(), input_size=6), device="cpu")
    pf.fit(X, sensitive_features=secret)
    assert pf.classifier_.input_size_ == (6, 6) and pf.classifier_.is_differentiable


@pytest.mark.parametrize(
    "protector, grid",
    [
        (ColorFool(MeanColourClassifier(), segmenter=None, random_state=0, device="cpu"), {"n_trials": [1, 40]}),
        (PrivateFGSM(MeanColourClassifier(), max_iter=20, random_state=0, device="cpu"), {"eps": [2 / 255, 8 / 255]}),
    ],
    ids=["ColorFool", "PrivateFGSM"],
)
def test_protector_in_pipeline_and_grid_search_with_routing(protector, grid):
    import sklearn
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    X, task, secret = make_task_images()
    app = make_pipeline(FunctionTransformer(grey_pixels), LogisticRegression(max_iter=500))
    pipe = Pipeline([("protector", protector), ("app", app)])
    param_grid = {f"protector__{k}": v for k, v in grid.items()}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, param_grid, cv=2).fit(X, task, sensitive_features=secret)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(scores > 0.8)  # the task survives protection
    fitted = search.best_estimator_.named_steps["protector"]
    assert hasattr(fitted.classifier_.classifier, "classes_")  # the surrogate was trained
    protected = search.best_estimator_[:-1].transform(X)
    assert protected.shape == X.shape and protected.dtype == np.uint8


@pytest.mark.parametrize("Protector, bad", [(ColorFool, {"n_trials": 0}), (PrivateFGSM, {"eps": 0.0})])
def test_scikit_learn_contract_on_images(Protector, bad):
    # scikit-learn's own checks feed 2-D tables, which image protectors do not take
    # (they are skipped by the tags); the API parts that apply are checked here.
    from sklearn.base import clone
    from sklearn.utils._param_validation import InvalidParameterError
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_set_params,
    )

    X, _ = make_images(4, 8)
    est = Protector(colour_net(gain=600.0), random_state=0, device="cpu")
    name = Protector.__name__
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    with pytest.raises(NotFittedError):
        est.transform(X)
    assert est.fit(X) is est
    copy = clone(est)
    assert not hasattr(copy, "classifier_") and copy.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    with pytest.raises(InvalidParameterError):
        clone(est).set_params(**bad).fit(X)
    with pytest.raises(ValueError, match=r"\(n_images, height, width, 3\)"):
        clone(est).fit(X.reshape(4, -1))
    out = est.transform(X)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), out)


# -- the transform contract of the three attacks ---------------------------------------
def _edgefool(**params):
    from sklearn_privacy.image import EdgeFool

    return EdgeFool(colour_net(gain=600.0), max_iter=3, n_channels=4, batch_size=4,
                    random_state=0, device="cpu", **params)


PROTECTORS = {
    "ColorFool": lambda: ColorFool(colour_net(), segmenter="heuristic", n_trials=30,
                                   random_state=0, device="cpu"),
    "PrivateFGSM-topk": lambda: PrivateFGSM(colour_net(gain=600.0), max_iter=5,
                                            random_state=0, device="cpu"),
    "PrivateFGSM-paper": lambda: PrivateFGSM(colour_net(gain=600.0), objective="paper",
                                             max_iter=5, random_state=0, device="cpu"),
    "EdgeFool": _edgefool,
    "EdgeFool-universal": lambda: _edgefool(mode="universal"),
}


def _state(est):
    """Every attribute of ``est``, pickled (torch modules and tensors by value)."""
    return {name: pickle.dumps(value) for name, value in vars(est).items()}


@pytest.mark.parametrize("make", PROTECTORS.values(), ids=PROTECTORS.keys())
def test_transform_leaves_the_fitted_state_unchanged(make):
    X, _ = make_images(5, 12, bias=6)
    est = make().fit(X)
    before = _state(est)
    out = est.transform(X)
    assert _state(est) == before
    out_d, diag = est.transform_with_diagnostics(X)
    assert _state(est) == before
    np.testing.assert_array_equal(out_d, out)
    # One array per image, in input order.
    assert diag and all(np.asarray(v).shape == (5,) for v in diag.values())


@pytest.mark.parametrize("make", [PROTECTORS["ColorFool"], PROTECTORS["PrivateFGSM-paper"]],
                         ids=["ColorFool", "PrivateFGSM-paper"])
def test_random_draws_do_not_depend_on_the_batch_position(make):
    # batch_size=1 isolates the random draws from the batch computation (whose
    # layout-independence other tests check): each image's draws must come from
    # random_state and the image, not from where it sits in X.
    X, _ = make_images(8, 12, bias=6)
    est = make().set_params(batch_size=1).fit(X)
    perm = np.array([3, 0, 5, 1, 7, 2, 6, 4])
    out, diag = est.transform_with_diagnostics(X)
    out_p, diag_p = est.transform_with_diagnostics(X[perm])
    np.testing.assert_array_equal(out_p, out[perm])
    for name in diag:
        np.testing.assert_array_equal(diag_p[name], diag[name][perm], err_msg=name)
    # The same image twice gets the same draws; a subset gives the same images.
    np.testing.assert_array_equal(est.transform(X[[2, 2]]), out[[2, 2]])
    np.testing.assert_array_equal(est.transform(X[5:]), out[5:])
    # ... while another random_state gives other draws.
    assert not np.array_equal(est.set_params(random_state=1).transform(X), out)


def test_pfgsm_topk_clip_binds_when_the_margin_is_out_of_reach():
    # An unreachable margin keeps every image stepping for all max_iter steps, well
    # beyond eps in 8-bit levels: only the L-inf clip keeps the output in the ball.
    X, _ = make_images(6, 12, bias=6)
    for eps, quantization in ((2 / 255, "round"), (3.5 / 255, "floor")):
        pf = PrivateFGSM(colour_net(gain=600.0), eps=eps, k=1, margin=1e6, max_iter=12,
                         quantization=quantization, random_state=0, device="cpu")
        out, diag = fit_diagnose(pf, X)
        np.testing.assert_array_equal(diag.n_iter, 12)
        bound = int(np.floor(eps * 255))
        change = np.abs(out.astype(int) - X.astype(int))
        assert change.max() == bound  # the clip binds ...
        assert (change == bound).mean() > 0.3  # ... on many pixels
        # Float input: the same bound on the 8-bit grid.
        out_f = pf.transform(X / 255.0)
        assert np.abs(np.round(out_f * 255).astype(int) - X.astype(int)).max() <= bound


@pytest.mark.parametrize("make", PROTECTORS.values(), ids=PROTECTORS.keys())
def test_dtype_convention_float16_and_bad_input(make):
    X, _ = make_images(4, 12, bias=6)
    est = make().fit(X)
    out_u8 = est.transform(X)
    assert out_u8.dtype == np.uint8 and out_u8.shape == X.shape
    # float16 (like float64) is a float convention: float32 out, on the 8-bit levels.
    for dtype in (np.float16, np.float64):
        out = est.transform((X / 255.0).astype(dtype))
        assert out.dtype == np.float32 and out.shape == X.shape
        levels = out * 255.0
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
        assert 0.0 <= out.min() and out.max() <= 1.0
    bad_nan = (X / 255.0).astype(np.float32)
    bad_nan[1, 2, 3, 0] = np.nan
    cases = [
        (bad_nan, "NaN"),
        (np.zeros((2, 12, 12, 4), np.uint8), r"\(n_images, height, width, 3\)"),
        (X[0], r"\(n_images, height, width, 3\)"),
        (X[:0], "empty"),
        ([], "empty"),
        (X.astype(np.int64), r"in \[0, 1\]"),
        ([X[0], np.zeros((12, 12), np.uint8)], r"\(height, width, 3\)"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            est.transform(bad)
        with pytest.raises(ValueError, match=message):
            make().fit(bad)
