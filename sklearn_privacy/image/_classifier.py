"""The classifier an image protector attacks, together with its deployment preprocessing.

:class:`ImageClassifier` is the one place where images meet a model: it resizes them to
the model's input size, normalises them, and runs the model in bounded-memory batches.
Protectors search and verify through it, so success is measured with exactly the
preprocessing the classifier uses in deployment.
"""

import copy
import numbers
import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..utils._torch import TorchPickleMixin, check_batch_size, resolve_device
from ..utils.validation import check_images

__all__ = ["ImageClassifier", "topk_out_rate"]


def _check_size(input_size):
    if input_size is None:
        return None
    if isinstance(input_size, numbers.Integral):
        input_size = (input_size, input_size)
    try:
        size = tuple(int(v) for v in input_size)
    except TypeError:
        size = ()
    if len(size) != 2 or min(size) < 1 or any(
        not isinstance(v, numbers.Integral) for v in input_size
    ):
        raise ValueError(
            f"input_size must be None, a positive int or a (height, width) pair; got {input_size!r}."
        )
    return size


def _check_channel_stat(value, name):
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be None or 3 finite numbers (one per RGB channel); got {value!r}.")
    if name == "std" and np.any(arr <= 0):
        raise ValueError(f"std must be positive; got {value!r}.")
    return arr


def _is_skorch_net(obj):
    return isinstance(getattr(obj, "module_", None), torch.nn.Module) and hasattr(obj, "initialize")


def is_fitted_classifier(obj):
    """Whether ``obj`` can classify now (``False`` means a protector must train it).

    torch modules count as ready; scikit-learn-style estimators (skorch nets included) are
    asked through :func:`sklearn.utils.validation.check_is_fitted`.
    """
    if isinstance(obj, ImageClassifier):
        return True
    if isinstance(obj, torch.nn.Module):
        return True
    if _is_skorch_net(obj):
        return True
    if hasattr(obj, "fit") and hasattr(obj, "get_params"):
        try:
            check_is_fitted(obj)
        except NotFittedError:
            return False
        except TypeError:  # not an estimator after all
            return True
    return True


def _module_device(module):
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


def _on_device(module, device):
    """``module`` itself when it is on ``device``, else a copy moved there."""
    current = _module_device(module)
    if current is not None and current != torch.device(device):
        module = copy.deepcopy(module).to(device)
    return module


@contextmanager
def _eval_mode(module):
    """Run ``module`` in eval mode and give it back in the mode it had."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def images_to_tensor(images):
    """(n, H, W, 3) float32 numpy images in [0, 1] -> (n, 3, H, W) torch tensor."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)


def tensor_to_images(t):
    """(n, 3, H, W) torch tensor -> (n, H, W, 3) float32 numpy array."""
    return t.detach().permute(0, 2, 3, 1).to("cpu", torch.float32).numpy()


