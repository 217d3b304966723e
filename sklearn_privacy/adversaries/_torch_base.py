"""Shared machinery of the skorch-trained attacker classifiers."""

from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from torch.utils.data import Subset
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..utils._torch import (
    EpochProgress,
    TorchPickleMixin,
    check_fit_groups,
    check_random_state_local,
    draw_seed,
    progress_bar,
    resolve_device,
    torch_random_context,
    validation_split,
)
from ..utils.validation import check_class_labels
from ._modules import ClassWeightedCrossEntropy

__all__ = ["BaseTorchClassifier"]


def _as_tensor(a):
    """numpy -> torch without copying when possible (copies read-only/strided input)."""
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C", copy=True)
    return torch.from_numpy(a)


class BaseTorchClassifier(TorchPickleMixin, ClassifierMixin, BaseEstimator, metaclass=ABCMeta):
    """skorch training loop, early stopping, batched prediction and pickling.

    Subclasses implement input validation (``_validate_X``), the preparation of the
    training tensors (``_fit_inputs``), the module (``_build_module``) and the batch
    conversion used at prediction time (``_batch_to_tensor``).
    """

    # Grouped early stopping: routed by default, so that with
    # ``sklearn.set_config(enable_metadata_routing=True)`` one
    # ``params={"groups": g}`` feeds both a group splitter and this estimator.
    __metadata_request__fit = {"groups": True}

    # Saved with torch.save and loaded on the CPU when CUDA is gone (TorchPickleMixin).
    _torch_attributes = ("module_",)

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

    def _training_options(self, options, n_batches):
        """Adjust the skorch criterion/optimizer ``options`` in place (hook).

        ``n_batches`` is the number of training batches per epoch. Returns extra
        ``(name, callback)`` pairs (e.g. a learning-rate scheduler); the default keeps
        AdamW and plain cross-entropy and adds none.
        """
        return []

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, X, y, groups):
        name = type(self).__name__
        # A local generator: fit never touches the global numpy or torch state.
        rng = check_random_state_local(self.random_state)
        self.device_ = resolve_device(self.device)
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None.")
        X = self._validate_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_class_labels(y, "y")  # before scikit-learn's check, which names no parameter
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
            groups, group_codes = check_fit_groups(groups, len(y_enc))

        weight = None
        if self.class_weight is not None:
            weight = torch.as_tensor(
                compute_class_weight(self.class_weight, classes=self.classes_, y=y),
                dtype=torch.float32,
            )

        X_fit = self._fit_inputs(X)
        with torch_random_context(draw_seed(rng), self.device_):
            return self._train(X_fit, y_enc, n_classes, weight, groups, group_codes, rng)

    def _train(self, X_fit, y_enc, n_classes, weight, groups, group_codes, rng):
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
        bar = progress_bar(self.max_epochs, desc=type(self).__name__, verbose=self.verbose)
        callbacks.append(("progress", EpochProgress(bar)))

        n_train = len(train_data)
        drop_last = bool(n_train > self.batch_size and n_train % self.batch_size == 1)
        options = {
            "criterion": ClassWeightedCrossEntropy,
            "criterion__weight": weight,
            "optimizer": torch.optim.AdamW,
            "optimizer__weight_decay": self.weight_decay,
        }
        n_batches = n_train // self.batch_size if drop_last else -(-n_train // self.batch_size)
        extra_callbacks = self._training_options(options, n_batches)
        net = NeuralNetClassifier(
            module,
            **options,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            iterator_train__shuffle=True,
            # A last batch of one sample would break batch norm on short inputs.
            iterator_train__drop_last=drop_last,
            callbacks=list(extra_callbacks) + callbacks,
            classes=np.arange(n_classes),
            device=self.device_,
            verbose=0,
        )
        with bar:
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags
