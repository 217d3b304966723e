"""Shared machinery of the skorch-trained attacker classifiers."""

import copy
import itertools
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from torch.utils.data import Subset
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping, ProgressBar
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..utils._torch import resolve_device, seed_torch
from ..utils.validation import _group_codes
from ._modules import ClassWeightedCrossEntropy

__all__ = ["validation_split"]


def _check_fit_groups(groups, n_samples):
    """Validate the ``groups`` given to ``fit``: 1-D ids or 2-D rows, one per sample.

    Returns the array and the integer group code of each sample (each distinct row of
    2-D groups is one group).
    """
    groups = np.asarray(groups)
    if groups.ndim not in (1, 2) or (groups.ndim == 2 and groups.shape[1] == 0):
        raise ValueError(
            "groups must be 1-D group ids or a 2-D array whose distinct rows are the "
            "groups, e.g. the (subject, recording, segment) rows of window_groups; got "
            f"shape {groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: groups has "
            f"{groups.shape[0]} rows for {n_samples} samples."
        )
    if groups.ndim == 1:
        return groups, _group_codes(groups, "groups")
    columns = [_group_codes(groups[:, j], f"groups (column {j})") for j in range(groups.shape[1])]
    _, codes = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
    return groups, codes.reshape(-1)


def validation_split(y, groups, validation_fraction, random_state):
    """Carve an early-stopping validation split out of the *training* data.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Encoded training labels.
    groups : array-like of shape (n_samples,) or (n_samples, n_columns), or None
        Group of each sample; with 2-D groups each distinct row is one group, e.g.
        the (subject, recording, segment) rows of
        :func:`~sklearn_privacy.model_selection.window_groups` (one group per run of
        activity) or (subject, recording) pairs (one per recording). Whole groups go
        to one side, so overlapping windows of one group never sit on both sides.
        The split is *class-preserving*: groups are taken in a random order until
        about ``validation_fraction`` of the samples are held out, skipping any
        group whose removal would leave a class without a training sample (an
        attacker that never trained on a person cannot be validated on them, and
        early stopping would then stop at a random epoch).
    validation_fraction : float in (0, 1)
        Share of the samples to hold out. With groups, a group is added while doing
        so brings the held-out share closer to it; when every admissible group is
        larger than that, the smallest one is held out.
    random_state : int, RandomState instance or None
        Controls the order of the groups, or the shuffled split without groups.

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Non-empty, disjoint, sorted indices covering all samples. With groups, every
        class of ``y`` keeps at least one training sample. Without groups the split is
        stratified when every class has at least 2 samples.

    Raises
    ------
    ValueError
        If no group can be held out without removing the last training samples of a
        class (e.g. one recording per person given as the groups of an identity
        attacker): pass finer groups, such as the 3-column (subject, recording,
        segment) rows of ``window_groups``, or use ``early_stopping=False``. Also for
        fewer than 3 samples without groups, and for invalid groups.
    """
    y = np.asarray(y)
    n_samples = len(y)
    if groups is not None:
        _, group = _check_fit_groups(groups, n_samples)
        return _class_preserving_group_split(y, group, validation_fraction, random_state)
    if n_samples < 3:
        raise ValueError(
            f"Early stopping needs at least 3 samples (2 to train, 1 to validate); got "
            f"{n_samples}. Set early_stopping=False for tiny data."
        )
    n_val = min(max(1, round(validation_fraction * n_samples)), n_samples - 2)
    n_classes = len(np.unique(y))
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    if counts.min() >= 2 and n_val >= n_classes and n_samples - n_val >= n_classes:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=random_state)
    else:
        splitter = ShuffleSplit(n_splits=1, test_size=n_val, random_state=random_state)
    return next(splitter.split(np.zeros(n_samples), y))


def _class_preserving_group_split(y, group, validation_fraction, random_state):
    """Hold out whole groups (codes ``group``) while every class keeps training samples."""
    n_samples = len(y)
    _, y_code = np.unique(y, return_inverse=True)
    y_code = y_code.reshape(-1)
    n_classes = int(y_code.max()) + 1
    n_groups = int(group.max()) + 1
    # Sparse (group, class) counts: the classes of each group are one slice.
    cell, cell_count = np.unique(group.astype(np.int64) * n_classes + y_code, return_counts=True)
    cell_group, cell_class = np.divmod(cell, n_classes)
    bounds = np.searchsorted(cell_group, np.arange(n_groups + 1))
    group_size = np.bincount(group, minlength=n_groups)

    remaining = np.bincount(y_code, minlength=n_classes)  # training samples per class
    target = validation_fraction * n_samples
    held = np.zeros(n_groups, dtype=bool)
    n_val = 0
    smallest_admissible = None
    for g in check_random_state(random_state).permutation(n_groups):
        if n_val >= target:
            break
        cls, cnt = cell_class[bounds[g] : bounds[g + 1]], cell_count[bounds[g] : bounds[g + 1]]
        if np.any(remaining[cls] <= cnt):
            continue  # the last training samples of a class
        if n_val + group_size[g] / 2 < target:  # brings the held-out share closer
            held[g] = True
            remaining[cls] -= cnt
            n_val += group_size[g]
        elif smallest_admissible is None or group_size[g] < group_size[smallest_admissible]:
            smallest_admissible = g
    if n_val == 0 and smallest_admissible is not None:
        held[smallest_admissible] = True
    if not held.any():
        raise ValueError(
            f"Early stopping cannot hold out any of the {n_groups} group(s) for validation: "
            "each holds the last training samples of some class (e.g. one recording per "
            "person as the groups of an identity attacker, which would hold out whole "
            "people). Pass finer groups, such as the (subject, recording, segment) rows "
            "of window_groups(windows) (make_windows' segment: one group per run of "
            "activity), or set early_stopping=False."
        )
    val = held[group]
    indices = np.arange(n_samples)
    return indices[~val], indices[val]


