"""Private FGSM (P-FGSM): targeted scene-privacy perturbation (Li et al., ICASSP 2019)."""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ..base import BaseProtector
from ..utils.estimator_checks import register_estimator_check_config
from ._classifier import tensor_to_images
from ._common import (
    CLASSIFIER_CONSTRAINT,
    ImageAttackMixin,
    image_groups,
    quantize,
)

__all__ = ["PrivateFGSM"]


def select_targets(proba, u, *, sigma, rule):
    """Target classes for P-FGSM.

    Parameters
    ----------
    proba : torch.Tensor of shape (B, C)
        Class probabilities of the clean images.
    u : torch.Tensor of shape (B,)
        Uniform draws in [0, 1), one per image.
    sigma : float
        Probability mass of the excluded top set.
    rule : {"paper", "least_likely"}
        ``"paper"``: uniformly among the classes outside the smallest top-k set whose
        probabilities sum to at least ``sigma`` (when that set holds every class, among
        all classes but the top-1). ``"least_likely"``: the least probable class.

    Returns
    -------
    target : torch.LongTensor of shape (B,)
        Never the top-1 class.
    """
    n_classes = proba.shape[1]
    if n_classes < 2:
        raise ValueError("P-FGSM needs a classifier with at least 2 classes.")
    sorted_p, order = proba.sort(dim=1, descending=True)
    if rule == "least_likely":
        return order[:, -1]
    k = ((sorted_p.cumsum(dim=1) < sigma).sum(dim=1) + 1).clamp(1, n_classes)
    k = torch.where(k >= n_classes, torch.ones_like(k), k)  # no class left: all but top-1
    count = n_classes - k
    rank = k + torch.minimum((u * count).long(), count - 1)
    return order.gather(1, rank[:, None])[:, 0]


