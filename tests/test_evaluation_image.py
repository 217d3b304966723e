"""The image evaluation protocol (``image_privacy_report``) and ``evaluate image``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_privacy.cli import main
from sklearn_privacy.datasets._images import CIFAR10_CLASSES
from sklearn_privacy.evaluation import (
    IMAGE_ROBUSTNESS,
    image_privacy_report,
    matched_psnr_blur,
    matched_psnr_noise,
)
from sklearn_privacy.evaluation._image_job import detect_image_dataset
from sklearn_privacy.metrics import psnr
from sklearn_privacy.evaluation import RECORD_KEYS

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _flatten(X):
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1) / 255.0


def _classifier(model):
    return make_pipeline(FunctionTransformer(_flatten), model)


def _brightness_data(n, seed):
    """Class 0: dark images, class 1: bright ones (plus texture)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.integers(0, 80, (n, 16, 16, 3)) + 150 * y[:, None, None, None]
    return X.astype(np.uint8), y


class Invert(BaseEstimator):
    """Toy protector: the photographic negative (dark <-> bright), attacking ``classifier``."""

    def __init__(self, classifier=None):
        self.classifier = classifier

    def fit(self, X, y=None):
        self.classifier_ = self.classifier
        self.n_fit_ = len(X)
        return self

    def transform(self, X):
        return (255 - np.asarray(X)).astype(np.uint8)


