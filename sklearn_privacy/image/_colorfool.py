"""ColorFool: semantic adversarial colorization (Shamsabadi et al., CVPR 2020)."""

import copy
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import BaseProtector
from ..utils.estimator_checks import register_estimator_check_config
from ._classifier import tensor_to_images
from ._color import lab_to_rgb, rgb_to_lab
from ._common import (
    CLASSIFIER_CONSTRAINT,
    ImageAttackMixin,
    image_groups,
    image_seeds,
    quantize,
)
from ._segmenters import HeuristicSegmenter, check_segmentation

__all__ = ["ColorFool"]

_N_UNIFORMS = 8  # per trial: global (da, db), then (da, db) for sky, vegetation, water
_AB_MAX = 127.0


def _box_blur(x, size=10):
    """Mean over a ``size`` x ``size`` box (OpenCV's ``blur`` anchor, replicated borders)."""
    before, after = (size - 1) // 2, size // 2
    return F.avg_pool2d(F.pad(x, (before, after, before, after), mode="replicate"), size, stride=1)


def _jpeg(levels, quality=75):
    """JPEG round trip (PIL, 4:2:0 chroma) of ``levels (P, 3, h, w)``, floats 0..255."""
    import io

    from PIL import Image

    out = torch.empty_like(levels)
    arr = levels.round().clamp(0, 255).to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(arr):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            dec = np.asarray(decoded.convert("RGB"))
        out[i] = torch.from_numpy(dec.copy()).permute(2, 0, 1).to(out)
    return out


def _median3(levels):
    """3x3 median per channel, borders as ``scipy.ndimage.median_filter(mode="reflect")``
    (``d c b a | a b c d``: for a 1-pixel border, the edge pixel repeated)."""
    p = F.pad(levels, (1, 1, 1, 1), mode="replicate")
    patches = p.unfold(2, 3, 1).unfold(3, 3, 1)  # (P, 3, h, w, 3, 3)
    return patches.reshape(*patches.shape[:4], 9).median(dim=-1).values


def _blur3(levels):
    """Binomial 3x3 blur ([1, 2, 1] / 4 each way, replicated borders), rounded to levels."""
    k = torch.tensor([1.0, 2.0, 1.0], device=levels.device, dtype=levels.dtype) / 4.0
    n, c, h, w = levels.shape
    x = F.pad(levels.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 3))
    x = F.conv2d(x, k.view(1, 1, 3, 1))
    return x.reshape(n, c, h, w).round()


def _shift1(levels):
    """Shift one pixel right and down (the exposed row and column repeat the edge)."""
    return F.pad(levels, (1, 0, 1, 0), mode="replicate")[..., :-1, :-1]


def _hflip(levels):
    return levels.flip(-1)


#: Named transforms of ``robust_transforms``: each maps 8-bit levels ``(P, 3, h, w)``
#: (floats 0..255) to 8-bit levels of the same shape.
ROBUST_TRANSFORMS = {
    "jpeg": _jpeg,
    "median": _median3,
    "blur": _blur3,
    "shift": _shift1,
    "flip": _hflip,
}


def _check_robust_transforms(transforms):
    if transforms is None:
        return []
    if isinstance(transforms, str) or callable(transforms):
        transforms = [transforms]
    out = []
    for t in transforms:
        if isinstance(t, str):
            if t not in ROBUST_TRANSFORMS:
                raise ValueError(
                    f"unknown robust transform {t!r}; use callables or names among "
                    f"{sorted(ROBUST_TRANSFORMS)}."
                )
            out.append(ROBUST_TRANSFORMS[t])
        elif callable(t):
            out.append(t)
        else:
            raise TypeError(f"robust_transforms must hold names or callables; got {t!r}.")
    return out


def _resize(t, size):
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    down = t.shape[-2] > size[0] or t.shape[-1] > size[1]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=down)


