"""EdgeFool: an adversarial image-enhancement filter (Shamsabadi et al., ICASSP 2020)."""

import numbers

import numpy as np
import torch
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions
from torch.func import functional_call

from ..base import BaseProtector
from ..utils._torch import draw_seed, progress_bar
from ..utils.estimator_checks import register_estimator_check_config
from ._classifier import tensor_to_images
from ._common import (
    CLASSIFIER_CONSTRAINT,
    IMAGE_PROTECTOR_EXPECTED_FAILED_CHECKS,
    ImageAttackMixin,
    image_groups,
    quantize,
)
from ._edgefool_modules import EdgeFoolFilter, cw_margin, enhance_lightness
from ._l0 import l0_smooth

__all__ = ["EdgeFool"]

_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
_L0_BETA_MAX = 1e5
#: The filter is trained inside a ball this much (in dB) tighter than ``min_psnr``, so
#: that rounding the projected image to 8 bits almost never leaves the budget.
_PSNR_MARGIN_DB = 0.05
_BUDGET_BISECTION_STEPS = 30


def _max_mse(min_psnr):
    """Largest mean squared error (pixels in [0, 1]) of an image ``min_psnr`` dB or more
    from its reference: the one place the fidelity budget is turned into an error."""
    return 10.0 ** (-min_psnr / 10.0)


def _budget_radius(min_psnr, shape, margin_db=0.0):
    """L2 norm (pixels in [0, 1]) of a residual with PSNR ``min_psnr + margin_db`` dB on
    an image of ``shape`` (..., C, H, W)."""
    n_values = int(np.prod(shape[-3:]))
    return float(np.sqrt(n_values * _max_mse(min_psnr + margin_db)))


def _project_residual(x, enhanced, radius):
    """Project ``enhanced - x`` onto the L2 ball of ``radius`` per image, differentiably.

    Inside the ball the image is returned as it is (the gradient is the identity);
    outside it the residual is scaled down to the sphere. The result stays in [0, 1]:
    it is a convex combination of ``x`` and ``enhanced``.
    """
    residual = enhanced - x
    norm = torch.linalg.vector_norm(residual.flatten(1), dim=1)
    factor = (radius / norm.clamp_min(1e-12)).clamp(max=1.0)
    return x + residual * factor[:, None, None, None]


def _within_budget(levels, x, min_psnr):
    """Whether 8-bit ``levels (N, 3, H, W)`` (floats 0..255) are within ``min_psnr`` dB of
    ``x`` (floats in [0, 1]); per image, the test of the saved image."""
    mse = (levels.double() / 255.0 - x.double()).square().mean(dim=(1, 2, 3))
    return mse <= _max_mse(min_psnr)


def _enforce_psnr(levels, reference, min_psnr):
    """Guarantee ``PSNR(levels, reference) >= min_psnr`` on the 8-bit image.

    ``levels (H, W, 3)`` are 8-bit levels (floats 0..255) and ``reference`` the input on
    the same 0..255 scale (integers for uint8 inputs). An image already within the floor
    is returned unchanged; otherwise its residual is scaled by the largest factor found
    by bisection whose rounded image meets the floor. The factor 0 is the rounded input
    itself, which meets any floor for uint8 inputs.
    """
    ref = np.asarray(reference, dtype=np.float64)
    limit = ref.size * 255.0**2 * _max_mse(min_psnr)  # largest sum of squares

    def ok(candidate):
        return float(np.sum((candidate - ref) ** 2)) <= limit

    if ok(levels):
        return levels
    residual = levels - ref
    lo, hi = 0.0, 1.0
    best = np.clip(np.round(ref), 0.0, 255.0)
    for _ in range(_BUDGET_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        candidate = np.clip(np.round(ref + mid * residual), 0.0, 255.0)
        if ok(candidate):
            lo, best = mid, candidate
        else:
            hi = mid
    return best.astype(levels.dtype)


def _psnr_levels(levels, reference):
    """PSNR in dB (peak 255) of 8-bit ``levels`` to ``reference`` (both 0..255 scale)."""
    mse = np.mean((np.asarray(levels, np.float64) - reference) ** 2) / 255.0**2
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(1.0 / mse))


