"""The image evaluation protocol: success, transfer, robustness, adaptive attackers, quality.

:func:`image_privacy_report` measures image protectors (ColorFool, P-FGSM, EdgeFool...)
against a classifier of the private attribute and returns tidy benchmark records. Every
figure is measured on the final uint8 images, through each classifier's own
preprocessing, after the protector has finished (never inside an attack loop).
"""

import copy
import math
import time

import numpy as np

from ..metrics import (
    attack_score,
    ciede2000_mean,
    fit_naturalness_model,
    naturalness_score,
    psnr,
    ssim,
)
from ._records import RECORD_KEYS

__all__ = [
    "IMAGE_REFERENCES",
    "IMAGE_ROBUSTNESS",
    "image_privacy_report",
    "matched_psnr_blur",
    "matched_psnr_noise",
]


# -- transforms the protected images may meet ------------------------------------------------
def _on_levels(transform):
    """Apply one of ColorFool's ``ROBUST_TRANSFORMS`` (8-bit levels ``(n, 3, H, W)``,
    floats) to uint8 images ``(n, H, W, 3)``."""

    def apply(images):
        import torch

        levels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        out = transform(levels)
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    return apply


def _jpeg75(images):
    from ..image import ROBUST_TRANSFORMS

    return _on_levels(ROBUST_TRANSFORMS["jpeg"])(images)


def _median3(images):
    from ..image import ROBUST_TRANSFORMS

    return _on_levels(ROBUST_TRANSFORMS["median"])(images)


def _quant4(images, bits=4):
    levels = 2**bits - 1
    return np.round(np.round(images / 255.0 * levels) / levels * 255.0).astype(np.uint8)


#: Transforms a protected photo may meet after protection, by record name
#: (``success_rate_<name>``): JPEG at quality 75 (PIL), a 3x3 median filter (edge pixels
#: repeated at the borders) and re-quantisation to 4 bits per channel. Each maps uint8
#: images ``(n, H, W, 3)`` to uint8 images of the same shape.
IMAGE_ROBUSTNESS = {"jpeg75": _jpeg75, "median3": _median3, "quant4": _quant4}

#: Reference distortions calibrated, image by image, to the PSNR a protector reached.
IMAGE_REFERENCES = ("GaussianNoise", "GaussianBlur")


# -- PSNR-matched references -----------------------------------------------------------------
def _psnr_u8(clean, out):
    diff = clean.astype(np.float64) - out.astype(np.float64)
    mse = np.mean(diff * diff, axis=(1, 2, 3)) / 255.0**2
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _bisect(render, clean, target, lo, hi, n_steps=30):
    n = len(clean)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (n,):
        raise ValueError(f"target_psnr must hold one PSNR per image ({n}); got shape "
                         f"{target.shape}.")
    lo, hi = np.full(n, lo, dtype=np.float64), np.full(n, hi, dtype=np.float64)
    finite = np.isfinite(target)
    for _ in range(n_steps):
        mid = (lo + hi) / 2.0
        above = _psnr_u8(clean, render(mid)) > target  # too little distortion: more sigma
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    sigma = np.where(finite, (lo + hi) / 2.0, 0.0)
    out = render(sigma)
    out[~finite] = clean[~finite]
    return out, sigma


def _as_uint8(images, name):
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 images of shape (n, H, W, 3); got "
                         f"{images.dtype} of shape {images.shape}.")
    if not len(images):
        raise ValueError(f"{name} holds no image.")
    return images


def matched_psnr_noise(images, target_psnr, *, random_state=None):
    """Gaussian noise calibrated, image by image, to a target PSNR.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W, 3), uint8
        Clean images.
    target_psnr : array-like of shape (n_images,)
        PSNR in dB to reach on each image; an infinite target leaves the image unchanged.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise pattern.

    Returns
    -------
    noisy : ndarray of shape (n_images, H, W, 3), uint8
        The noisy images (30 bisection steps on the noise level of each image).
    sigma : ndarray of shape (n_images,)
        The noise standard deviation of each image, in uint8 levels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.evaluation import matched_psnr_noise
    >>> from sklearn_privacy.metrics import psnr
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> noisy, sigma = matched_psnr_noise(images, [30.0, 40.0], random_state=0)
    >>> np.round(psnr(images, noisy, average=False))
    array([30., 40.])
    """
    from sklearn.utils import check_random_state

    images = _as_uint8(images, "images")
    seed = check_random_state(random_state).randint(2**31 - 1)
    z = np.random.default_rng(seed).standard_normal(images.shape)
    x = images.astype(np.float64)

    def render(sigma):
        return np.clip(np.round(x + sigma[:, None, None, None] * z), 0, 255).astype(np.uint8)

    return _bisect(render, images, target_psnr, 0.0, 128.0)