class ImageClassifier(TorchPickleMixin):
    """A classifier of images bundled with its deployment preprocessing.

    Protectors attack the classifier through this wrapper: images (floats in [0, 1]) are
    resized to ``input_size``, passed through ``preprocess`` and normalised with
    ``mean``/``std`` exactly as in deployment, so the success measured while protecting
    is the success the deployed classifier shows on the saved images.

    This is a plain wrapper around a *ready* model, not an estimator: protectors build it
    in ``fit`` (training a surrogate first when they are given an unfitted one).

    **Bringing your own model.** Any torch image classifier works, e.g. a torchvision or
    timm network with pretrained weights: give the module and its preprocessing, either
    as ``input_size`` + ``mean`` + ``std`` (ImageNet models: ``input_size=224`` and the
    ImageNet statistics), or as a ``preprocess`` callable (a torch module or function
    on channels-first float tensors, such as a model's own normalisation layer). The
    wrapper feeds the model channels-first float tensors ``(N, 3, H, W)`` of the
    model's parameter dtype on ``device``, always in eval mode (batch norm and dropout
    frozen; the caller's module gets its mode back), and reads logits from a tensor, a
    ``{"out": ...}`` dict or an object with a ``logits`` attribute. Every step is
    differentiable, so gradient attacks (P-FGSM, EdgeFool) differentiate through the
    whole preprocessing. Only images of 3 channels (RGB) are supported.

    Parameters
    ----------
    classifier : object
        One of

        - a torch :class:`~torch.nn.Module` mapping *preprocessed* images
          ``(N, 3, input_size)`` to logits ``(N, n_classes)`` (white-box);
        - a fitted skorch net whose ``module_`` does the same (white-box; its
          ``classes_`` name the outputs when present);
        - a fitted object with a ``torch_model()`` method (such as
          :class:`sklearn_privacy.adversaries.ImageCNNClassifier`) returning a module that
          maps float images ``(N, 3, H, W)`` in [0, 1] of any size to logits, resizing
          and normalisation included (white-box; ``mean`` and ``std`` must be ``None``);
        - any fitted scikit-learn classifier with ``predict`` taking images
          ``(n, H, W, 3)`` as float32 in [0, 1] (black-box: hard labels only, enough for
          :class:`ColorFool`; ``mean``, ``std`` and ``preprocess`` must be ``None``).
    input_size : int or (height, width), default=None
        Size the images are resized to before the model; ``None`` feeds them at their
        own size. Resizing is bilinear and differentiable.
    preprocess : callable or torch.nn.Module, default=None
        Applied after the resize and before ``mean``/``std``: maps a float tensor
        ``(N, 3, H, W)`` in [0, 1] to the model's input, differentiably (torch
        operations only, no PIL or numpy). A module is copied to ``device`` when it
        sits elsewhere and run in eval mode. Only for the white-box kinds (a torch
        module or skorch net).
    mean, std : sequence of 3 floats, default=None
        Per-channel normalisation ``(x - mean) / std`` applied after resizing
        (e.g. ImageNet's ``(0.485, 0.456, 0.406)``, ``(0.229, 0.224, 0.225)``).
        ``None`` means no normalisation.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the model runs. A module on another device is *copied* there (the
        caller's module is never moved or switched out of its training mode).
        ``"auto"`` picks CUDA when available; an explicit ``"cuda"`` without CUDA is a
        ``ValueError``. Pickled on a GPU, the wrapper loads on a CPU-only machine on the
        CPU, with a warning.
    batch_size : int, default=64
        Images per forward pass in :meth:`predict` and :meth:`decision_function`.
    antialias : bool, default=True
        Anti-alias when downsampling (torch's ``interpolate(..., antialias=True)``).

    Attributes
    ----------
    kind : {"module", "skorch", "torch_model", "black_box", "unfitted"}
        How the classifier is driven. An ``"unfitted"`` estimator cannot predict, but
        can be given to a protector, which trains a clone of it and keeps this
        preprocessing.
    classes_ : ndarray or None
        Labels of the outputs when the classifier names them; ``None`` means outputs
        are class indices.
    input_size_ : tuple of int or None
        The validated ``input_size``.
    preprocess_fn : callable or None
        The ``preprocess`` argument (the name ``preprocess`` is the method applying
        the whole preprocessing).
    device_ : str
        The resolved device.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import ImageClassifier
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(3, 2))
    >>> clf = ImageClassifier(net, input_size=8, device="cpu")
    >>> clf.predict(np.zeros((4, 20, 20, 3), dtype=np.uint8)).shape
    (4,)
    """

    # Saved with torch.save and loaded on the CPU when CUDA is gone (TorchPickleMixin).
    _torch_attributes = ("classifier", "preprocess_fn")

    def __init__(
        self,
        classifier,
        *,
        input_size=None,
        preprocess=None,
        mean=None,
        std=None,
        device="auto",
        batch_size=64,
        antialias=True,
    ):
        self.classifier = classifier
        self.input_size = input_size
        self.preprocess_fn = preprocess
        self.mean = mean
        self.std = std
        self.device = device
        self.batch_size = batch_size
        self.antialias = antialias
        self._setup()

    # -- construction -----------------------------------------------------------------
    def _settings(self):
        return {
            "input_size": self.input_size,
            "preprocess": self.preprocess_fn,
            "mean": self.mean,
            "std": self.std,
            "batch_size": self.batch_size,
            "antialias": self.antialias,
        }

    def _setup(self, device=None):
        clf = self.classifier
        if isinstance(clf, ImageClassifier):
            raise TypeError("classifier is already an ImageClassifier; do not wrap it twice.")
        self.input_size_ = _check_size(self.input_size)
        self._mean = _check_channel_stat(self.mean, "mean")
        self._std = _check_channel_stat(self.std, "std")
        check_batch_size(self.batch_size)
        if not isinstance(self.antialias, (bool, np.bool_)):
            raise TypeError(f"antialias must be True or False, got {self.antialias!r}.")
        self.device_ = resolve_device(self.device if device is None else device)
        self.classes_ = None
        module = None
        if isinstance(clf, torch.nn.Module):
            self.kind = "module"
            module = clf
        elif _is_skorch_net(clf):
            self.kind = "skorch"
            module = clf.module_
            self.classes_ = getattr(clf, "classes_", None)
        elif callable(getattr(clf, "torch_model", None)) or hasattr(clf, "predict"):
            if not is_fitted_classifier(clf):
                self.kind = "unfitted"
            elif callable(getattr(clf, "torch_model", None)):
                self.kind = "torch_model"
            else:
                self.kind = "black_box"
            if self._mean is not None or self._std is not None or self.preprocess_fn is not None:
                raise ValueError(
                    f"mean/std/preprocess must be None for a {type(clf).__name__}: it "
                    "preprocesses its input itself (wrap its torch module instead to "
                    "add preprocessing)."
                )
            self.classes_ = getattr(clf, "classes_", None) if self.kind != "unfitted" else None
            if self.kind == "torch_model":
                module = clf.torch_model()
                if not isinstance(module, torch.nn.Module):
                    raise TypeError(
                        f"{type(clf).__name__}.torch_model() must return a torch.nn.Module, "
                        f"got {type(module).__name__}."
                    )
        else:
            raise TypeError(
                "classifier must be a torch.nn.Module, a fitted skorch net, an object with "
                "torch_model(), or a fitted scikit-learn classifier with predict; got "
                f"{type(clf).__name__}."
            )
        if self.classes_ is not None:
            self.classes_ = np.asarray(self.classes_)
        self._module = None if module is None else _on_device(module, self.device_)
        pre = self.preprocess_fn
        if pre is not None and not callable(pre):
            raise TypeError(
                "preprocess must be a callable (e.g. a torch.nn.Module) mapping float "
                f"tensors (N, 3, H, W) to the model's input; got {type(pre).__name__}."
            )
        if isinstance(pre, torch.nn.Module):
            pre = _on_device(pre, self.device_)
        self._preprocess = pre
        self._input_dtype = torch.float32
        if module is not None:
            for tensor in module.parameters():
                if tensor.is_floating_point():
                    self._input_dtype = tensor.dtype
                break

    @property
    def native_size(self):
        """The resolution the model classifies at, when known (else ``None``).

        ``input_size_``, or for a ``torch_model()`` object its own integer
        ``input_size`` parameter (its module resizes to it internally). Attacks may
        search at this resolution; success is always verified at full resolution.
        """
        if self.input_size_ is not None:
            return self.input_size_
        size = getattr(self.classifier, "input_size", None) if self.kind == "torch_model" else None
        if isinstance(size, numbers.Integral) and size > 0:
            return (int(size), int(size))
        return None

    @property
    def is_differentiable(self):
        """Whether gradients flow from the logits back to the pixels (white-box)."""
        return self._module is not None

    # -- pickling: skorch's scheme (TorchPickleMixin) ----------------------------------
    def __getstate__(self):
        state = super().__getstate__()  # a torch module is saved with torch.save
        state["_module"] = None  # rebuilt from ``classifier`` on load
        state["_preprocess"] = None
        return state

    def __setstate__(self, state):
        saved_on = state.get("device_")
        # Loads the module on the CPU, with a warning, when it was saved on CUDA and
        # CUDA is not available here.
        super().__setstate__(state)
        requested = saved_on if self.device in (None, "auto") else self.device
        device = None
        if (
            requested is not None and torch.device(requested).type == "cuda"
            and not torch.cuda.is_available()
        ):
            if not str(saved_on).startswith("cuda"):  # not warned about yet
                warnings.warn(
                    f"ImageClassifier was saved with device={self.device!r}; CUDA is not "
                    "available, loading on CPU.",
                    UserWarning,
                )
            device = "cpu"
        self._setup(device=device)

    def __repr__(self):
        args = [f"{type(self.classifier).__name__}(...)"]
        for name, value in self._settings().items():
            default = {"batch_size": 64, "antialias": True}.get(name)
            if value is not default and value != default:
                args.append(f"{name}={value!r}")
        return f"ImageClassifier({', '.join(args)})"

    # -- preprocessing and scores -----------------------------------------------------
    def resize(self, t):
        """Resize ``(N, 3, H, W)`` images to ``input_size`` (differentiable).

        Returns ``t`` itself when no resizing is needed.
        """
        if self.input_size_ is None or tuple(t.shape[-2:]) == self.input_size_:
            return t
        downsampling = t.shape[-2] > self.input_size_[0] or t.shape[-1] > self.input_size_[1]
        return F.interpolate(
            t,
            size=self.input_size_,
            mode="bilinear",
            align_corners=False,
            antialias=bool(self.antialias and downsampling),
        )

    def preprocess(self, t):
        """Deployment preprocessing: resize, ``preprocess``, then normalise (white-box kinds).

        Parameters
        ----------
        t : torch.Tensor of shape (N, 3, H, W)
            Float images in [0, 1], on :attr:`device_`.

        Returns
        -------
        x : torch.Tensor
            The model's input; gradients flow back to ``t``.
        """
        t = self.resize(t)
        if self._preprocess is not None:
            if isinstance(self._preprocess, torch.nn.Module):
                with _eval_mode(self._preprocess):
                    t = self._preprocess(t)
            else:
                t = self._preprocess(t)
            if not isinstance(t, torch.Tensor):
                raise TypeError(
                    f"preprocess must return a torch.Tensor, got {type(t).__name__}."
                )
        if self._mean is not None:
            t = t - torch.as_tensor(self._mean, dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
        if self._std is not None:
            t = t / torch.as_tensor(self._std, dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
        return t

    def logits(self, t):
        """Logits of ``(N, 3, H, W)`` float images in [0, 1], differentiably.

        Parameters
        ----------
        t : torch.Tensor of shape (N, 3, H, W)
            On any device; it is moved to :attr:`device_`.

        Returns
        -------
        logits : torch.Tensor of shape (N, n_classes)
            On :attr:`device_`; gradients flow back to ``t``.
        """
        self._check_ready()
        if not self.is_differentiable:
            raise AttributeError(
                f"{type(self.classifier).__name__} is used black-box (predict only); "
                "this method needs a torch model (white-box)."
            )
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(
                "logits expects a float tensor of shape (N, 3, H, W) (channels first); got "
                f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}."
            )
        t = t.to(self.device_, torch.float32)
        with _eval_mode(self._module):
            out = self._module(self.preprocess(t).to(self._input_dtype))
        if isinstance(out, dict) and "out" in out:  # torchvision-style outputs
            out = out["out"]
        elif not isinstance(out, torch.Tensor) and isinstance(
            getattr(out, "logits", None), torch.Tensor
        ):  # Hugging Face-style outputs
            out = out.logits
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                "the model must return a logits tensor, a {'out': tensor} dict or an object "
                f"with a logits tensor; got {type(out).__name__}."
            )
        out = out.float()
        if out.ndim != 2:
            raise ValueError(f"the model must return logits of shape (N, n_classes); got {tuple(out.shape)}.")
        return out

    def _check_ready(self):
        if self.kind == "unfitted":
            raise NotFittedError(
                f"{type(self.classifier).__name__} is not fitted: fit it first, or give it "
                "(or this ImageClassifier) unfitted to a protector, which trains a clone on "
                "(X, sensitive_features) in fit."
            )

    def _iter_batches(self, images):
        """Yield ``(start, tensor)`` batches of ``(N, 3, H, W)`` float images."""
        if isinstance(images, torch.Tensor):
            for start in range(0, images.shape[0], self.batch_size):
                yield start, images[start : start + self.batch_size]
            return
        arr, _ = check_images(images, allow_different_sizes=isinstance(images, (list, tuple)))
        if isinstance(arr, list):
            for start, img in enumerate(arr):
                yield start, images_to_tensor(img[np.newaxis])
            return
        for start in range(0, arr.shape[0], self.batch_size):
            yield start, images_to_tensor(arr[start : start + self.batch_size])

    def _n_images(self, images):
        return images.shape[0] if isinstance(images, torch.Tensor) else len(images)

    def _black_box_predict(self, batch):
        batch = self.resize(batch.to(torch.float32))
        return np.asarray(self.classifier.predict(tensor_to_images(batch)))

    def predict_indices(self, images):
        """Top-1 class *indices* (positions in :attr:`classes_`), in batches.

        Parameters
        ----------
        images : array-like of shape (n, H, W, 3), list of (H, W, 3) arrays, or torch.Tensor of shape (n, 3, H, W)
            uint8 or float images in [0, 1] (tensors: floats in [0, 1]).

        Returns
        -------
        indices : ndarray of shape (n,)
        """
        self._check_ready()
        out = np.empty(self._n_images(images), dtype=np.int64)
        for start, batch in self._iter_batches(images):
            if self.is_differentiable:
                with torch.no_grad():
                    idx = self.logits(batch).argmax(dim=1).cpu().numpy()
            else:
                idx = self.labels_to_indices(self._black_box_predict(batch))
            out[start : start + len(idx)] = idx
        return out

    def predict(self, images):
        """Predict class labels of images through the deployment preprocessing.

        Parameters
        ----------
        images : array-like of shape (n, H, W, 3), list of (H, W, 3) arrays, or torch.Tensor of shape (n, 3, H, W)
            uint8 or float images in [0, 1].

        Returns
        -------
        labels : ndarray of shape (n,)
            Labels from :attr:`classes_`, or class indices when it is ``None``.
        """
        idx = self.predict_indices(images)
        return idx if self.classes_ is None else self.classes_[idx]

    def decision_function(self, images):
        """Class scores: logits (white-box) or log-probabilities (black-box with ``predict_proba``).

        Parameters
        ----------
        images : array-like of shape (n, H, W, 3), list of (H, W, 3) arrays, or torch.Tensor of shape (n, 3, H, W)

        Returns
        -------
        scores : ndarray of shape (n, n_classes)
        """
        self._check_ready()
        if not self.is_differentiable and not hasattr(self.classifier, "predict_proba"):
            raise AttributeError(
                f"{type(self.classifier).__name__} gives hard labels only (no predict_proba)."
            )
        chunks = []
        for _, batch in self._iter_batches(images):
            if self.is_differentiable:
                with torch.no_grad():
                    chunks.append(self.logits(batch).cpu().numpy())
            else:
                batch = self.resize(batch.to(torch.float32))
                proba = np.asarray(self.classifier.predict_proba(tensor_to_images(batch)))
                chunks.append(np.log(np.clip(proba, 1e-12, None)))
        return np.concatenate(chunks, axis=0)

    def labels_to_indices(self, labels):
        """Map class labels to output indices (the inverse of ``classes_[index]``).

        Raises
        ------
        ValueError
            For labels the classifier does not know.
        """
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {labels.shape}.")
        if self.classes_ is None:
            if labels.dtype.kind not in "iu" and not (
                labels.dtype.kind == "f" and np.all(labels == np.round(labels))
            ):
                raise ValueError(
                    "this classifier has no classes_: labels must be integer class indices."
                )
            idx = labels.astype(np.int64)
            if idx.size and idx.min() < 0:
                raise ValueError("class indices must be non-negative.")
            return idx
        order = np.argsort(self.classes_, kind="stable")
        sorted_classes = self.classes_[order]
        pos = np.clip(np.searchsorted(sorted_classes, labels), 0, len(order) - 1)
        idx = order[pos]
        unknown = self.classes_[idx] != labels
        if np.any(unknown):
            raise ValueError(
                f"labels {np.unique(labels[unknown])[:5].tolist()} are not among the "
                f"classifier's classes {self.classes_.tolist()[:10]}."
            )
        return idx.astype(np.int64)

    def indices_to_labels(self, indices):
        """Map output indices to class labels."""
        indices = np.asarray(indices)
        return indices if self.classes_ is None else self.classes_[indices]