def _adam_step(params, grads, exp_avg, exp_avg_sq, steps, *, lr, max_norm):
    """One Adam step (PyTorch's update rule) for a stack of independent filters, in place.

    ``params``, ``grads`` and the moments are ``(n_filters, n_parameters)``: row ``i`` holds
    all parameters of filter ``i``. Each row is clipped to the gradient norm ``max_norm``
    (``clip_grad_norm_``'s rule, per filter) and uses its own step count ``steps[i]``
    (already incremented) in the bias corrections, so each filter follows exactly the
    trajectory it would follow alone. ``max_norm=None`` skips the clipping.
    """
    if max_norm is not None:
        norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
        grads = grads * (max_norm / (norms + 1e-6)).clamp(max=1.0)
    b1, b2 = _BETAS
    steps = steps[:, None]
    exp_avg.mul_(b1).add_(grads, alpha=1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grads, grads, value=1.0 - b2)
    denom = exp_avg_sq.sqrt() / torch.sqrt(1.0 - b2**steps) + _ADAM_EPS
    params.sub_((lr / (1.0 - b1**steps)) * exp_avg / denom)


class _FlatFilter:
    """Maps a filter module's parameters to one flat row per filter, and back."""

    def __init__(self, module):
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [tuple(p.shape[1:]) for _, p in module.named_parameters()]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]

    def flatten(self):
        """``(n_filters, n_parameters)`` copy of the module's parameters."""
        rows = [p.detach().reshape(p.shape[0], -1) for p in self.module.parameters()]
        return torch.cat(rows, dim=1)

    def load(self, flat):
        with torch.no_grad():
            for p, chunk in zip(self.module.parameters(), torch.split(flat, self.sizes, dim=1)):
                p.copy_(chunk.reshape(p.shape))

    def __call__(self, flat, x):
        """Run ``flat.shape[0]`` filters (rows of ``flat``) on ``x``."""
        chunks = torch.split(flat, self.sizes, dim=1)
        params = {n: c.reshape(c.shape[0], *s) for n, c, s in zip(self.names, chunks, self.shapes)}
        return functional_call(self.module, params, (x,))


class _FilterBank:
    """The images being optimised and, for each, its filter and optimiser state."""

    def __init__(self, template, device):
        self.template = template.to(device)  # (1, n_parameters), in the run's dtype
        self.device = device
        self.index = np.empty(0, dtype=np.int64)
        self.x = self.target = self.label = None
        self.params = self.exp_avg = self.exp_avg_sq = self.steps = None

    def __len__(self):
        return len(self.index)

    @property
    def shape(self):
        return None if len(self) == 0 else tuple(self.x.shape[-2:])

    def add(self, index, x, target, label):
        k = len(index)
        new = {
            "x": x.contiguous(),
            "target": target,
            "label": label,
            "params": self.template.expand(k, -1).clone(),
            "exp_avg": torch.zeros_like(self.template).expand(k, -1).clone(),
            "exp_avg_sq": torch.zeros_like(self.template).expand(k, -1).clone(),
            "steps": torch.zeros(k, dtype=torch.float64, device=self.device),
        }
        for name, value in new.items():
            if len(self) > 0:
                value = torch.cat([getattr(self, name), value])
            setattr(self, name, value)
        self.index = np.concatenate([self.index, index])

    def keep(self, mask):
        """Keep the rows where ``mask`` (numpy bool) is true."""
        if mask.all():
            return
        rows = torch.as_tensor(np.flatnonzero(mask), device=self.device)
        self.index = self.index[mask]
        for name in ("x", "target", "label", "params", "exp_avg", "exp_avg_sq", "steps"):
            setattr(self, name, getattr(self, name)[rows])