def matched_psnr_blur(images, target_psnr):
    """Gaussian blur calibrated, image by image, to a target PSNR.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W, 3), uint8
        Clean images.
    target_psnr : array-like of shape (n_images,)
        PSNR in dB to reach on each image; an infinite target leaves the image unchanged.
        The blur's sigma is at most a sixth of the image side, so a very low target may
        not be reached (the PSNR of the returned images says what was).

    Returns
    -------
    blurred : ndarray of shape (n_images, H, W, 3), uint8
        The blurred images (reflected borders).
    sigma : ndarray of shape (n_images,)
        The blur's standard deviation of each image, in pixels.
    """
    import torch
    import torch.nn.functional as F

    images = _as_uint8(images, "images")
    n, height, width, _ = images.shape
    max_sigma = min(height, width) / 6.0
    radius = max(1, min(int(math.ceil(3 * max_sigma)), min(height, width) - 1))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).reshape(1, n * 3, height, width).double()
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)

    def render(sigma):
        s = torch.as_tensor(np.maximum(sigma, 1e-3)).repeat_interleave(3)[:, None]
        k = torch.exp(-0.5 * (offsets[None] / s) ** 2)
        k = k / k.sum(dim=1, keepdim=True)
        y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
        y = F.conv2d(y, k[:, None, :, None], groups=n * 3)
        y = F.conv2d(y, k[:, None, None, :], groups=n * 3)
        y = y.reshape(n, 3, height, width).permute(0, 2, 3, 1).numpy()
        return np.clip(np.round(y), 0, 255).astype(np.uint8)

    return _bisect(render, images, target_psnr, 0.0, max_sigma)


# -- records ---------------------------------------------------------------------------------
def _num(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


class _Records:
    def __init__(self, dataset):
        self.dataset = dataset
        self.records = []

    def add(self, protector, metric, value, *, attacker=None, mode=None, level="image",
            std=None, n_folds=1, chance=None, **extra):
        record = dict.fromkeys(RECORD_KEYS)
        record.update(dataset=self.dataset, protector=protector, metric=metric,
                      attacker=attacker, mode=mode, level=level, value=_num(value),
                      std=_num(std), n_folds=n_folds, chance=_num(chance))
        record.update({k: _num(v) for k, v in extra.items() if v is not None})
        self.records.append(record)
        return record

    def rate(self, protector, metric, flags, mask, **kw):
        n = int(mask.sum())
        p = float(flags[mask].mean()) if n else float("nan")
        se = math.sqrt(p * (1 - p) / n) if n else float("nan")
        return self.add(protector, metric, p, std=se, n=n, **kw)


def _score_se(y, pred, metric):
    if metric == "accuracy":
        p = np.mean(pred == y)
        return math.sqrt(p * (1 - p) / len(y))
    classes = np.unique(y)
    var = sum(r * (1 - r) / m for r, m in
              ((np.mean(pred[y == c] == c), np.sum(y == c)) for c in classes))
    return math.sqrt(var) / len(classes)


# -- helpers ---------------------------------------------------------------------------------
def _is_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _fitted(estimator, X, y):
    if _is_fitted(estimator):
        return estimator, 0.0
    from sklearn.base import clone

    start = time.perf_counter()
    fitted = clone(estimator).fit(X, y)
    return fitted, time.perf_counter() - start


def _topk_out(classifier, images, y, k):
    proba = classifier.predict_proba(images)
    classes = np.asarray(classifier.classes_)
    column = np.searchsorted(classes, y)
    true = proba[np.arange(len(y)), column]
    # The true class is out of the top-k when k classes score strictly higher.
    return float(np.mean((proba > true[:, None]).sum(axis=1) >= k))


def _limit(value, name, default):
    if value is None:
        return default
    if isinstance(value, dict):
        value = value.get(name)
        return default if value is None else min(int(value), default)
    return min(int(value), default)


def _check_names(names, known, what):
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose among {sorted(known)}.")


# -- the report ------------------------------------------------------------------------------
def image_privacy_report(
    protectors,
    classifier,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    transfer=None,
    robustness=("jpeg75", "median3", "quant4"),
    adaptive=None,
    adaptive_protectors=None,
    adaptive_references=(),
    references=IMAGE_REFERENCES,
    quality=True,
    X_reference=None,
    n_images=None,
    n_adaptive_train=None,
    n_adaptive_test=None,
    n_protector_fit=None,
    confidence=None,
    dataset=None,
    classifier_name="attacked",
    sensitive_name="class",
    random_state=None,
    verbose=0,
):
    """Measure image protectors against a classifier of the private attribute.

    The protocol, on uint8 images ``(n, H, W, 3)`` whose label ``y`` is the attribute to
    hide (the scene, a person's gender...):

    1. ``classifier`` (the *attacked* model) and every ``transfer`` model are trained on
       ``X_train`` unless already fitted; their clean accuracy on ``X_test`` is recorded
       (``clean_accuracy``, chance = the majority share).
    2. The *attacked images* are the test images the attacked classifier labels
       correctly (the only ones on which fooling it means something), the first
       ``n_images`` of them.
    3. Each protector is fitted on the training images and protects the attacked images.
       Recorded, on the protected uint8 images: ``success_rate`` (the true label is no
       longer predicted) on the attacked classifier (``mode="static"``) and on each
       unseen ``transfer`` model (``mode="transfer"``, counted on images that model
       labels correctly when clean); ``success_rate_<t>`` after each ``robustness``
       transform ``t`` (the clean images through the same transform give the floor, as
       ``protector="raw"`` records); ``top<k>_out`` (true class out of the top-k, for
       ``k`` below the number of classes); ``psnr``, and with ``quality`` ``ssim``,
       ``ciede2000``, ``linf`` and, given ``X_reference``, ``naturalness``;
       ``fit_seconds``, ``transform_per_second`` and, for protectors with
       ``transform_with_diagnostics``, ``success_rate_in_loop`` (what the protector
       itself reported).
    4. ``references``: Gaussian noise and Gaussian blur calibrated, image by image, to
       the PSNR the protector reached (key ``matched_to``), so a success rate can be read
       against an equally strong, non-adversarial distortion.
    5. ``adaptive`` (the headline privacy figure): each attacker is trained on clean
       training images (*static*: tested on protected test images; and *raw*: tested on
       clean ones) and retrained on the same training images protected by the protector
       (*adaptive*: tested on protected test images). They are scored on the first
       ``n_adaptive_test`` test images, whether or not the attacked classifier labels
       them correctly. Metric ``<sensitive_name>_accuracy`` (or ``_balanced_accuracy``
       for two classes) and ``<sensitive_name>_advantage``, with its chance level.

    Every rate of steps 3-4 is also given on the ``confident`` subset (the attacked
    classifier is more than ``confidence`` sure) when ``confidence`` is set (key
    ``subset``: ``"correct"`` or ``"confident"``). The ``std`` of a rate is its
    standard error; of a quality figure, the spread over images.

    Parameters
    ----------
    protectors : dict of str -> protector
        Image protectors by record name. A protector whose ``classifier`` parameter is
        ``None`` attacks ``classifier`` (a copy of it is given the fitted classifier);
        any other is used as given. Each is fitted on the first ``n_protector_fit``
        training images (``fit`` only wraps the classifier for per-image methods;
        EdgeFool's universal mode trains its filter there).
    classifier : classifier
        The attacked classifier of the private attribute (e.g.
        :class:`~sklearn_privacy.adversaries.ImageCNNClassifier`), fitted or not; it
        needs ``predict`` and ``predict_proba``.
    X_train : ndarray of shape (n_train, H, W, 3), uint8
        Training images (of the classifiers, the protectors and the attackers).
    y_train : array-like of shape (n_train,)
        Their private labels.
    X_test : ndarray of shape (n_test, H, W, 3), uint8
        Test images, never used for training.
    y_test : array-like of shape (n_test,)
        Their private labels.
    transfer : dict of str -> classifier, default=None
        Unseen classifiers (other architectures or seeds), fitted or not, that the
        protectors never query.
    robustness : sequence of str, default=("jpeg75", "median3", "quant4")
        Names in :data:`IMAGE_ROBUSTNESS`.
    adaptive : dict of str -> classifier, default=None
        Unfitted attackers, cloned for each training set. ``None`` skips step 5.
    adaptive_protectors : sequence of str, default=None
        Protectors measured in step 5 (default: all). Protecting the attackers' training
        set costs one protection per image.
    adaptive_references : sequence of str, default=()
        Protectors of step 5 also measured with Gaussian noise at their per-image PSNR.
    references : sequence of str, default=("GaussianNoise", "GaussianBlur")
        PSNR-matched reference distortions of step 4 (``()`` for none).
    quality : bool, default=True
        Record SSIM, CIEDE2000, L-inf and naturalness besides PSNR.
    X_reference : ndarray of shape (n_reference, H, W, 3), uint8, default=None
        Held-out clean images for the naturalness model (a NIQE-style distance to
        their patch statistics, lower = more natural); ``None`` (or images smaller than
        8 pixels) skips naturalness.
    n_images : int or dict of str -> int, default=None
        How many attacked images (at most); a dict limits single protectors (slow
        per-image methods) and leaves the others at all.
    n_adaptive_train, n_adaptive_test : int, default=None
        Training and test images of step 5 (default: all).
    n_protector_fit : int or dict of str -> int, default=None
        Training images the protectors are fitted on (the first ones; default: all); a
        dict sets it per protector.
    confidence : float in (0, 1), default=None
        Threshold of the ``confident`` subset; ``None`` reports ``correct`` only.
    dataset : str, default=None
        The ``dataset`` key of the records.
    classifier_name : str, default="attacked"
        The ``attacker`` key of the attacked classifier's records.
    sensitive_name : str, default="class"
        Name of the private attribute in the adaptive metrics.
    random_state : int, RandomState instance or None, default=None
        Seeds the reference noise.
    verbose : int, default=0
        Print progress when positive.

    Returns
    -------
    records : list of dict
        Benchmark records (keys :data:`~sklearn_privacy.model_selection.RECORD_KEYS`
        with ``level="image"``, plus ``subset``, ``n`` and, where they apply,
        ``matched_to``, ``n_train``), ready for
        :func:`~sklearn_privacy.model_selection.write_benchmark_records`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn_privacy.evaluation import image_privacy_report
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> X = (rng.random((40, 8, 8, 3)) * 60 + 150 * y[:, None, None, None]).astype(np.uint8)
    >>> flat = FunctionTransformer(lambda X: X.reshape(len(X), -1) / 255.0)
    >>> clf = make_pipeline(flat, KNeighborsClassifier(3)).fit(X[::2], y[::2])
    >>> class Darken:  # any object with fit and transform
    ...     def fit(self, X):
    ...         return self
    ...     def transform(self, X):
    ...         return (X // 2).astype(np.uint8)
    >>> records = image_privacy_report({"Darken": Darken()}, clf, X[::2], y[::2],
    ...                                X[1::2], y[1::2], quality=False, references=())
    >>> [r["value"] for r in records if r["metric"] == "success_rate"]
    [0.5]
    """
    def log(message):
        if verbose:
            print(message, flush=True)

    X_train = _as_uint8(X_train, "X_train")
    X_test = _as_uint8(X_test, "X_test")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for X, y, name in ((X_train, y_train, "train"), (X_test, y_test, "test")):
        if y.shape != (len(X),):
            raise ValueError(f"y_{name} must hold one label per image of X_{name} "
                             f"({len(X)}); got shape {y.shape}.")
    if not isinstance(protectors, dict):
        raise TypeError("protectors must be a dict of name -> protector; got "
                        f"{type(protectors).__name__}.")
    robustness = list(robustness)
    _check_names(robustness, IMAGE_ROBUSTNESS, "robustness transform(s)")
    references = list(references)
    _check_names(references, IMAGE_REFERENCES, "reference(s)")
    adaptive_protectors = (list(protectors) if adaptive_protectors is None
                           else list(adaptive_protectors))
    _check_names(adaptive_protectors, protectors, "adaptive protector(s)")
    _check_names(list(adaptive_references), adaptive_protectors, "adaptive reference(s)")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}.")
    if isinstance(random_state, (int, np.integer)):
        seed = int(random_state)
    else:
        from sklearn.utils import check_random_state

        seed = int(check_random_state(random_state).randint(2**31 - 1))
    rec = _Records(dataset)

    # 1. Classifiers.
    models = {}
    attacked_name = classifier_name
    for name, model in [(attacked_name, classifier)] + list((transfer or {}).items()):
        models[name], fit_s = _fitted(model, X_train, y_train)
        acc = float(np.mean(models[name].predict(X_test) == y_test))
        rec.add("raw", "clean_accuracy", acc, attacker=name,
                mode="static" if name == attacked_name else "transfer", subset="test",
                n=len(y_test), chance=np.bincount(np.unique(y_test, return_inverse=True)[1])
                .max() / len(y_test), fit_seconds=fit_s or None)
        log(f"{name}: clean accuracy {acc:.3f} on {len(y_test)} test images")
    attacked = models[attacked_name]

    # 2. The attacked images.
    chosen = np.flatnonzero(attacked.predict(X_test) == y_test)
    if not isinstance(n_images, dict):
        chosen = chosen[: _limit(n_images, "", len(chosen))]
    X, y = X_test[chosen], y_test[chosen]
    correct = {name: m.predict(X) == y for name, m in models.items()}
    subsets = {"correct": np.ones(len(y), dtype=bool)}
    if confidence is not None:
        subsets["confident"] = attacked.predict_proba(X).max(axis=1) > confidence
    n_classes = len(np.unique(np.concatenate([y_train, y_test])))
    log(f"attacking {len(y)} test images the attacked classifier labels correctly")
    for t in robustness:  # floors: the transform alone
        flags = attacked.predict(IMAGE_ROBUSTNESS[t](X)) != y
        for subset, mask in subsets.items():
            rec.rate("raw", f"success_rate_{t}", flags, mask, attacker=attacked_name,
                     mode="static", subset=subset)
    nat_model = None
    side = min(X.shape[1:3])
    if quality and X_reference is not None and side >= 8:  # smaller: no patch statistics
        X_reference = _as_uint8(X_reference, "X_reference")
        nat_model = fit_naturalness_model(X_reference, patch_size=16 if side >= 32 else 8)
        clean_nat = naturalness_score(X, nat_model, average=False)
        rec.add("raw", "naturalness", clean_nat.mean(), std=clean_nat.std(), subset="all",
                n=len(y))

    def evaluate(protector, out, idx, *, full=True, **extra):
        clean, yy = X[idx], y[idx]
        for name, model in models.items():
            flags = model.predict(out) != yy
            mode = "static" if name == attacked_name else "transfer"
            for subset, mask in subsets.items():
                rec.rate(protector, "success_rate", flags, mask[idx] & correct[name][idx],
                         attacker=name, mode=mode, subset=subset, **extra)
        if full:
            for t in robustness:
                flags = attacked.predict(IMAGE_ROBUSTNESS[t](out)) != yy
                for subset, mask in subsets.items():
                    rec.rate(protector, f"success_rate_{t}", flags, mask[idx],
                             attacker=attacked_name, mode="static", subset=subset, **extra)
            for k in (1, 3, 5):
                for subset, mask in subsets.items():
                    m = mask[idx]
                    if k < n_classes and m.any():
                        rec.add(protector, f"top{k}_out", _topk_out(attacked, out[m], yy[m], k),
                                attacker=attacked_name, mode="static", subset=subset,
                                n=int(m.sum()), **extra)
        values = {"psnr": psnr(clean, out, average=False)}
        if full and quality:
            # Images smaller than the Gaussian 11x11 window: a uniform window that fits.
            kw = {} if side >= 11 else {"window": "uniform", "win_size": 7 if side >= 7 else 3}
            values["ssim"] = ssim(clean, out, average=False, **kw)
            values["ciede2000"] = ciede2000_mean(clean, out, average=False)
            if nat_model is not None:
                values["naturalness"] = naturalness_score(out, nat_model, average=False)
        for metric, v in values.items():
            finite = v[np.isfinite(v)]
            rec.add(protector, metric, finite.mean() if finite.size else float("inf"),
                    std=finite.std() if finite.size else None, subset="all", n=len(v),
                    n_unchanged=int((~np.isfinite(v)).sum()) if metric == "psnr" else None,
                    **extra)
        if full and quality:
            linf = np.abs(out.astype(np.int16) - clean.astype(np.int16)).max() / 255.0
            rec.add(protector, "linf", linf, subset="all", n=len(idx), **extra)
        return values["psnr"]

    def prepare(protector):
        params = protector.get_params(deep=False) if hasattr(protector, "get_params") else {}
        if "classifier" in params and params["classifier"] is None:
            protector = copy.deepcopy(protector).set_params(classifier=attacked)
        return protector

    def protect(protector, images):
        if hasattr(protector, "transform_with_diagnostics"):
            out, diag = protector.transform_with_diagnostics(images)
            return np.asarray(out), np.asarray(diag.success, dtype=bool)
        return np.asarray(protector.transform(images)), None

    fitted = {}
    # 3-4. Each protector on the attacked images.
    for name, protector in protectors.items():
        protector = prepare(protector)
        n_fit = _limit(n_protector_fit, name, len(X_train))
        start = time.perf_counter()
        protector.fit(X_train[:n_fit])
        fit_s = time.perf_counter() - start
        fitted[name] = protector
        rec.add(name, "fit_seconds", fit_s, n=n_fit)
        idx = np.arange(_limit(n_images, name, len(y)))
        if not len(idx):
            continue
        start = time.perf_counter()
        out, in_loop = protect(protector, X[idx])
        seconds = time.perf_counter() - start
        rec.add(name, "transform_per_second", len(idx) / max(seconds, 1e-9), n=len(idx))
        if in_loop is not None:
            rec.rate(name, "success_rate_in_loop", in_loop, np.ones(len(idx), bool),
                     attacker=attacked_name, mode="static", subset="correct")
        log(f"{name}: protected {len(idx)} images in {seconds:.1f}s")
        psnr_values = evaluate(name, out, idx)
        for ref in references:
            if ref == "GaussianNoise":
                ref_out, sigma = matched_psnr_noise(X[idx], psnr_values, random_state=seed)
                unit = "uint8 levels"
            else:
                ref_out, sigma = matched_psnr_blur(X[idx], psnr_values)
                unit = "pixels"
            evaluate(ref, ref_out, idx, full=False, matched_to=name)
            rec.add(ref, "sigma", float(np.mean(sigma)), std=float(np.std(sigma)),
                    subset="all", n=len(idx), matched_to=name, unit=unit)

    # 5. Adaptive attackers.
    if adaptive:
        from sklearn.base import clone

        n_tr = _limit(n_adaptive_train, "", len(X_train))
        n_te = _limit(n_adaptive_test, "", len(X_test))
        Xa, ya, Xt, yt = X_train[:n_tr], y_train[:n_tr], X_test[:n_te], y_test[:n_te]

        def attack(protector, arch, mode, pred, **extra):
            res = attack_score(yt, pred)
            se = _score_se(yt, pred, res["metric"])
            common = dict(attacker=arch, mode=mode, subset="adaptive_test", n=len(yt),
                          n_train=n_tr, **extra)
            rec.add(protector, f"{sensitive_name}_{res['metric']}", res["score"], std=se,
                    chance=res["chance"], **common)
            rec.add(protector, f"{sensitive_name}_advantage", res["advantage"],
                    std=se / (1 - res["chance"]), chance=0.0, **common)
            return res

        clean = {}
        for arch, attacker in adaptive.items():
            clean[arch] = clone(attacker).fit(Xa, ya)
            pred = clean[arch].predict(Xt)
            for mode in ("adaptive", "static"):  # on clean images the two coincide
                res = attack("raw", arch, mode, pred)
            log(f"adaptive: {arch} on clean images: {res['metric']} {res['score']:.3f}")
        for name in adaptive_protectors:
            protector, images = fitted[name], {}
            for part, imgs in (("train", Xa), ("test", Xt)):
                images[part], in_loop = protect(protector, imgs)
                if in_loop is not None:
                    rec.rate(name, "success_rate_in_loop", in_loop, np.ones(len(imgs), bool),
                             attacker=attacked_name, mode="static", subset=f"adaptive_{part}")
            versions = [(name, images, {})]
            if name in adaptive_references:
                # Different seeds for the two sets: one seed would give the i-th training
                # and test images the same noise pattern.
                noisy = {part: matched_psnr_noise(
                    imgs, psnr(imgs, images[part], average=False),
                    random_state=seed + offset)[0]
                    for part, imgs, offset in (("train", Xa, 1), ("test", Xt, 0))}
                versions.append(("GaussianNoise", noisy, {"matched_to": name}))
            for label, imgs, tags in versions:
                for arch, attacker in adaptive.items():
                    static = attack(label, arch, "static", clean[arch].predict(imgs["test"]),
                                    **tags)
                    retrained = clone(attacker).fit(imgs["train"], ya)
                    res = attack(label, arch, "adaptive", retrained.predict(imgs["test"]),
                                 **tags)
                    log(f"adaptive: {label} vs {arch}: static {static['score']:.3f}, "
                        f"adaptive {res['score']:.3f} (chance {res['chance']:.3f})")
    return rec.records