def topk_out_rate(classifier, images, labels, k=5):
    """Fraction of images whose true class is *not* among the classifier's top ``k``.

    The figure P-FGSM reports ("the true class leaves the top-5"); with ``k=1`` it is the
    misclassification rate.

    Parameters
    ----------
    classifier : ImageClassifier or object accepted by ImageClassifier
        Needs class scores: a white-box model or a classifier with ``predict_proba``.
    images : array-like of shape (n, H, W, 3) or list of (H, W, 3) arrays
        uint8 or float images in [0, 1], e.g. protected outputs.
    labels : array-like of shape (n,)
        True class labels (or indices when the classifier has no ``classes_``).
    k : int, default=5
        Size of the top set.

    Returns
    -------
    rate : float
        In [0, 1].

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import topk_out_rate
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> images = np.zeros((2, 4, 4, 3)); images[0, ..., 0] = 1; images[1, ..., 2] = 1
    >>> topk_out_rate(net, images, [0, 1], k=1)
    0.5
    """
    clf = classifier if isinstance(classifier, ImageClassifier) else ImageClassifier(classifier)
    if not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    scores = clf.decision_function(images)
    true_idx = clf.labels_to_indices(np.asarray(labels).reshape(-1))
    if true_idx.shape[0] != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} images but {true_idx.shape[0]} labels.")
    if true_idx.size and true_idx.max() >= scores.shape[1]:
        raise ValueError("a label index exceeds the number of classifier outputs.")
    true_score = np.take_along_axis(scores, true_idx[:, None], axis=1)
    # Rank = number of classes scoring strictly higher; ties count in the true class' favour.
    rank = (scores > true_score).sum(axis=1)
    return float(np.mean(rank >= k))