class EdgeFool(ImageAttackMixin, BaseProtector):
    """Adversarial image enhancement: detail-enhance images so a classifier errs.

    EdgeFool (Shamsabadi, Oh and Cavallaro, ICASSP 2020) trains an image-smoothing
    filter whose output, used as the base layer of a detail enhancement, both looks
    like a natural enhanced photo and changes a white-box classifier's decision:

    1. **Target**: the L0 gradient-minimisation smoothing of the image
       (:func:`~sklearn_privacy.image._l0.l0_smooth`, ``lambda = l0_lambda``,
       ``kappa = l0_kappa``, beta from ``2 lambda`` to 1e5, FFT solver).
    2. **Filter**: a fully convolutional network (24 channels, dilations 1, 2, 4, 8,
       16, 1, adaptive norms ``w0 x + w1 instance_norm(x)``, LeakyReLU 0.2, 1x1 head,
       identity initialisation) followed by a fast guided filter (radius 1, eps 1e-8):
       :class:`~sklearn_privacy.image._edgefool_modules.EdgeFoolFilter`.
    3. **Enhancement** on CIE L* only: ``L_out = L_s + 100 * sig((L - L_s) / 100,
       detail_gain)`` with ``L_s`` the lightness of the filter output and ``sig(x, g)
       = 1 / (1 + exp(-g x)) - 1/2`` (slope ``g / 4`` = 3.75 at 0 for ``g = 15``,
       saturating at +-50 L* units); a* and b* are the input's, so colours are kept.
    4. **Loss**: ``mse_weight * MSE(filter output, L0 target)`` plus the untargeted
       Carlini-Wagner margin ``max(Z_y - max_{j != y} Z_j, -confidence)`` of the
       enhanced image, ``y`` the classifier's prediction on the clean image. Adam
       (``lr``), gradient norm clipped to ``max_grad_norm`` (``None``: unclipped); an
       image stops when it is misclassified and its MSE is below ``mse_threshold``, or
       after ``max_iter`` steps.

    **Fidelity budget** (``min_psnr``, an extension beyond the paper). The paper's
    stopping test makes the filter follow the L0 target, a strong smoothing, so the
    enhancement is strong (about 23 dB PSNR on CIFAR-10 images after 150 steps). With
    ``min_psnr`` set, the enhanced image's residual (enhanced minus input) is projected,
    inside the training loop and differentiably, onto the L2 ball of that PSNR (scaled
    down to the sphere when it is outside), so the filter learns an enhancement that
    fools the classifier *within* the budget; an image stops as soon as its 8-bit image
    is misclassified and within the budget (the MSE test is dropped: the L0 term then
    only shapes the enhancement). The floor is guaranteed again on the returned 8-bit
    images (a residual that rounding pushed just outside is scaled back by bisection),
    so every image's PSNR (reported by :meth:`transform_with_diagnostics`) is at least
    ``min_psnr``.

    The margin is computed on the *quantised* enhanced image (8-bit levels, with a
    straight-through gradient) through the classifier's deployment preprocessing, so
    the stopping test is the test of the saved image; success is then re-checked on the
    returned images. Per-image figures (success, PSNR, steps) come from
    :meth:`transform_with_diagnostics`; :meth:`transform` leaves the fitted estimator
    unchanged.

    ``mode="per_image"`` (the paper, default): :meth:`transform` trains one fresh
    filter per image. ``batch_size`` images are optimised together as a bank of
    independent filters (grouped convolutions, per-image gradient clipping, per-image
    Adam steps); a finished image leaves the bank at once and the next image takes its
    place, so every image follows exactly the trajectory it would follow alone (up to
    floating-point summation order). ``batch_size=1`` *is* the sequential algorithm,
    one image at a time (use it as the speed baseline).

    ``mode="universal"`` (an extension beyond the paper): :meth:`fit` trains *one*
    filter on the training images (mini-batches of ``batch_size``, ``max_iter`` steps
    at most, stopping early after an epoch in which every image met the stopping
    test); :meth:`transform` applies it in a single forward pass per batch, without
    any optimisation. Cheap at deployment, but a filter that fools the classifier on
    unseen images is harder to get than one per image: check the success reported by
    :meth:`transform_with_diagnostics`.

    Parameters
    ----------
    classifier : ImageClassifier, torch.nn.Module, fitted classifier or unfitted estimator
        The white-box classifier to fool (see :class:`ImageClassifier`): a torch
        module, a fitted skorch net or an object with ``torch_model()`` such as
        :class:`~sklearn_privacy.adversaries.ImageCNNClassifier`. An *unfitted*
        estimator is cloned and trained in :meth:`fit` on ``(X, sensitive_features)``
        as a surrogate. Wrap a model in an :class:`ImageClassifier` to give its input
        size and normalisation.
    mode : {"per_image", "universal"}, default="per_image"
        One filter per image trained in :meth:`transform`, or one filter trained in
        :meth:`fit` and applied to every image.
    max_iter : int, default=5000
        Largest number of Adam steps per image (``"per_image"``) or in total
        (``"universal"``).
    lr : float, default=1e-3
        Adam learning rate.
    max_grad_norm : float or None, default=0.01
        Gradient-norm clipping threshold (per filter), as in the paper; ``None`` leaves
        the gradients unclipped (beyond the paper). Adam divides out the gradient's
        scale, so clipping acts through the *history*: clipped gradients all have the
        same norm, whatever the margin, while unclipped ones keep their relative sizes
        in Adam's moments. On 100 UTKFace gender images (64 x 64, ``min_psnr=30``, a
        small CNN) unclipped gradients fooled 80 % at ``max_iter=150`` and 85 % at 400
        (clipped: 78 % and 82 %), losing none of the images the clipped attack fooled.
        A pixel attack on L* alone within the same budget fooled 86 %: an enhancement
        that keeps the colours cannot do much better there.
    mse_weight : float, default=10.0
        Weight of the smoothing term in the loss.
    mse_threshold : float, default=5e-4
        An image stops once misclassified with ``MSE(filter output, L0 target)`` below
        this.
    confidence : float, default=0.0
        Carlini-Wagner margin: the loss stops pushing once another class wins by this.
    min_psnr : float or None, default=None
        Fidelity floor in dB: every returned 8-bit image has ``PSNR >= min_psnr`` to its
        input (peak 1, MSE over all pixels and channels). The enhancement is projected
        onto that L2 ball in the loop and an image stops once it is misclassified within
        it. ``None`` is the paper's unconstrained algorithm (stop when misclassified and
        ``MSE < mse_threshold``). 30 dB is a subtle, barely visible enhancement.
    l0_lambda : float, default=0.02
        L0 smoothing weight (images in [0, 1]).
    l0_kappa : float, default=2.0
        Growth factor of the L0 solver's beta.
    detail_gain : float, default=15.0
        Steepness ``g`` of the detail S-curve (detail gain ``g / 4``).
    n_channels : int, default=24
        Width of the filter network.
    batch_size : int, default=32
        Images optimised together (``"per_image"``), mini-batch size (``"universal"``
        fit) and images per forward pass (``"universal"`` transform).
    verbose : int, default=0
        ``>= 1`` shows a progress bar (training steps in fit, images in transform).
    random_state : int, RandomState instance or None, default=None
        Seeds the filters' initialisation (the random part of the head, identical for
        every per-image filter), the surrogate and the universal mini-batch order.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the filters and the classifier run.

    Attributes
    ----------
    classifier_ : ImageClassifier
        The attacked classifier (the trained surrogate, when one was given unfitted).
    filter_ : EdgeFoolFilter
        ``"universal"``: the trained filter. ``"per_image"``: the initial filter every
        per-image filter starts from.
    device_ : str
        The resolved device.
    n_iter_ : int
        ``"universal"`` only: the Adam steps taken by :meth:`fit`.
    converged_ : bool
        ``"universal"`` only: whether :meth:`fit` stopped after an epoch in which
        every training image met the stopping test (rather than at ``max_iter``).

    Notes
    -----
    Outputs keep the input's convention: uint8 in, uint8 out; float in (float16,
    float32 or float64), float32 out on the 256 levels ``k / 255`` (rounded). A list of images of different sizes is
    accepted (per-image mode, and universal transform) and returned as a list.

    The batched and sequential runs differ only by floating-point summation order
    (grouped versus plain convolutions, batched FFTs), which also differs between CPUs
    and thread counts. The optimisation amplifies such differences (Adam divides each
    gradient by its own running scale, so rounding noise on a near-zero gradient can
    become a full step, and the L0 target thresholds gradients), so in float32 two
    runs can drift apart by several 8-bit levels or flip a borderline stopping
    decision; neither is more correct than the other. The per-image optimisation runs
    in the dtype of ``filter_``: after ``filter_.double()`` it runs in float64, where
    the batched and sequential runs agree.

    References
    ----------
    A. S. Shamsabadi, C. Oh, A. Cavallaro. "EdgeFool: An Adversarial Image Enhancement
    Filter". ICASSP 2020. L. Xu, C. Lu, Y. Xu, J. Jia. "Image Smoothing via L0 Gradient
    Minimization". SIGGRAPH Asia 2011. H. Wu, S. Zheng, J. Zhang, K. Huang. "Fast
    End-to-End Trainable Guided Filter". CVPR 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import EdgeFool
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> ef = EdgeFool(net, max_iter=5, random_state=0, device="cpu")
    >>> out, diagnostics = ef.fit(images).transform_with_diagnostics(images)
    >>> out.shape, out.dtype, diagnostics.n_iter.shape
    ((2, 16, 16, 3), dtype('uint8'), (2,))
    """

    _parameter_constraints = {
        "classifier": CLASSIFIER_CONSTRAINT + [None],
        "mode": [StrOptions({"per_image", "universal"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "mse_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "mse_threshold": [Interval(numbers.Real, 0, None, closed="neither")],
        "confidence": [Interval(numbers.Real, 0, None, closed="left")],
        "min_psnr": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "l0_lambda": [Interval(numbers.Real, 0, None, closed="neither")],
        "l0_kappa": [Interval(numbers.Real, 1, None, closed="neither")],
        "detail_gain": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_channels": [Interval(numbers.Integral, 3, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        classifier=None,
        *,
        mode="per_image",
        max_iter=5000,
        lr=1e-3,
        max_grad_norm=0.01,
        mse_weight=10.0,
        mse_threshold=5e-4,
        confidence=0.0,
        min_psnr=None,
        l0_lambda=0.02,
        l0_kappa=2.0,
        detail_gain=15.0,
        n_channels=24,
        batch_size=32,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.classifier = classifier
        self.mode = mode
        self.max_iter = max_iter
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.mse_weight = mse_weight
        self.mse_threshold = mse_threshold
        self.confidence = confidence
        self.min_psnr = min_psnr
        self.l0_lambda = l0_lambda
        self.l0_kappa = l0_kappa
        self.detail_gain = detail_gain
        self.n_channels = n_channels
        self.batch_size = batch_size
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    # -- fit -----------------------------------------------------------------------------
    _y_usage = "ignored"
    _sensitive_usage = "optional"
    # Saved with torch.save, loaded on the CPU when CUDA is gone (TorchPickleMixin).
    _torch_attributes = ("filter_",)

    def fit(self, X, y=None, *, sensitive_features=None):
        """Set up the classifier (training a surrogate if needed); train the universal filter.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1]. ``"universal"`` trains on them (one size).
        y : ignored
            Present for Pipeline compatibility.
        sensitive_features : array-like of shape (n_images,), default=None
            The labels to hide; required only to train a surrogate classifier.

        Returns
        -------
        self : EdgeFool
        """
        return self._fit_template(X, y, sensitive_features)

    def _fit(self, images, y, sensitive_features, *, rng):
        self._resolve_classifier(images, sensitive_features)
        if not self.classifier_.is_differentiable:
            raise ValueError(
                f"EdgeFool is a white-box attack: it needs gradients, but "
                f"{type(self.classifier_.classifier).__name__} is used black-box (predict "
                "only). Pass a torch module, a skorch net or an object with torch_model()."
            )
        generator = torch.Generator().manual_seed(draw_seed(rng))
        self.filter_ = EdgeFoolFilter(1, channels=self.n_channels, generator=generator)
        self.filter_.to(self.device_)
        if self.mode == "universal":
            if isinstance(images, list):
                if len({img.shape for img in images}) > 1:
                    raise ValueError(
                        "mode='universal' trains on images of one size; got several sizes. "
                        "Resize them first (transform accepts any size)."
                    )
                images = np.stack(images)
            self._fit_universal(images, rng)
        return self

    def _l0_targets(self, x):
        return l0_smooth(x, lam=self.l0_lambda, kappa=self.l0_kappa, beta_max=_L0_BETA_MAX)

    def _losses(self, flat, x, target, label):
        """Forward pass of the filters (rows of ``flat``) on ``x``: per-image loss terms,
        whether each image is misclassified, and the quantised enhanced images."""
        smooth = _FlatFilter(self.filter_)(flat, x)
        enhanced = self._enhance(x, smooth)
        levels = quantize(enhanced, "round")
        # Straight-through: the classifier sees the saved 8-bit image, gradients flow
        # as if quantisation were the identity.
        seen = enhanced + (levels / 255.0 - enhanced).detach()
        logits = self.classifier_.logits(seen).to(x.device)
        mse = (smooth - target).square().mean(dim=(1, 2, 3))
        margin = cw_margin(logits, label, confidence=self.confidence)
        fooled = logits.argmax(dim=1) != label
        return mse, margin, fooled, levels

    def _enhance(self, x, smooth):
        """Detail enhancement of ``x`` with base layer ``smooth``, projected onto the
        fidelity budget when ``min_psnr`` is set."""
        enhanced = enhance_lightness(x, smooth, gain=self.detail_gain)
        if self.min_psnr is not None:
            radius = _budget_radius(self.min_psnr, x.shape, _PSNR_MARGIN_DB)
            enhanced = _project_residual(x, enhanced, radius)
        return enhanced

    def _stopped(self, mse, fooled, levels, x):
        """The per-image stopping test: misclassified and ``MSE < mse_threshold`` (the
        paper), or misclassified within the fidelity budget (``min_psnr``)."""
        if self.min_psnr is None:
            return fooled & (mse < self.mse_threshold)
        return fooled & _within_budget(levels, x, self.min_psnr).to(fooled.device)

    def _fit_universal(self, images, rng):
        device = self.device_
        n_images = images.shape[0]
        x_all = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        labels = torch.as_tensor(self.classifier_.predict_indices(images))
        targets = torch.cat([
            self._l0_targets(x_all[i : i + self.batch_size].to(device)).cpu()
            for i in range(0, n_images, self.batch_size)
        ])
        flat_filter = _FlatFilter(self.filter_)
        params = flat_filter.flatten()
        exp_avg, exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
        step, converged = 0, False
        bar = progress_bar(self.max_iter, desc="EdgeFool", verbose=self.verbose, unit="step")
        while step < self.max_iter and not converged:
            order = rng.permutation(n_images)
            converged = True  # until an image of this epoch misses the stopping test
            for start in range(0, n_images, self.batch_size):
                if step >= self.max_iter:
                    converged = False
                    break
                idx = torch.as_tensor(order[start : start + self.batch_size])
                x, target, label = (t[idx].to(device) for t in (x_all, targets, labels))
                leaf = params.requires_grad_()
                mse, margin, fooled, levels = self._losses(leaf, x, target, label)
                converged &= bool(self._stopped(mse, fooled, levels, x).all())
                loss = (self.mse_weight * mse + margin).mean()
                (grads,) = torch.autograd.grad(loss, leaf)
                step += 1
                with torch.no_grad():
                    params = leaf.detach()
                    _adam_step(params, grads, exp_avg, exp_avg_sq,
                               torch.full((1,), float(step), dtype=torch.float64, device=device),
                               lr=self.lr, max_norm=self.max_grad_norm)
                if self.verbose:
                    bar.set_postfix(loss=f"{loss.item():.4f}",
                                    fooled=f"{fooled.float().mean().item():.2f}", refresh=False)
                    bar.update(1)
        bar.close()
        flat_filter.load(params)
        self.n_iter_ = step
        self.converged_ = converged

    # -- transform -------------------------------------------------------------------------
    def transform_with_diagnostics(self, X):
        """Enhance images, and return per-image diagnostics of this call.

        :meth:`transform` returns the same images without the diagnostics; neither
        changes the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].

        Returns
        -------
        X_protected : ndarray or list
            Same layout and dtype convention as ``X`` (see :meth:`transform`).
        diagnostics : :class:`~sklearn.utils.Bunch`
            Arrays of shape ``(n_images,)`` in input order:

            - ``success`` (bool): whether each returned (quantised) image changes the
              classifier's clean prediction, checked through its deployment
              preprocessing.
            - ``psnr`` (float): PSNR in dB of each returned image to its input
              (``inf`` when unchanged); ``>= min_psnr`` when ``min_psnr`` is set.
            - ``n_iter`` (int): ``"per_image"``: the Adam steps each image took;
              ``"universal"``: zeros (transform does not optimise; the steps of
              :meth:`fit` are ``n_iter_``).
        """
        images, was_uint8 = self._transform_setup(X)
        n_images = len(images)
        labels = self.classifier_.predict_indices(images)
        if self.mode == "universal":
            outputs = self._apply_universal(images)
            n_iter = np.zeros(n_images, dtype=np.int64)
        else:
            outputs, n_iter = self._attack_per_image(images, labels)
        psnr_values = np.empty(n_images)
        for i in range(n_images):
            reference = np.asarray(images[i], dtype=np.float64) * 255.0
            if was_uint8:
                reference = np.round(reference)
            if self.min_psnr is not None:
                outputs[i] = _enforce_psnr(outputs[i], reference, self.min_psnr)
            psnr_values[i] = _psnr_levels(outputs[i], reference)
        result = self._assemble(outputs, n_images, images, was_uint8)
        # Success of the images as returned, through the deployment preprocessing.
        success = self.classifier_.predict_indices(result) != labels
        return result, Bunch(success=success, psnr=psnr_values, n_iter=n_iter)

    def _apply_universal(self, images):
        outputs = {}
        filt = self.filter_.to(self.device_)
        with torch.no_grad():
            dtype = next(filt.parameters()).dtype
            for idx, x in image_groups(images, self.batch_size):
                x = x.to(self.device_, dtype)
                enhanced = self._enhance(x, filt(x))
                levels = tensor_to_images(quantize(enhanced, "round"))
                outputs.update(zip(idx.tolist(), levels))
        return outputs

    def _attack_per_image(self, images, labels):
        device = self.device_
        n_images = len(images)
        outputs = {}
        n_iter = np.zeros(n_images, dtype=np.int64)
        template = _FlatFilter(self.filter_).flatten()
        dtype = template.dtype  # the filter's dtype (float32 unless it was converted)
        bank = _FilterBank(template, device)
        # Images arrive in chunks of one size; a chunk of another size waits until the
        # bank is empty. A finished image leaves the bank and the next one takes its place.
        chunks = image_groups(images, self.batch_size)
        pending = next(chunks, None)
        bar = progress_bar(n_images, desc="EdgeFool", verbose=self.verbose, unit="image")
        while True:
            room = self.batch_size - len(bank)
            while (
                pending is not None
                and room > 0
                and bank.shape in (None, tuple(pending[1].shape[-2:]))
            ):
                idx, x = pending
                take_idx, take_x = idx[:room], x[:room].to(device, dtype)
                pending = (idx[room:], x[room:]) if len(idx) > room else next(chunks, None)
                bank.add(take_idx, take_x, self._l0_targets(take_x.contiguous()),
                         torch.as_tensor(labels[take_idx], device=device))
                room = self.batch_size - len(bank)
            if len(bank) == 0:
                break
            leaf = bank.params.requires_grad_()
            mse, margin, fooled, levels = self._losses(leaf, bank.x, bank.target, bank.label)
            finished = self._stopped(mse, fooled, levels, bank.x) | (bank.steps >= self.max_iter)
            finished = finished.cpu().numpy()
            if finished.any():
                rows = torch.as_tensor(np.flatnonzero(finished), device=device)
                done_idx = bank.index[finished]
                outputs.update(zip(done_idx.tolist(), tensor_to_images(levels[rows])))
                n_iter[done_idx] = bank.steps[rows].cpu().numpy().astype(np.int64)
                bar.update(int(finished.sum()))
            active = ~finished
            if active.any():
                weights = torch.as_tensor(active, device=device, dtype=mse.dtype)
                loss = ((self.mse_weight * mse + margin) * weights).sum()
                (grads,) = torch.autograd.grad(loss, leaf)
                with torch.no_grad():
                    bank.params = leaf.detach()
                    bank.steps += 1.0
                    _adam_step(bank.params, grads, bank.exp_avg, bank.exp_avg_sq, bank.steps,
                               lr=self.lr, max_norm=self.max_grad_norm)
            bank.params = bank.params.detach()
            bank.keep(active)
        bar.close()
        return outputs, n_iter


register_estimator_check_config(
    "EdgeFool",
    fast_params={
        "classifier": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
        "max_iter": 2,
        "n_channels": 4,
        "device": "cpu",
    },
    expected_failed_checks={
        **IMAGE_PROTECTOR_EXPECTED_FAILED_CHECKS,
        "check_transformer_n_iter": (
            "image protector: the check fits on 2-D tabular data, which is rejected"
        ),
    },
)
