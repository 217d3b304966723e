"""A skorch-trained image CNN that owns its preprocessing (the attacked / attacker model)."""

import json
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..utils._torch import get_map_location, resolve_device
from ..utils.estimator_checks import register_estimator_check_config
from ..utils.validation import check_images
from skorch.callbacks import LRScheduler
from skorch.history import History

from ._modules import IMAGE_ARCHITECTURES, ImageCNN, resize_images
from ._torch_base import BaseTorchClassifier

__all__ = ["ImageCNNClassifier"]


class ImageCNNClassifier(BaseTorchClassifier):
    """Image CNN trained with skorch, with its resize and normalisation built in.

    Images are resized to ``input_size`` (bilinear, antialiased) and standardised per
    channel with the statistics of the resized training images; both steps live in the
    fitted torch module, so :meth:`torch_model` maps raw float images of any size to
    logits and image attacks (P-FGSM, EdgeFool) can differentiate through the exact
    deployed preprocessing. Training minimises cross-entropy (optionally label
    smoothed) with AdamW or SGD with Nesterov momentum, at a constant, one-cycle or
    cosine learning rate; early stopping monitors the loss on a split of the
    *training* data and restores the best weights.

    The defaults train a small network quickly. For an accurate classifier (the
    attacked model and the attackers of a benchmark), use a residual network with
    augmentation and a schedule, e.g. ``architecture="resnet9", n_filters=64,
    augment=True, cutout=8, optimizer="sgd", lr=0.1, lr_schedule="onecycle",
    label_smoothing=0.1, weight_decay=5e-4, dropout=0.0, early_stopping=False``,
    ``max_epochs`` of 20 to 40 (see the user guide, "Training an accurate image
    classifier").

    Parameters
    ----------
    architecture : {"small", "wide", "resnet", "resnet9", "resnet20"}, default="small"
        ``"small"``: three VGG-style stages (2 x conv3-BN-ReLU + max-pool, widths
        ``n_filters`` x 1, 2, 4). ``"wide"``: two stages of one 5x5 conv (widths
        ``n_filters`` x 2, 4). ``"resnet"``: a ResNet-8-like net (stem + three basic
        blocks). ``"resnet9"``: the fast ResNet-9 of the DAWNBench CIFAR-10 entries
        (stem + three conv/max-pool stages, two of them with a residual pair of convs;
        widths ``n_filters`` x 1, 2, 4, 8; use ``n_filters=64`` for the usual net).
        ``"resnet20"``: He et al.'s CIFAR ResNet-20 (three stages of three basic
        blocks, widths ``n_filters`` x 1, 2, 4; ``n_filters=16`` is the paper's). All
        end in global average pooling, dropout and a linear layer. The alternatives
        give "unseen architectures" for transfer tests.
    n_filters : int, default=32
        Base width.
    input_size : int, default=32
        Side of the square images the network sees (at least 8).
    dropout : float in [0, 1), default=0.3
        Dropout before the linear layer.
    max_epochs : int, default=30
        Largest number of passes over the training data.
    lr : float, default=1e-3
        Learning rate (the peak rate with ``lr_schedule="onecycle"``, the initial
        one with ``"cosine"``).
    batch_size : int, default=128
        Mini-batch size, for training and for (bounded-memory) prediction.
    weight_decay : float, default=1e-4
        AdamW's decoupled weight decay, or SGD's L2 penalty.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when its loss has
        not improved for ``patience`` epochs and restore the best epoch's weights.
    patience : int, default=5
        Epochs without improvement before stopping.
    validation_fraction : float in (0, 1), default=0.15
        Share of the training images held out for early stopping. With ``groups``,
        whole groups are held out (about this share of the images), never the last
        training images of a class (see :meth:`fit`).
    augment : bool, default=False
        While training, flip each image horizontally at random and translate it by up
        to ``input_size // 8`` pixels (reflect padding + random crop). Never applied
        at prediction time.
    cutout : int, default=0
        With ``augment``, also replace a random ``cutout x cutout`` square of each
        training image (clipped at the borders) by its mean colour; 0 disables it.
    optimizer : {"adamw", "sgd"}, default="adamw"
        ``"sgd"``: SGD with Nesterov momentum ``momentum``.
    momentum : float in [0, 1), default=0.9
        SGD momentum (ignored by AdamW).
    lr_schedule : {"constant", "onecycle", "cosine"}, default="constant"
        Learning rate over the training steps: constant; one cycle (warm up over the
        first 30 % of the ``max_epochs`` epochs to ``lr``, then anneal to almost 0);
        or cosine annealing from ``lr`` to 0 over ``max_epochs`` epochs. The
        schedules are stepped after every batch and planned for ``max_epochs``, so
        early stopping cuts them short.
    label_smoothing : float in [0, 1), default=0.0
        Share of each target spread uniformly over the classes in the loss.
    verbose : int, default=0
        ``>= 1``: a progress bar over the epochs (on stderr).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batch order, dropout, augmentation and the split,
        through local generators: fitting leaves the global numpy and torch random
        state unchanged.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available (else the CPU); an explicit ``"cuda"`` on a
        machine without CUDA is a ``ValueError`` at :meth:`fit`. A model pickled on a
        GPU loads on a CPU-only machine on the CPU, with a warning.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        ``height * width * 3`` of the training images. Images of other sizes are
        accepted at prediction time since every image is resized to ``input_size``.
    image_shape_in_ : tuple of int
        ``(height, width)`` of the training images.
    module_ : ImageCNN
        The fitted torch module (see :meth:`torch_model`).
    history_ : skorch.history.History
        Per-epoch training (and validation) losses.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept (the last one without early stopping).
    validation_groups_ : ndarray of shape (n_held_out,) or (n_held_out, n_columns), or None
        The distinct groups (rows of 2-D ``groups``) held out for early stopping, when
        ``groups`` were given.
    device_ : str
        Device used.

    Notes
    -----
    Input is ``(n, H, W, 3)``, uint8 in [0, 255] or float in [0, 1]; 2-D tabular
    input raises a ``ValueError``. scikit-learn's estimator checks feed 2-D data only,
    so the ``two_d_array`` tag is off and those checks skip this class; the
    data-free API checks are run in the test suite instead. ``groups`` routing works
    as in :class:`TimeSeriesCNNClassifier` (requested by default).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sklearn_privacy.adversaries import ImageCNNClassifier
    >>> y = np.repeat([0, 1], 16)
    >>> X = np.zeros((32, 16, 16, 3), dtype=np.uint8)
    >>> X[y == 0, ..., 0] = 200
    >>> X[y == 1, ..., 2] = 200
    >>> clf = ImageCNNClassifier(n_filters=4, input_size=16, max_epochs=5, lr=1e-2,
    ...                          early_stopping=False, random_state=0).fit(X, y)
    >>> clf.torch_model()(torch.rand(2, 3, 40, 40)).shape
    torch.Size([2, 2])
    """

    _parameter_constraints: dict = {
        **BaseTorchClassifier._parameter_constraints,
        "input_size": [Interval(Integral, 8, None, closed="left")],
        "architecture": [StrOptions(set(IMAGE_ARCHITECTURES))],
        "augment": ["boolean"],
        "cutout": [Interval(Integral, 0, None, closed="left")],
        "optimizer": [StrOptions({"adamw", "sgd"})],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "lr_schedule": [StrOptions({"constant", "onecycle", "cosine"})],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        *,
        architecture="small",
        n_filters=32,
        input_size=32,
        dropout=0.3,
        max_epochs=30,
        lr=1e-3,
        batch_size=128,
        weight_decay=1e-4,
        class_weight=None,
        early_stopping=True,
        patience=5,
        validation_fraction=0.15,
        augment=False,
        cutout=0,
        optimizer="adamw",
        momentum=0.9,
        lr_schedule="constant",
        label_smoothing=0.0,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.architecture = architecture
        self.n_filters = n_filters
        self.input_size = input_size
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.cutout = cutout
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.label_smoothing = label_smoothing
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, groups=None):
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, 3)
            uint8 images in [0, 255] or float images in [0, 1].
        y : array-like of shape (n_images,)
            Labels.
        groups : array-like of shape (n_images,) or (n_images, n_columns), default=None
            Group of each image (e.g. the photo session), making the early-stopping
            split grouped; with 2-D groups each distinct row is one group. About
            ``validation_fraction`` of the images are held out as whole groups taken
            in a random order, skipping any group whose removal would leave a class
            without training images (so grouping an identity attacker's images by
            person raises a ``ValueError``: use finer groups or
            ``early_stopping=False``). Validated but otherwise ignored when
            ``early_stopping=False``.

        Returns
        -------
        self : ImageCNNClassifier
        """
        return self._fit(X, y, groups)

    def _validate_X(self, X, *, reset):
        if not reset:
            check_is_fitted(self)
        X, _ = check_images(X)
        if reset:
            self.image_shape_in_ = tuple(int(s) for s in X.shape[1:3])
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        return X

    def _batch_to_tensor(self, X_batch):
        return torch.from_numpy(np.ascontiguousarray(X_batch)).permute(0, 3, 1, 2)

    def _fit_inputs(self, X):
        size = self.input_size
        if X.shape[1:3] == (size, size):
            return np.ascontiguousarray(X.transpose(0, 3, 1, 2))
        out = np.empty((X.shape[0], 3, size, size), dtype=np.float32)
        with torch.no_grad():
            for batch in gen_batches(X.shape[0], self.batch_size):
                xb = self._batch_to_tensor(X[batch]).to(self.device_)
                out[batch] = resize_images(xb, size).cpu().numpy()
        return out

    def _build_module(self, X_fit, n_classes):
        mean = X_fit.mean(axis=(0, 2, 3), dtype=np.float64)
        std = X_fit.std(axis=(0, 2, 3), dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        return ImageCNN(
            n_classes, architecture=self.architecture, n_filters=self.n_filters,
            input_size=self.input_size, dropout=self.dropout,
            mean=mean.astype(np.float32), std=std.astype(np.float32), augment=self.augment,
            cutout=self.cutout,
        )

    def _training_options(self, options, n_batches):
        options["criterion__label_smoothing"] = float(self.label_smoothing)
        if self.optimizer == "sgd":
            options["optimizer"] = torch.optim.SGD
            options["optimizer__momentum"] = float(self.momentum)
            options["optimizer__nesterov"] = self.momentum > 0
        total_steps = max(1, self.max_epochs * n_batches)
        if self.lr_schedule == "onecycle":
            scheduler = LRScheduler(
                policy=torch.optim.lr_scheduler.OneCycleLR, max_lr=self.lr,
                total_steps=total_steps, pct_start=0.3, anneal_strategy="linear",
                cycle_momentum=self.optimizer == "sgd" and self.momentum > 0,
                step_every="batch",
            )
            return [("lr_schedule", scheduler)]
        if self.lr_schedule == "cosine":
            scheduler = LRScheduler(
                policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=total_steps,
                step_every="batch",
            )
            return [("lr_schedule", scheduler)]
        return []

    # -- safe saving ---------------------------------------------------------------------
    _FORMAT = "sklearn-privacy/ImageCNNClassifier/1"

    def save(self, path):
        """Save the fitted classifier without pickle: weights + a JSON description.

        Writes ``path`` (the module's state dict, tensors only, readable with
        ``torch.load(..., weights_only=True)``) and ``path`` with the suffix ``.json``
        (the parameters and the small fitted attributes). :meth:`load` reads them back
        without executing any code from the files.

        Parameters
        ----------
        path : str or path-like
            Weights file, e.g. ``"model.pt"``.

        Raises
        ------
        ValueError
            If a parameter (e.g. a ``RandomState`` instance as ``random_state``) or the
            class labels cannot be written as JSON.
        """
        check_is_fitted(self)
        path = Path(path)
        params = self.get_params(deep=False)
        if isinstance(params["class_weight"], dict):
            params["class_weight"] = {"__pairs__": _json_list(
                list(params["class_weight"].items()), "class_weight")}
        params["device"] = str(params["device"])
        meta = {
            "format": self._FORMAT,
            "params": params,
            "classes": _array_to_json(self.classes_, "classes_"),
            "validation_groups": (None if self.validation_groups_ is None else
                                  _array_to_json(self.validation_groups_, "validation_groups_")),
            "image_shape_in": list(self.image_shape_in_),
            "n_features_in": int(self.n_features_in_),
            "n_iter": int(self.n_iter_),
            "best_epoch": int(self.best_epoch_),
            "history": list(self.history_),
        }
        try:
            text = json.dumps(meta, default=_json_default, indent=1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot save {type(self).__name__} as JSON: {exc}") from exc
        state = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
        torch.save(state, path)
        path.with_suffix(".json").write_text(text)

    @classmethod
    def load(cls, path, *, device="auto"):
        """Load a classifier written by :meth:`save`, without executing code from it.

        Parameters
        ----------
        path : str or path-like
            The weights file given to :meth:`save` (its ``.json`` sits beside it).
        device : str or torch.device, default="auto"
            Device of the loaded classifier (its ``device`` parameter and
            ``device_``).

        Returns
        -------
        clf : ImageCNNClassifier
            Fitted; its predictions equal the saved classifier's on the same device.

        Raises
        ------
        ValueError
            If the files are not an ImageCNNClassifier saved by :meth:`save`.
        """
        path = Path(path)
        meta_path = path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {meta_path}: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != cls._FORMAT:
            raise ValueError(
                f"{meta_path} is not an ImageCNNClassifier saved by ImageCNNClassifier.save."
            )
        params = dict(meta["params"])
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = {
                (tuple(k) if isinstance(k, list) else k): v
                for k, v in params["class_weight"]["__pairs__"]
            }
        params["device"] = device
        clf = cls(**params)
        clf.device_ = resolve_device(device)
        clf.classes_ = _array_from_json(meta["classes"])
        groups = meta["validation_groups"]
        clf.validation_groups_ = None if groups is None else _array_from_json(groups)
        clf.image_shape_in_ = tuple(meta["image_shape_in"])
        clf.n_features_in_ = meta["n_features_in"]
        clf.n_iter_ = meta["n_iter"]
        clf.best_epoch_ = meta["best_epoch"]
        clf.history_ = History(meta["history"])
        state = torch.load(path, map_location=get_map_location("cpu"), weights_only=True)
        dummy = np.zeros((1, 3, 1, 1), dtype=np.float32)
        module = clf._build_module(dummy, len(clf.classes_))
        module.load_state_dict(state)  # also sets the saved mean and std
        clf.module_ = module.to(clf.device_).eval()
        return clf

    def torch_model(self):
        """The fitted torch module, in eval mode on ``device_``.

        It maps float images ``(N, 3, H, W)`` in [0, 1], of any size, to logits
        ``(N, n_classes)``, including the resize to ``input_size`` and the
        normalisation, so attacks can differentiate through the deployed
        preprocessing. This is the fitted module itself, not a copy: do not train it.

        Returns
        -------
        module : torch.nn.Module
        """
        return self._inference_module()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Images only: scikit-learn's checks (2-D data) do not apply.
        tags.input_tags.two_d_array = False
        return tags


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_list(values, name):
    try:
        json.dumps(values, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save {name} as JSON: {exc}") from exc
    return values


def _array_to_json(arr, name):
    arr = np.asarray(arr)
    return {"dtype": arr.dtype.str if arr.dtype != object else "object",
            "values": _json_list(arr.tolist(), name)}


def _array_from_json(obj):
    dtype = obj["dtype"]
    if dtype == "object":
        values = obj["values"]
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(obj["values"], dtype=np.dtype(dtype))


register_estimator_check_config(
    "ImageCNNClassifier",
    fast_params={
        "n_filters": 4,
        "input_size": 8,
        "max_epochs": 2,
        "early_stopping": False,
    },
)