class Dim(BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return (np.asarray(X) * 0.9).astype(np.uint8)


class Identity(BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X).copy()


def _find(records, **query):
    return [r for r in records if all(r.get(k) == v for k, v in query.items())]


@pytest.fixture(scope="module")
def report():
    X_train, y_train = _brightness_data(60, 0)
    X_test, y_test = _brightness_data(40, 1)
    X_ref, _ = _brightness_data(10, 2)
    invert = Invert()
    records = image_privacy_report(
        {"Invert": invert, "Dim": Dim(), "Identity": Identity()},
        _classifier(KNeighborsClassifier(3)), X_train, y_train, X_test, y_test,
        transfer={"logreg": _classifier(LogisticRegression())},
        adaptive={"logreg": _classifier(LogisticRegression())},
        adaptive_references=["Invert"], X_reference=X_ref, n_images={"Identity": 10},
        n_protector_fit={"Invert": 7}, confidence=0.5, dataset="toy",
        classifier_name="knn", sensitive_name="brightness", random_state=0,
    )
    return records, invert


def test_report_records_follow_the_benchmark_format(report):
    records, _ = report
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["dataset"] == "toy" and r["level"] == "image"
    clean = _find(records, protector="raw", metric="clean_accuracy")
    assert {r["attacker"] for r in clean} == {"knn", "logreg"}
    assert all(r["value"] == 1.0 and r["chance"] == 0.5 for r in clean)


def test_report_measures_success_transfer_and_robustness(report):
    records, invert = report
    # The negative flips dark and bright: every image fools both classifiers.
    success = _find(records, protector="Invert", metric="success_rate", subset="correct")
    assert {(r["attacker"], r["mode"]) for r in success} == {("knn", "static"),
                                                             ("logreg", "transfer")}
    assert all(r["value"] == 1.0 and r["n"] == 40 for r in success)
    for t in IMAGE_ROBUSTNESS:
        assert _find(records, protector="Invert", metric=f"success_rate_{t}",
                     subset="correct")[0]["value"] == 1.0
        assert _find(records, protector="raw", metric=f"success_rate_{t}",
                     subset="correct")[0]["value"] == 0.0
    assert _find(records, protector="Invert", metric="top1_out")[0]["value"] == 1.0
    assert not _find(records, metric="top3_out")  # two classes: undefined
    # The protector got a copy wired to the fitted attacked classifier.
    assert invert.classifier is None and not hasattr(invert, "n_fit_")
    assert _find(records, protector="Invert", metric="fit_seconds")[0]["n"] == 7
    # The identity changes nothing: no success, infinite PSNR on every image.
    assert _find(records, protector="Identity", metric="success_rate",
                 attacker="knn", subset="correct")[0]["value"] == 0.0
    unchanged = _find(records, protector="Identity", metric="psnr")[0]
    assert unchanged["n"] == 10 and unchanged["n_unchanged"] == 10
    assert {r["subset"] for r in _find(records, metric="success_rate")} == {"correct",
                                                                            "confident"}


def test_report_quality_and_psnr_matched_references(report):
    records, _ = report
    for metric in ("psnr", "ssim", "ciede2000", "naturalness", "linf"):
        assert _find(records, protector="Invert", metric=metric), metric
    assert _find(records, protector="Invert", metric="linf")[0]["value"] > 0.5
    target = _find(records, protector="Dim", metric="psnr")[0]["value"]
    for ref in ("GaussianNoise", "GaussianBlur"):
        reached = _find(records, protector=ref, metric="psnr", matched_to="Dim")[0]
        assert reached["value"] == pytest.approx(target, abs=0.5), ref
        assert _find(records, protector=ref, metric="sigma", matched_to="Dim")[0]["value"] > 0
    # Clipped noise cannot get as far from the images as their negative: the reached
    # PSNR is recorded, above the target.
    invert = _find(records, protector="Invert", metric="psnr")[0]["value"]
    assert _find(records, protector="GaussianNoise", metric="psnr",
                 matched_to="Invert")[0]["value"] > invert + 1


def test_adaptive_attacker_beats_the_static_one(report):
    records, _ = report

    def score(protector, mode, **kw):
        return _find(records, protector=protector, attacker="logreg", mode=mode,
                     metric="brightness_balanced_accuracy", subset="adaptive_test",
                     **kw)[0]

    assert score("raw", "adaptive")["value"] == 1.0
    # Trained on clean images, the attacker reads inverted images backwards; retrained
    # on inverted ones it reads them perfectly: the negative hides nothing.
    assert score("Invert", "static")["value"] == 0.0
    assert score("Invert", "adaptive")["value"] == 1.0
    assert score("Invert", "adaptive")["chance"] == 0.5
    assert score("GaussianNoise", "adaptive", matched_to="Invert")
    # Every protector is measured (default adaptive_protectors: all); the identity
    # hides nothing from either attacker.
    assert score("Identity", "static")["value"] == score("Identity", "adaptive")["value"] == 1.0


def test_report_rejects_bad_input():
    X, y = _brightness_data(10, 0)
    clf = _classifier(KNeighborsClassifier(1))
    with pytest.raises(ValueError, match="one label per image"):
        image_privacy_report({}, clf, X, y[:-1], X, y)
    with pytest.raises(ValueError, match="uint8 images"):
        image_privacy_report({}, clf, X / 255.0, y, X, y)
    with pytest.raises(ValueError, match="unknown robustness"):
        image_privacy_report({}, clf, X, y, X, y, robustness=["jpeg"])
    with pytest.raises(ValueError, match="unknown adaptive protector"):
        image_privacy_report({"Identity": Identity()}, clf, X, y, X, y,
                             adaptive_protectors=["Invert"])
    with pytest.raises(TypeError, match="dict"):
        image_privacy_report([Identity()], clf, X, y, X, y)


def test_matched_psnr_noise_and_blur_reach_the_target():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 24, 24, 3)).astype(np.uint8)
    images = np.repeat(np.repeat(images[:, ::4, ::4], 4, axis=1), 4, axis=2)  # blurrable
    target = np.array([25.0, 30.0, np.inf])
    noisy, sigma = matched_psnr_noise(images, target, random_state=0)
    reached = psnr(images, noisy, average=False)
    assert np.allclose(reached[:2], target[:2], atol=0.3)
    assert np.array_equal(noisy[2], images[2]) and sigma[2] == 0
    blurred, sigma = matched_psnr_blur(images, target)
    assert np.allclose(psnr(images, blurred, average=False)[:2], target[:2], atol=0.5)
    assert sigma[1] < sigma[0]
    with pytest.raises(ValueError, match="one PSNR per image"):
        matched_psnr_noise(images, [30.0])


def test_robustness_transforms():
    images = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    images[0, 4, 4] = 255  # one salt pixel
    for name, transform in IMAGE_ROBUSTNESS.items():
        out = transform(images)
        assert out.shape == images.shape and out.dtype == np.uint8, name
    assert np.all(IMAGE_ROBUSTNESS["median3"](images) == 100)
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    assert len(np.unique(IMAGE_ROBUSTNESS["quant4"](ramp))) == 16


# -- the command -----------------------------------------------------------------------------
def _jpeg(path, rgb, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size + (3,), rgb, dtype=np.uint8)).save(path)


def _fake_cifar(root, per_class=4):
    rng = np.random.default_rng(0)
    for subset in ("train", "test"):
        for k, cls in enumerate(CIFAR10_CLASSES):
            for i in range(per_class):
                rgb = (25 * k, int(rng.integers(0, 60)), 255 - 25 * k)
                _jpeg(root / subset / cls / f"{i:04d}.jpg", rgb, (32, 32))
    return root


def _fake_utkface(root, n=24):
    for i in range(n):
        gender = i % 2
        _jpeg(root / "crop_part1" / f"{20 + i}_{gender}_0_2017{i:010d}.jpg.chip.jpg",
              (40 + 170 * gender, 90, 200 - 150 * gender), (24, 24))
    return root


def test_detect_image_dataset(tmp_path):
    assert detect_image_dataset(_fake_cifar(tmp_path / "c", per_class=1)) == "cifar10"
    utk = _fake_utkface(tmp_path / "u", n=2)
    assert detect_image_dataset(utk) == "utkface"
    assert detect_image_dataset(utk / "crop_part1") == "utkface"


def test_evaluate_image_missing_or_unknown_folder(tmp_path, capsys):
    assert main(["evaluate", "image", "--data", str(tmp_path / "nowhere")]) == 2
    assert "image data folder not found" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not images")
    assert main(["evaluate", "image", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "neither a CIFAR-10 layout" in err and "UTKFace" in err
    assert main(["evaluate", "image", "--data", str(tmp_path), "--methods", "Magic"]) == 2
    assert "Magic" in capsys.readouterr().err


def test_evaluate_image_help_is_instant_and_lists_the_methods():
    code = (
        "import sys\n"
        "from sklearn_privacy.cli import main\n"
        "try:\n"
        "    main(['evaluate', 'image', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'numpy', 'sklearn') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=_REPO_ROOT, env=env, timeout=60)
    out, _, heavy = result.stdout.rpartition("HEAVY=")
    assert heavy.strip() == ""
    assert "--profile {quick,default,full}" in out and "EdgeFool-universal" in out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cifar10", "utkface"])
def test_evaluate_image_writes_the_report(kind, tmp_path, capsys):
    data = (_fake_cifar if kind == "cifar10" else _fake_utkface)(tmp_path / "data")
    out = tmp_path / "out"
    status = main(["evaluate", "image", "--data", str(data), "--profile", "quick",
                   "--methods", "ColorFool-r,EdgeFool-universal", "--output", str(out),
                   "--device", "cpu", "--quiet"])
    assert status == 0
    records = json.loads((out / "report.json").read_text())
    assert {r["dataset"] for r in records} == {kind}
    assert _find(records, protector="ColorFool-r", metric="success_rate", attacker="small")
    attribute = "class" if kind == "cifar10" else "gender"
    assert _find(records, protector="EdgeFool-universal", mode="adaptive",
                 metric=f"{attribute}_advantage")
    assert "## Summary" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "ColorFool-r" in printed and "attacker adaptive" in printed