class PrivateFGSM(ImageAttackMixin, BaseProtector):
    """P-FGSM: push each image towards a random unlikely class within an L-inf ball.

    Private FGSM (Li, Shamsabadi, Sanchez-Matilla, Mazzon, Cavallaro, ICASSP 2019) hides
    the scene class of a photo from a known (white-box) classifier with a small, almost
    invisible perturbation. Each image gets a target class drawn uniformly among the
    classes outside the smallest top-k set holding ``sigma`` of the probability; signed
    gradient steps of ``step_size`` minimise the cross-entropy to the target, clipped to
    the ``eps`` L-inf ball around the image and to [0, 1]; an image stops as soon as the
    target's probability exceeds ``sigma`` (or after ``max_iter`` steps).

    The output is quantised to 8 bits so that ``|out - in| <= floor(eps * 255)`` holds
    on the uint8 values (exactly, for uint8 input), and success is re-verified on the
    quantised images through the classifier's deployment preprocessing.

    Parameters
    ----------
    classifier : ImageClassifier, torch.nn.Module, fitted skorch net, object with ``torch_model()``, or unfitted estimator
        A differentiable classifier (see :class:`ImageClassifier`). An *unfitted*
        estimator with ``fit`` (e.g. ``ImageCNNClassifier``) is cloned and trained in
        :meth:`fit` on ``(X, sensitive_features)`` as a surrogate.
    eps : float, default=8/255
        Radius of the L-inf ball in [0, 1] pixel units.
    step_size : float, default=1/255
        Size of each signed-gradient step.
    max_iter : int, default=100
        Maximum number of steps per image.
    sigma : float, default=0.99
        Probability mass of the excluded top-k set, and the target probability that
        stops the iterations.
    target_selection : {"paper", "least_likely"}, default="paper"
        How the target is drawn: the paper's rule (above) or the least likely class.
    quantization : {"round", "floor"}, default="round"
        How the output is mapped to 8 bits before the L-inf clip.
    batch_size : int, default=32
        Images attacked together (one forward/backward pass per step).
    random_state : int, RandomState instance or None, default=None
        Seeds the target draws; with an int, ``transform`` is deterministic.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the classifier runs.

    Attributes
    ----------
    classifier_ : ImageClassifier
        The attacked classifier (the trained surrogate, when one was given unfitted).
    device_ : str
        The resolved device.
    success_ : ndarray of bool of shape (n_images,)
        Set by the last :meth:`transform`: whether each returned (quantised) image is
        classified as its target through the deployment preprocessing.
    target_ : ndarray of shape (n_images,)
        Set by the last :meth:`transform`: the target labels (class indices when the
        classifier has no ``classes_``).
    n_iter_ : ndarray of int of shape (n_images,)
        Set by the last :meth:`transform`: the gradient steps taken per image.

    See Also
    --------
    topk_out_rate : how often the true class left the top-k (the paper's figure).

    References
    ----------
    C. Y. Li, A. S. Shamsabadi, R. Sanchez-Matilla, R. Mazzon, A. Cavallaro. "Scene
    Privacy Protection". ICASSP 2019.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import PrivateFGSM
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(3, 4))
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    >>> pf = PrivateFGSM(net, random_state=0, device="cpu")
    >>> out = pf.fit_transform(images)
    >>> int(np.abs(out.astype(int) - images).max()) <= 8
    True
    """

    _parameter_constraints = {
        "classifier": CLASSIFIER_CONSTRAINT + [None],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither")],
        "step_size": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "sigma": [Interval(numbers.Real, 0, 1, closed="neither")],
        "target_selection": [StrOptions({"paper", "least_likely"})],
        "quantization": [StrOptions({"round", "floor"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        classifier=None,
        *,
        eps=8 / 255,
        step_size=1 / 255,
        max_iter=100,
        sigma=0.99,
        target_selection="paper",
        quantization="round",
        batch_size=32,
        random_state=None,
        device="auto",
    ):
        self.classifier = classifier
        self.eps = eps
        self.step_size = step_size
        self.max_iter = max_iter
        self.sigma = sigma
        self.target_selection = target_selection
        self.quantization = quantization
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    @_fit_context(prefer_skip_nested_validation=False)
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
        self : PrivateFGSM
        """
        self._fit_images(X, sensitive_features)
        if not self.classifier_.is_differentiable:
            raise ValueError(
                "PrivateFGSM is a white-box attack: it needs a torch model (a torch.nn.Module, "
                "a skorch net or an object with torch_model()), not a predict-only "
                f"{type(self.classifier_.classifier).__name__}. ColorFool works black-box."
            )
        return self

    def transform(self, X):
        """Perturb images towards their targets.

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].

        Returns
        -------
        X_protected : ndarray or list
            Same layout and dtype convention as ``X``. Sets ``success_``, ``target_`` and
            ``n_iter_``.
        """
        images, was_uint8 = self._transform_setup(X)
        n_images = len(images)
        u = check_random_state(self.random_state).random_sample(n_images)
        outputs = {}
        success = np.zeros(n_images, dtype=bool)
        targets = np.zeros(n_images, dtype=np.int64)
        n_iter = np.zeros(n_images, dtype=np.int64)
        for idx, x in image_groups(images, self.batch_size):
            q, tgt, it, ok = self._attack_chunk(x, u[idx])
            for j, i in enumerate(idx):
                outputs[i] = q[j]
            targets[idx], n_iter[idx], success[idx] = tgt, it, ok
        self.success_ = success
        self.target_ = self.classifier_.indices_to_labels(targets)
        self.n_iter_ = n_iter
        return self._assemble(outputs, n_images, images, was_uint8)

    def _attack_chunk(self, x, u):
        clf = self.classifier_
        device = clf.device_
        eps, step, sigma = float(self.eps), float(self.step_size), float(self.sigma)
        x0 = x.to(device, torch.float32)
        n_img = x0.shape[0]
        with torch.no_grad():
            proba = torch.softmax(clf.logits(x0).float(), dim=1)
        target = select_targets(
            proba, torch.as_tensor(u, device=device, dtype=torch.float32),
            sigma=sigma, rule=self.target_selection,
        )
        lower = (x0 - eps).clamp(min=0.0)
        upper = (x0 + eps).clamp(max=1.0)
        x_adv = x0.clone()
        active = torch.ones(n_img, dtype=torch.bool, device=device)
        n_iter = torch.zeros(n_img, dtype=torch.long, device=device)
        for _ in range(int(self.max_iter)):
            ia = torch.nonzero(active).flatten()
            if ia.numel() == 0:
                break
            xa = x_adv[ia].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = clf.logits(xa)
                loss = F.cross_entropy(logits, target[ia], reduction="sum")
                (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                p_target = torch.softmax(logits.float(), dim=1).gather(1, target[ia, None])[:, 0]
                reached = p_target > sigma
                move = ia[~reached]
                stepped = xa[~reached] - step * grad[~reached].sign()
                x_adv[move] = torch.minimum(torch.maximum(stepped, lower[move]), upper[move])
                n_iter[move] += 1
                active[ia[reached]] = False
        with torch.no_grad():
            # Quantise, then clip on the 256 levels so the bound holds on the saved image.
            ref = x0 * 255.0
            m = float(np.floor(eps * 255.0 + 1e-6))
            lo = torch.ceil(ref - m - 1e-4).clamp(min=0.0)
            hi = torch.floor(ref + m + 1e-4).clamp(max=255.0)
            nearest = torch.round(ref)
            lo, hi = torch.where(lo > hi, nearest, lo), torch.where(lo > hi, nearest, hi)
            q = torch.minimum(torch.maximum(quantize(x_adv, self.quantization), lo), hi)
            verified = torch.as_tensor(clf.predict_indices(q / 255.0), device=device) == target
        return (
            tensor_to_images(q),
            target.cpu().numpy(),
            n_iter.cpu().numpy(),
            verified.cpu().numpy(),
        )


register_estimator_check_config(
    "PrivateFGSM",
    fast_params={
        "classifier": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
        "max_iter": 2,
        "device": "cpu",
    },
)