def _region_ranges(lab, masks):
    """Shift bounds ``(B, 3, 2, 2)`` = (region sky/vegetation/water, channel a/b, lo/hi).

    A shift within the bounds keeps the region's whole a/b range in its natural range:
    sky and water in a <= 0, b <= 0; vegetation in a <= 0, b >= 0 (all within +-127).
    Regions with no pixel of mask >= 0.5 get the empty shift [0, 0].
    """
    hard = masks[:, 1:4] >= 0.5  # (B, 3, H, W)
    present = hard.flatten(2).any(dim=2)  # (B, 3)
    bounds = []
    for channel in (1, 2):
        v = lab[:, channel : channel + 1]
        vmin = torch.where(hard, v, torch.full_like(v, torch.inf)).amin(dim=(2, 3))
        vmax = torch.where(hard, v, torch.full_like(v, -torch.inf)).amax(dim=(2, 3))
        bounds.append((vmin, vmax))
    (a_min, a_max), (b_min, b_max) = bounds
    # a <= 0 for all three regions.
    a_lo, a_hi = -_AB_MAX - a_min, -a_max
    # b <= 0 for sky and water, b >= 0 for vegetation (region index 1).
    b_lo = torch.stack([-_AB_MAX - b_min[:, 0], -b_min[:, 1], -_AB_MAX - b_min[:, 2]], dim=1)
    b_hi = torch.stack([-b_max[:, 0], _AB_MAX - b_max[:, 1], -b_max[:, 2]], dim=1)
    ranges = torch.stack([torch.stack([a_lo, a_hi], -1), torch.stack([b_lo, b_hi], -1)], dim=2)
    # A region spanning more than the natural range cannot fit: use the midpoint shift.
    mid = ranges.mean(dim=-1, keepdim=True)
    ranges = torch.where(ranges[..., :1] > ranges[..., 1:], mid.expand_as(ranges), ranges)
    return torch.where(present[:, :, None, None], ranges, torch.zeros_like(ranges))


def _shifts(u, scale, ranges):
    """Trial shifts from uniforms ``u (P, 8)``, scales ``(P,)`` and bounds ``(P, 3, 2, 2)``."""
    glob = scale[:, None] * (2.0 * _AB_MAX * u[:, 0:2] - _AB_MAX)
    lo, hi = ranges[..., 0], ranges[..., 1]
    region = scale[:, None, None] * (lo + (hi - lo) * u[:, 2:].reshape(-1, 3, 2))
    return region, glob


def _render(lab, masks, weight, region, glob):
    """Shift a and b of ``lab (P, 3, h, w)`` and return sRGB in [0, 1] ``(P, 3, h, w)``.

    ``region (P, 3, 2)`` shifts are spread by the sky/vegetation/water soft masks,
    ``glob (P, 2)`` by the global weight map ``(P, 1, h, w)``. L* is untouched.
    """
    # Elementwise, in a fixed order (not a batched matrix product), so that a pixel's
    # shift does not depend on how many trials are rendered together.
    m = masks[:, 1:4]
    shifts = []
    for c in (0, 1):
        r = region[..., c, None, None]  # (P, 3, 1, 1)
        shifts.append(r[:, 0] * m[:, 0] + r[:, 1] * m[:, 1] + r[:, 2] * m[:, 2]
                      + glob[:, c, None, None] * weight[:, 0])
    da, db = shifts
    a = (lab[:, 1] + da).clamp(-_AB_MAX, _AB_MAX)
    b = (lab[:, 2] + db).clamp(-_AB_MAX, _AB_MAX)
    return lab_to_rgb(torch.stack([lab[:, 0], a, b], dim=1))


def _fuse_conv_bn(module):
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an
    ``nn.Sequential`` into the convolution (in place; the pair computes the same map)."""
    for seq in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = seq._modules[first], seq._modules[second]
            if (
                type(conv) is torch.nn.Conv2d
                and type(bn) is torch.nn.BatchNorm2d
                and not bn.training
                and bn.track_running_stats
                and bn.num_features == conv.out_channels
            ):
                seq._modules[first] = fuse_conv_bn_eval(conv, bn)
                seq._modules[second] = torch.nn.Identity()
    return module


class _Scorer:
    """Top-1 class indices of 8-bit images, through the classifier's deployment
    preprocessing, for the trial search.

    A white-box model runs from a private copy set once to eval mode, without gradients,
    with batch norms that follow a convolution folded into it, and in channels-last
    memory format (the fast layout of CPU convolutions); the logits are those of
    :meth:`ImageClassifier.logits` up to floating-point rounding.
    Black-box classifiers, and models that reject channels-last inputs, go through
    :meth:`ImageClassifier.predict_indices`.
    """

    def __init__(self, classifier):
        self.classifier = classifier
        self.module = None
        if classifier.is_differentiable:
            module = copy.deepcopy(classifier._module).eval()
            for param in module.parameters():
                param.requires_grad_(False)
            with torch.no_grad():
                module = _fuse_conv_bn(module)
            self.module = module.to(memory_format=torch.channels_last)

    def __call__(self, levels):
        """Indices for ``levels (P, 3, h, w)``, floats 0..255 on the classifier's device."""
        images = levels / 255.0
        if self.module is not None:
            try:
                with torch.inference_mode():
                    t = self.classifier.preprocess(images)
                    out = self.module(t.contiguous(memory_format=torch.channels_last))
                    if isinstance(out, dict):  # torchvision-style outputs
                        out = out["out"]
                    return out.argmax(dim=1).cpu().numpy()
            except RuntimeError:  # e.g. a view() that needs contiguous inputs
                self.module = None
        return self.classifier.predict_indices(images)


class ColorFool(ImageAttackMixin, BaseProtector):
    """Semantic adversarial colorization: recolour images until a classifier errs.

    ColorFool (Shamsabadi, Sanchez-Matilla and Cavallaro, CVPR 2020) is a black-box
    attack that needs only the classifier's top-1 labels. In CIE Lab (D65) it keeps the
    lightness L* and shifts the colour channels a*, b*: sensitive regions keep natural
    colours (sky and water stay blue-ish, vegetation green-ish, people untouched) and the
    rest of the image takes one random colour shift. Trial ``n`` of ``n_trials`` draws its
    shifts at scale ``s = n / n_trials``; the first trial that changes the classifier's
    label is kept.

    Per trial and per region one constant shift ``(da, db)`` is drawn uniformly, at scale
    ``s``, within the bounds that keep the region's own a/b range in its natural range
    (sky and water: a <= 0, b <= 0; vegetation: a <= 0, b >= 0) and multiplied by the
    region's soft mask. Everything else gets one global shift ``(da, db) ~ U(-127 s,
    127 s)`` weighted by ``1 - box_blur_10x10(min(sum of masks, 1))``. a and b are clipped
    to [-127, 127], the image goes back to sRGB and is quantised to 8 bits.

    The search runs at the classifier's input resolution; the winning trial is then
    rendered at full resolution, quantised, and re-verified through the classifier's
    deployment preprocessing. If the saved image does not fool the classifier the search
    goes on with the next trial, so the reported success (see
    :meth:`transform_with_diagnostics`) is that of the returned images.
    (When the image already has the classifier's input resolution, the searched image
    *is* the saved one and is kept without a second rendering.) Trials of all images
    being processed are scored together, in classifier batches; the result is exactly
    that of the sequential loop (all shifts of an image come from its own random stream,
    in trial order, and the first successful trial is kept). The classifier runs from an
    inference copy of its torch model (eval mode, no gradients, batch norms folded into
    the preceding convolutions, channels-last layout) when it has one.

    Because the paper stops at the first trial that flips the label, its images sit at
    the attacked model's decision boundary and transfer poorly to other models. Two
    hard-label options beyond the paper (off by default) make the accepted trial more
    robust: ``robust_transforms`` (the label must also change on JPEG / median / blur /
    shifted / flipped copies) and ``ensemble`` (other classifiers must be fooled too).
    The search stays exactly that of the sequential loop with the stricter test.

    Parameters
    ----------
    classifier : ImageClassifier, torch.nn.Module, fitted classifier or unfitted estimator
        The classifier to fool (see :class:`ImageClassifier` for the accepted kinds;
        ColorFool needs labels only, so any fitted scikit-learn classifier of images
        works). An *unfitted* estimator (with ``fit``) is cloned and trained in
        :meth:`fit` on ``(X, sensitive_features)`` as a surrogate. Wrap a model in an
        :class:`ImageClassifier` to give its input size and normalisation.
    segmenter : "heuristic", callable or None, default="heuristic"
        Gives soft masks of person, sky, vegetation and water: a callable mapping
        float images ``(N, H, W, 3)`` to a dict of ``(N, H, W)`` masks in [0, 1] (see
        :class:`Segmenter`; e.g.
        :class:`TorchSegmenterAdapter` around a segmentation network). ``"heuristic"``
        uses :class:`HeuristicSegmenter`, an offline colour/position heuristic (rough:
        no learned model). ``None`` shifts the whole image globally ("ColorFool-r").
    n_trials : int, default=1000
        Maximum number of trials per image.
    trial_batch_size : int, default=50
        Largest number of trials of one image scored in one round; fewer are when many
        images are active, so that a round fills about one classifier batch and few
        trials are scored past an image's first success. The result does not depend on
        it; ``trial_batch_size=1, batch_size=1`` is the plain sequential loop.
    label_source : {"prediction", "given"}, default="prediction"
        Which label must change: the classifier's prediction on the clean image, or the
        given label. Given labels exist only in :meth:`fit_transform`
        (``sensitive_features``, or ``y`` when it is absent); :meth:`transform` then
        raises.
    quantization : {"round", "floor"}, default="round"
        How the output is mapped to 8 bits (``"floor"`` mimics a ``uint8`` cast).
    on_failure : {"strongest", "original", "paper"}, default="strongest"
        What an image that no trial fooled becomes: the last, strongest trial (as the
        original code) or the unchanged input. ``"paper"`` matters only with
        ``robust_transforms`` or ``ensemble``: an image that no trial passes the robust
        test becomes what the paper's algorithm returns for it (the first trial that
        changes the attacked classifier's label on the plain image, from the same random
        stream; the strongest trial if none does); without them it is ``"strongest"``.
    robust_transforms : list of {"jpeg", "median", "blur", "shift", "flip"} or callables, default=None
        Robust acceptance (an extension beyond the paper, still hard-label): a trial
        counts as a success only if the label also changes on each of these transformed
        copies of the 8-bit trial image. ``"jpeg"``: JPEG quality 75 (PIL, 4:2:0
        chroma); ``"median"``: 3x3 median; ``"blur"``: 3x3 binomial blur; ``"shift"``:
        one pixel right and down (edge repeated); ``"flip"``: horizontal flip. A
        callable maps 8-bit levels ``(P, 3, h, w)`` (a float tensor with values
        0..255) to a tensor of the same shape. The accepted image no longer sits on the
        attacked model's decision boundary, so it transfers better to other models and
        survives these transforms, at the cost of more (stronger) trials, hence a lower
        PSNR. ``None`` (or empty) is the paper's acceptance. Transformed copies are
        scored only for trials that already fool every judge on the plain image.
    ensemble : list of classifiers, default=None
        Extra hard-label judges (an extension beyond the paper): a trial counts as a
        success only if every member's label changes too (its own clean prediction, or
        the given label), on the plain image and on each of ``robust_transforms``. The
        members take the same kinds as ``classifier``; unfitted ones are cloned and
        trained in :meth:`fit` on ``(X, sensitive_features)`` like a surrogate.
        ``None`` (or empty) is the paper's single classifier.
    batch_size : int, default=16
        Images processed together (bounded memory: the classifier sees at most its own
        ``batch_size`` images per forward pass).
    random_state : int, RandomState instance or None, default=None
        Seeds the per-image random streams of trial shifts. An image's stream comes from
        this seed and the image's content, not its position in the batch (identical
        images get identical outputs); with an int, ``transform`` is deterministic.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the classifier and the colour maths run.

    Attributes
    ----------
    classifier_ : ImageClassifier
        The attacked classifier (the trained surrogate, when one was given unfitted).
    device_ : str
        The resolved device.
    ensemble_ : list of ImageClassifier
        The ``ensemble`` members (trained surrogates for unfitted ones); empty without.

    Notes
    -----
    Outputs keep the input's convention: uint8 in, uint8 out; float in, float32 out on
    the 256 levels ``k / 255`` (float16 and float64 inputs included). A list of images
    of different sizes is accepted and returned as a list. :meth:`transform` does not
    change the fitted estimator; per-image figures (success, trials) come from
    :meth:`transform_with_diagnostics`.

    References
    ----------
    A. S. Shamsabadi, R. Sanchez-Matilla, A. Cavallaro. "ColorFool: Semantic Adversarial
    Colorization". CVPR 2020.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import ColorFool
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> images = np.zeros((2, 16, 16, 3), dtype=np.uint8); images[..., 0] = 200
    >>> cf = ColorFool(net, segmenter=None, n_trials=50, random_state=0, device="cpu")
    >>> out, diagnostics = cf.fit(images).transform_with_diagnostics(images)
    >>> out.dtype, bool(diagnostics.success.all())
    (dtype('uint8'), True)
    """

    _parameter_constraints = {
        "classifier": CLASSIFIER_CONSTRAINT + [None],
        "segmenter": [StrOptions({"heuristic"}), callable, None],
        "n_trials": [Interval(numbers.Integral, 1, None, closed="left")],
        "trial_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "label_source": [StrOptions({"prediction", "given"})],
        "quantization": [StrOptions({"round", "floor"})],
        "on_failure": [StrOptions({"strongest", "original", "paper"})],
        "robust_transforms": [list, tuple, StrOptions(set(ROBUST_TRANSFORMS)), callable, None],
        "ensemble": [list, tuple, None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        classifier=None,
        *,
        segmenter="heuristic",
        n_trials=1000,
        trial_batch_size=50,
        label_source="prediction",
        quantization="round",
        on_failure="strongest",
        robust_transforms=None,
        ensemble=None,
        batch_size=16,
        random_state=None,
        device="auto",
    ):
        self.classifier = classifier
        self.segmenter = segmenter
        self.n_trials = n_trials
        self.trial_batch_size = trial_batch_size
        self.label_source = label_source
        self.quantization = quantization
        self.on_failure = on_failure
        self.robust_transforms = robust_transforms
        self.ensemble = ensemble
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    _y_usage = "ignored"
    _sensitive_usage = "optional"

    def fit(self, X, y=None, *, sensitive_features=None):
        """Validate the classifier, or train it as a surrogate when it is unfitted.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].
        y : ignored
            Present for Pipeline compatibility.
        sensitive_features : array-like of shape (n_images,), default=None
            The labels to hide (e.g. the scene); required only to train a surrogate.

        Returns
        -------
        self : ColorFool
        """
        return self._fit_template(X, y, sensitive_features)

    def _fit(self, X, y, sensitive_features, *, rng):
        self._resolve_classifier(X, sensitive_features)
        _check_robust_transforms(self.robust_transforms)
        members = [] if self.ensemble is None else list(self.ensemble)
        self.ensemble_ = [self._build_classifier(m, X, sensitive_features) for m in members]
        return self

    def transform_with_diagnostics(self, X, *, sensitive_features=None):
        """Recolour images, and return per-image diagnostics of this call.

        :meth:`transform` returns the same images without the diagnostics; neither
        changes the fitted estimator. Each image's trial shifts come from
        ``random_state`` and the image itself, not from its position in the batch:
        ``transform(X[perm])`` equals ``transform(X)[perm]``.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].
        sensitive_features : array-like of shape (n_images,), default=None
            With ``label_source="given"`` (required then): the label of each image that
            must change. Ignored with ``label_source="prediction"``.

        Returns
        -------
        X_protected : ndarray or list
            Same layout and dtype convention as ``X`` (see :meth:`transform`).
        diagnostics : :class:`~sklearn.utils.Bunch`
            Arrays of shape ``(n_images,)`` in input order:

            - ``success`` (bool): whether each returned (quantised) image changes the
              classifier's label, verified through its deployment preprocessing (with
              ``robust_transforms`` or ``ensemble``: whether it passed the test it was
              searched with, the robust one, or the paper's for
              ``on_failure="paper"`` fallbacks).
            - ``robust_success`` (bool): whether each returned image passed the whole
              acceptance test (every judge, plain and transformed); equal to
              ``success`` without ``robust_transforms`` and ``ensemble``.
            - ``n_trials`` (int): the 1-based index of the returned trial
              (``n_trials`` for failures; 0 when ``on_failure="original"`` returned
              the input unchanged).
        """
        images, was_uint8 = self._transform_setup(X)
        labels = None
        if self.label_source == "given":
            if sensitive_features is None:
                raise ValueError(
                    "label_source='given' needs the labels, which transform(X) does not "
                    "receive: use fit_transform(X, sensitive_features=labels), "
                    "transform_with_diagnostics(X, sensitive_features=labels), or "
                    "label_source='prediction'."
                )
            labels = np.asarray(sensitive_features)
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.shape != (len(images),):
                raise ValueError(
                    f"sensitive_features: expected {len(images)} labels, got an array of "
                    f"shape {labels.shape}."
                )
        return self._protect(images, was_uint8, labels=labels)

    def fit_transform(self, X, y=None, *, sensitive_features=None):
        """Fit, then recolour ``X``; with ``label_source="given"`` the labels come from here.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].
        y : array-like of shape (n_images,), default=None
            Used as the given labels when ``label_source="given"`` and
            ``sensitive_features`` is None.
        sensitive_features : array-like of shape (n_images,), default=None
            The labels to hide; trains a surrogate classifier, and with
            ``label_source="given"`` is the label that must change.

        Returns
        -------
        X_protected : ndarray or list
        """
        self.fit(X, y, sensitive_features=sensitive_features)
        labels = None
        if self.label_source == "given":
            labels = sensitive_features if sensitive_features is not None else y
            if labels is None:
                raise ValueError(
                    "label_source='given' needs labels: pass sensitive_features (or y) to fit_transform."
                )
        return self.transform_with_diagnostics(X, sensitive_features=labels)[0]

    # -- the attack ---------------------------------------------------------------------
    def _get_segmenter(self):
        if self.segmenter is None:
            return None
        if isinstance(self.segmenter, str):
            return HeuristicSegmenter()
        return self.segmenter

    def _protect(self, images, was_uint8, labels):
        clf = self.classifier_
        n_images = len(images)
        seeds = np.array(image_seeds(images, self.random_state), dtype=np.uint64)
        # The judges of a trial: the attacked classifier, then any ensemble members, each
        # with the label it must stop giving.
        judges = []
        for member in [clf] + list(getattr(self, "ensemble_", [])):
            if labels is None:
                member_idx = member.predict_indices(images)
            else:
                member_idx = member.labels_to_indices(labels)
            judges.append((_Scorer(member), member_idx))
        transforms = _check_robust_transforms(self.robust_transforms)
        segmenter = self._get_segmenter()
        robust = bool(transforms) or len(judges) > 1
        on_failure = self.on_failure
        if on_failure == "paper":
            on_failure = "strongest"
            fallback = robust
        else:
            fallback = False
        outputs = {}
        success = np.zeros(n_images, dtype=bool)
        robust_success = np.zeros(n_images, dtype=bool)
        n_used = np.zeros(n_images, dtype=np.int64)
        for idx, x in image_groups(images, self.batch_size):
            chunk_judges = [(scorer, lab[idx]) for scorer, lab in judges]
            out, ok, used, first_plain = self._attack_chunk(
                x, chunk_judges, transforms, seeds[idx], segmenter, on_failure
            )
            robust_success[idx] = ok
            if fallback and not ok.all():
                # The paper's search (attacked classifier alone, plain image) for the images
                # no robust trial passed: the same random streams, so the paper's output.
                # Their every trial was scored: the paper's search starts at the first one
                # that fooled the attacked classifier on the plain (search) image.
                miss = np.flatnonzero(~ok)
                scorer, lab = chunk_judges[0]
                out_p, ok_p, used_p, _ = self._attack_chunk(
                    x[torch.as_tensor(miss)], [(scorer, lab[miss])], [], seeds[idx][miss],
                    segmenter, on_failure, start=first_plain[miss],
                )
                out[miss], ok[miss], used[miss] = out_p, ok_p, used_p
            for j, i in enumerate(idx):
                outputs[i] = out[j]
            success[idx] = ok
            n_used[idx] = used
        diagnostics = Bunch(success=success, robust_success=robust_success, n_trials=n_used)
        return self._assemble(outputs, n_images, images, was_uint8), diagnostics

    def _attack_chunk(self, x, judges, transforms, seeds, segmenter, on_failure, start=None):
        """Attack same-size images ``x (B, 3, H, W)``; return uint8-level float images (B, H, W, 3).

        ``judges`` are ``(scorer, labels of the chunk)`` pairs, the attacked classifier
        first; a trial is a success when every judge's label changes, on the trial image
        and on each of its ``transforms``. The search starts at trial ``start`` (per
        image; default 0). Also returns, per image, the first trial (0-based; ``n_trials``
        for none) that fooled the attacked classifier on the plain search image.
        """
        clf = self.classifier_
        device = clf.device_
        n_img, _, height, width = x.shape
        N, K = int(self.n_trials), int(self.trial_batch_size)
        if segmenter is None:
            masks = torch.zeros((n_img, 4, height, width))
        else:
            masks = check_segmentation(segmenter(tensor_to_images(x)), (n_img, height, width))
        with torch.no_grad():
            x = x.to(device)
            masks = masks.to(device)
            lab = rgb_to_lab(x)
            weight = 1.0 - _box_blur(masks.sum(dim=1, keepdim=True).clamp(max=1.0))
            ranges = _region_ranges(lab, masks)
            # All trial shifts of an image, in trial order, from its own stream.
            uniforms = torch.from_numpy(
                np.stack([np.random.default_rng(s).random((N, _N_UNIFORMS)) for s in seeds])
            ).to(device, torch.float32)
            scales = torch.arange(1, N + 1, device=device, dtype=torch.float32) / N
            search_size = clf.native_size or (height, width)
            # Searching at full resolution: the search image *is* the saved image, so
            # the winning trial needs no second rendering nor second verification.
            full_search = tuple(search_size) == (height, width)
            if full_search:
                lab_s, masks_s, weight_s = lab, masks, weight
            else:
                lab_s = rgb_to_lab(_resize(x, search_size))
                masks_s = _resize(masks, search_size)
                weight_s = _resize(weight, search_size)

            def render(img, trial, full):
                trial_t = torch.as_tensor(trial, device=device)
                img_t = torch.as_tensor(img, device=device)
                region, glob = _shifts(uniforms[img_t, trial_t], scales[trial_t], ranges[img_t])
                src = (lab, masks, weight) if full else (lab_s, masks_s, weight_s)
                rgb = _render(src[0][img_t], src[1][img_t], src[2][img_t], region, glob)
                return quantize(rgb, self.quantization)

            def fooled(q, imgs):
                """Whether each 8-bit trial image ``q[j]`` of image ``imgs[j]`` is accepted,
                and whether it fools the attacked classifier on the plain image."""
                ok = np.ones(len(imgs), dtype=bool)
                plain = None
                # The plain image first: most trials fail there, and the costlier checks
                # (transforms, ensemble members) only see its survivors.
                for transform in [None] + transforms:
                    rows = np.flatnonzero(ok)
                    if rows.size == 0:
                        break
                    sub = q if rows.size == len(ok) else q[torch.as_tensor(rows, device=device)]
                    if transform is not None:
                        sub = torch.as_tensor(transform(sub), device=device, dtype=q.dtype)
                    for scorer, lab in judges:
                        keep = scorer(sub) != lab[imgs[rows]]
                        if plain is None:  # the attacked classifier on the plain images
                            plain = keep.copy()
                        ok[rows[~keep]] = False
                        if not keep.all():
                            rows = rows[keep]
                            if rows.size == 0:
                                break
                            sub = sub[torch.as_tensor(keep, device=device)]
                return ok, plain

            ptr = np.zeros(n_img, dtype=np.int64) if start is None else np.array(start, dtype=np.int64)
            first_plain = np.full(n_img, N, dtype=np.int64)
            done = np.zeros(n_img, dtype=bool)
            success = np.zeros(n_img, dtype=bool)
            used = np.zeros(n_img, dtype=np.int64)
            out = torch.empty((n_img, 3, height, width), device=device)
            step = clf.batch_size
            while not done.all():
                active = np.flatnonzero(~done)
                # At most K trials per image and round, fewer when many images are
                # active: a round fills about one classifier batch, so few trials are
                # scored past an image's first success.
                k = min(K, max(1, step // len(active)))
                counts = np.minimum(k, N - ptr[active])
                pair_img = np.repeat(active, counts)
                pair_trial = ptr[pair_img] + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
                hit = np.empty(len(pair_img), dtype=bool)
                first = np.full(n_img, N, dtype=np.int64)
                for start in range(0, len(pair_img), step):
                    sl = slice(start, start + step)
                    q = render(pair_img[sl], pair_trial[sl], full=False)
                    hit[sl], plain = fooled(q, pair_img[sl])
                    np.minimum.at(first_plain, pair_img[sl][plain], pair_trial[sl][plain])
                    if full_search and hit[sl].any():
                        # Keep the first hit of each image (pairs are in trial order).
                        rows = np.flatnonzero(hit[sl])
                        rows = rows[first[pair_img[sl][rows]] == N]
                        imgs, pos = np.unique(pair_img[sl][rows], return_index=True)
                        rows = rows[pos]
                        first[imgs] = pair_trial[sl][rows]
                        out[torch.as_tensor(imgs, device=device)] = q[torch.as_tensor(rows, device=device)]
                # First successful trial of each active image (pairs are in trial order).
                np.minimum.at(first, pair_img[hit], pair_trial[hit])
                missed = first[active] >= N
                ptr[active[missed]] += counts[missed]
                cand = active[~missed]
                if full_search:
                    success[cand] = True
                    used[cand] = first[cand] + 1
                    done[cand] = True
                for start in range(0, 0 if full_search else len(cand), step):
                    c = cand[start : start + step]
                    q = render(c, first[c], full=True)
                    ok = fooled(q, c)[0]
                    c_ok = c[ok]
                    out[torch.as_tensor(c_ok, device=device)] = q[torch.as_tensor(ok, device=device)]
                    success[c_ok] = True
                    used[c_ok] = first[c_ok] + 1
                    done[c_ok] = True
                    ptr[c[~ok]] = first[c[~ok]] + 1
                exhausted = ~done & (ptr >= N)
                if exhausted.any():
                    fail = np.flatnonzero(exhausted)
                    for start in range(0, len(fail), step):
                        f = fail[start : start + step]
                        f_t = torch.as_tensor(f, device=device)
                        if on_failure == "strongest":
                            out[f_t] = render(f, np.full(len(f), N - 1), full=True)
                            used[f] = N
                        else:
                            out[f_t] = x[f_t] * 255.0
                            used[f] = 0
                    done[fail] = True
        return tensor_to_images(out), success, used, first_plain


register_estimator_check_config(
    "ColorFool",
    fast_params={
        "classifier": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
        "n_trials": 3,
        "segmenter": None,
        "device": "cpu",
    },
)