def _as_tensor(a):
    """numpy -> torch without copying when possible (copies read-only/strided input)."""
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C", copy=True)
    return torch.from_numpy(a)


class BaseTorchClassifier(ClassifierMixin, BaseEstimator, metaclass=ABCMeta):
    """skorch training loop, early stopping, batched prediction and pickling.

    Subclasses implement input validation (``_validate_X``), the preparation of the
    training tensors (``_fit_inputs``), the module (``_build_module``) and the batch
    conversion used at prediction time (``_batch_to_tensor``).
    """

    # Grouped early stopping: routed by default, so that with
    # ``sklearn.set_config(enable_metadata_routing=True)`` one
    # ``params={"groups": g}`` feeds both a group splitter and this estimator.
    __metadata_request__fit = {"groups": True}

    _parameter_constraints: dict = {
        "n_filters": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "device": [str, torch.device, None],
    }

    # -- hooks -----------------------------------------------------------------------
    @abstractmethod
    def _validate_X(self, X, *, reset):
        """Validate ``X``; on ``reset`` record its shape."""

    @abstractmethod
    def _fit_inputs(self, X):
        """Return the float32 training array in the module's input layout."""

    @abstractmethod
    def _build_module(self, X_fit, n_classes):
        """Return a fresh ``nn.Module`` (statistics learned from ``X_fit``)."""

    @abstractmethod
    def _batch_to_tensor(self, X_batch):
        """Convert a validated numpy batch to the module's input tensor (on CPU)."""

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, X, y, groups):
        name = type(self).__name__
        rng = seed_torch(self.random_state)
        self.device_ = resolve_device(self.device)
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None.")
        X = self._validate_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"{name} needs samples of at least 2 classes in y; got 1 class "
                f"({self.classes_[0]!r})."
            )
        y_enc = y_enc.astype(np.int64)
        group_codes = None
        if groups is not None:
            groups, group_codes = _check_fit_groups(groups, len(y_enc))

        weight = None
        if self.class_weight is not None:
            weight = torch.as_tensor(
                compute_class_weight(self.class_weight, classes=self.classes_, y=y),
                dtype=torch.float32,
            )

        X_fit = self._fit_inputs(X)
        module = self._build_module(X_fit, n_classes)

        # Index the training data in place (torch Subsets) instead of copying it.
        full = Dataset(_as_tensor(X_fit), torch.from_numpy(y_enc))
        callbacks = []
        self.validation_groups_ = None
        if self.early_stopping:
            train_idx, val_idx = validation_split(
                y_enc, group_codes, self.validation_fraction, rng
            )
            if groups is not None:
                # One row (or id) per held-out group, in sorted order of the groups.
                first = np.empty(int(group_codes.max()) + 1, dtype=np.intp)
                first[group_codes[::-1]] = np.arange(len(group_codes))[::-1]
                self.validation_groups_ = groups[first[np.unique(group_codes[val_idx])]]
            train_data = Subset(full, train_idx)
            train_split = predefined_split(Subset(full, val_idx))
            early = EarlyStopping(monitor="valid_loss", patience=self.patience, load_best=True)
            callbacks.append(("early_stopping", early))
        else:
            train_data, train_split = full, None
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))

        n_train = len(train_data)
        net = NeuralNetClassifier(
            module,
            criterion=ClassWeightedCrossEntropy,
            criterion__weight=weight,
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            iterator_train__shuffle=True,
            # A last batch of one sample would break batch norm on short inputs.
            iterator_train__drop_last=bool(n_train > self.batch_size
                                           and n_train % self.batch_size == 1),
            callbacks=callbacks,
            classes=np.arange(n_classes),
            device=self.device_,
            verbose=int(self.verbose),
        )
        net.fit(train_data, None)

        self.module_ = net.module_.eval()
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self.best_epoch_ = early.best_epoch_ if self.early_stopping else self.n_iter_
        return self

    # -- prediction --------------------------------------------------------------------
    def _inference_module(self):
        check_is_fitted(self)
        return self.module_.to(self.device_).eval()

    def predict_log_proba(self, X):
        """Log-probability of each class, computed in batches of ``batch_size``.

        Summing these over the windows of one recording pools them into a
        recording-level decision.

        Parameters
        ----------
        X : array-like
            Input in the layout the estimator was fitted on.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        module = self._inference_module()
        X = self._validate_X(X, reset=False)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=np.float64)
        with torch.inference_mode():
            for batch in gen_batches(X.shape[0], self.batch_size):
                xb = self._batch_to_tensor(X[batch]).to(self.device_)
                logits = module(xb).double()
                out[batch] = torch.log_softmax(logits, dim=1).cpu().numpy()
        return out

    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : array-like
            Input in the layout the estimator was fitted on.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """Most probable class.

        Parameters
        ----------
        X : array-like
            Input in the layout the estimator was fitted on.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        log_proba = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]

    def torch_model(self):
        """The fitted torch module, in eval mode on ``device_``.

        It maps raw inputs to logits (preprocessing included), so attacks can
        differentiate through it. This is the fitted module itself, not a copy:
        do not train it.

        Returns
        -------
        module : torch.nn.Module
        """
        return self._inference_module()

    # -- persistence -------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.get("module_")
        if module is not None and any(
            t.device.type != "cpu" for t in itertools.chain(module.parameters(), module.buffers())
        ):
            # Pickles made on a GPU load on CPU-only machines.
            state["module_"] = copy.deepcopy(module).cpu()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        device = getattr(self, "device_", None)
        if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
            self.device_ = "cpu"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags
