"""Replacement autoencoder (RAE) of Malekzadeh et al., "Replacement AutoEncoder: a
privacy-preserving algorithm for sensing data analysis", ACM/IEEE IoTDI 2018, implemented
from the paper's description.
"""

import numbers
import warnings

import numpy as np
import torch
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ..base import BaseProtector
from ..utils._torch import EpochProgress, draw_seed, progress_bar
from ..utils.estimator_checks import register_estimator_check_config
from ..utils.validation import check_class_labels
from ._aae import (
    _batched_transform,
    _channel_stats,
    _DivergenceCheck,
    _output_dtype,
    _to_channels_first,
    _train_valid_split,
)
from ._modules import ReplacementNetwork

__all__ = ["ReplacementAutoEncoder"]


def _as_label_set(values, name):
    """Sorted distinct labels of the ``sensitive`` or ``neutral`` parameter."""
    given = values
    values = np.asarray(values, dtype=object if np.ndim(values) == 0 else None)
    values = np.atleast_1d(values)
    # A mapping or set becomes one object element, not a list of labels.
    not_labels = values.dtype.kind == "O" and not all(
        isinstance(v, (str, bytes, numbers.Number, np.generic)) or v is None for v in values.flat
    )
    if values.ndim != 1 or values.shape[0] == 0 or not_labels:
        raise ValueError(f"{name} must be a non-empty list of activity labels; got {given!r}.")
    return np.unique(check_class_labels(values, name))


class ReplacementAutoEncoder(BaseProtector):
    """Replacement autoencoder (RAE): turn sensitive activities into neutral ones.

    The user splits activities into *sensitive* ("black": to hide), *neutral* ("gray":
    harmless, used as replacement) and all the others ("white": kept). An autoencoder
    learns to reproduce white and neutral windows and to map every sensitive window onto
    a neutral window drawn at random (Malekzadeh et al., IoTDI 2018). Activity labels are
    needed in :meth:`fit` only; :meth:`transform` needs no labels, so an app downstream
    sees neutral activity where the sensitive one happened.

    Windows are standardised per channel with the training mean and standard deviation
    inside the estimator; outputs come back in the input's units and layout.

    Parameters
    ----------
    sensitive : array-like of labels
        Activities to hide (values of ``y``).
    neutral : array-like of labels
        Activities whose windows replace the sensitive ones (disjoint from
        ``sensitive``).
    max_epochs : int, default=30
        Maximum training epochs (published: 100).
    patience : int, default=5
        Early stopping on the validation loss, restoring the best weights
        (published: 20).
    kernel_size : int, default=5
        Temporal kernel of the convolutions (odd or even; windows keep their length).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=0.0
        L2 penalty (Adam ``weight_decay``).
    batch_size : int, default=128
        Training batch size, and batch size of :meth:`transform` (bounded memory).
    validation_fraction : float or None, default=0.1
        Share of the *training* windows held out for early stopping (whole recordings
        when ``groups`` is given to :meth:`fit`). ``None`` trains for ``max_epochs``.
    pairing : {"random", "nearest"}, default="random"
        Which neutral window each sensitive training window learns to become.
        ``"random"`` (published): one drawn at random. The mean-squared-error-optimal
        output for a random target is the *average* neutral window, which for periodic
        activities with random phase is nearly flat: on HAPT an app trained on raw data
        read the replaced stairs as standing rather than walking. ``"nearest"`` (beyond
        the paper): the closest neutral window in Euclidean distance on the
        standardised windows, a learnable mapping to a plausible neutral window.
    gate : bool, default=False
        Beyond the paper: also train a 1-D CNN
        (:class:`~sklearn_privacy.adversaries.TimeSeriesCNNClassifier`, class-balanced)
        that tells sensitive windows from the others, and in :meth:`transform` pass only
        the windows it flags through the autoencoder, returning every other window
        unchanged. The published RAE reconstructs every window, and an autoencoder that
        is not trained to convergence blurs the kept activities: on HAPT magnitudes an
        app trained on raw data then read sitting and lying as standing.
    device : str, default="auto"
        Torch device; ``"auto"`` picks CUDA when available (else the CPU); an explicit
        ``"cuda"`` without CUDA is an error at :meth:`fit`.
    random_state : int, RandomState instance or None, default=None
        Seeds numpy and torch (weights, batches, replacement pairs, split) through
        local generators: fitting leaves the global random state unchanged.
    verbose : int, default=0
        Show a progress bar over epochs.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network (trimmed for prediction).
    history_ : list of dict
        Per epoch: ``train_loss`` and, with validation, ``valid_loss``.
    classes_ : ndarray
        Activity classes seen in fit.
    sensitive_, neutral_ : ndarray
        The label sets used.
    gate_ : TimeSeriesCNNClassifier or None
        With ``gate=True``, the classifier of sensitive (1) versus other (0) windows;
        ``None`` without a gate or when ``y`` held no sensitive window (nothing is then
        replaced).
    mean_, scale_ : ndarray of shape (n_channels,)
        Per-channel standardisation learned from the training windows.
    device_ : str
    n_features_in_, n_timestamps_in_, n_channels_in_ : int

    See Also
    --------
    MotionAnonymizer : hides identity or attributes with adversarial training; placed
        after this estimator in a :class:`~sklearn.pipeline.Pipeline` it gives the
        combined method of Malekzadeh et al. (2020).

    Notes
    -----
    ``sensitive_features`` is requested through metadata routing like every
    protector's (so a :class:`~sklearn.pipeline.Pipeline` accepts it whatever its
    steps) and ignored: the activity labels ``y`` are all it needs.

    Cost: training time grows with the number of windows times ``max_epochs``; on a CPU,
    the full HAPT data (15k windows of 2 x 128 samples) with the default
    ``max_epochs=30`` takes minutes (early stopping often ends it sooner).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import ReplacementAutoEncoder
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(60, 16, 2)), np.repeat([0, 1, 2], 20)
    >>> rae = ReplacementAutoEncoder(sensitive=[2], neutral=[1], max_epochs=2,
    ...                              random_state=0)
    >>> rae.fit(X, y).transform(X).shape
    (60, 16, 2)
    """

    _parameter_constraints = {
        "sensitive": ["array-like"],
        "neutral": ["array-like"],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "pairing": [StrOptions({"random", "nearest"})],
        "gate": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        sensitive,
        neutral,
        *,
        max_epochs=30,
        patience=5,
        kernel_size=5,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=128,
        validation_fraction=0.1,
        pairing="random",
        gate=False,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.sensitive = sensitive
        self.neutral = neutral
        self.max_epochs = max_epochs
        self.patience = patience
        self.kernel_size = kernel_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.pairing = pairing
        self.gate = gate
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    _y_usage = "required"
    _sensitive_usage = "ignored"

    def fit(self, X, y, *, sensitive_features=None, groups=None):
        """Train the autoencoder on (window, replacement) pairs.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Training windows.
        y : array-like of shape (n_windows,)
            Activity label of each window.
        sensitive_features : array-like, default=None
            Ignored (requested by routing like every protector's, so pipelines accept
            it).
        groups : array-like of shape (n_windows,) or (n_windows, n_columns), default=None
            Recording ids (or the rows of
            :func:`~sklearn_privacy.model_selection.window_groups`), so that the
            validation split holds out whole groups; groups holding the last training
            windows of an activity are kept for training.

        Returns
        -------
        self : ReplacementAutoEncoder
        """
        return self._fit_template(X, y, sensitive_features, groups=groups)

    def _fit(self, X3, y, sensitive_features, *, rng, groups=None):
        n = X3.shape[0]
        if n < 2:
            raise ValueError(
                f"ReplacementAutoEncoder needs at least 2 windows to train; got n_samples = {n}."
            )
        self.sensitive_ = _as_label_set(self.sensitive, "sensitive")
        self.neutral_ = _as_label_set(self.neutral, "neutral")
        overlap = np.intersect1d(self.sensitive_, self.neutral_)
        if overlap.size:
            raise ValueError(
                f"sensitive and neutral must be disjoint; both contain {overlap.tolist()}."
            )
        self.classes_ = np.unique(y)
        black = np.isin(y, self.sensitive_)
        gray_idx = np.flatnonzero(np.isin(y, self.neutral_))
        n_black = int(black.sum())
        if n_black and not gray_idx.size:
            raise ValueError(
                f"y has {n_black} windows of the sensitive activities {self.sensitive_.tolist()} "
                f"but none of the neutral activities {self.neutral_.tolist()} to replace them with."
            )
        if not n_black:
            warnings.warn(
                f"None of the sensitive activities {self.sensitive_.tolist()} occurs in y: "
                "the autoencoder only learns to reproduce its input.",
                UserWarning,
            )

        self.mean_, self.scale_ = _channel_stats(X3)
        Xs = _to_channels_first(X3, self.mean_, self.scale_)
        targets = Xs.copy()
        if n_black:
            if self.pairing == "nearest":
                flat = Xs.reshape(n, -1)
                drawn = gray_idx[pairwise_distances_argmin(flat[black], flat[gray_idx])]
            else:
                drawn = rng.choice(gray_idx, size=n_black, replace=n_black > gray_idx.size)
            targets[black] = Xs[drawn]
        train, valid = _train_valid_split(y, groups, self.validation_fraction, rng)
        n_train = train.shape[0]
        bar = progress_bar(self.max_epochs, desc="ReplacementAutoEncoder", verbose=self.verbose)
        callbacks = [
            ("progress", EpochProgress(bar)),
            ("divergence", _DivergenceCheck(
                "ReplacementAutoEncoder", self.lr, ("train_loss", "valid_loss"))),
        ]
        if valid is not None:
            callbacks.append(
                ("early_stopping", EarlyStopping(patience=self.patience, load_best=True))
            )
        net = NeuralNet(
            ReplacementNetwork,
            module__n_channels=self.n_channels_in_,
            module__n_timestamps=self.n_timestamps_in_,
            module__kernel_size=self.kernel_size,
            criterion=nn.MSELoss,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            train_split=(
                None if valid is None else predefined_split(Dataset(Xs[valid], targets[valid]))
            ),
            callbacks=callbacks,
            iterator_train__shuffle=True,
            # Batch norm after dense layers cannot train on a last batch of one window.
            iterator_train__drop_last=n_train > self.batch_size
            and n_train % self.batch_size == 1,
            device=self.device_,
            verbose=0,
        )
        with bar:
            net.fit(Xs[train], targets[train])
        keys = ("train_loss", "valid_loss")
        self.history_ = [{k: float(row[k]) for k in keys if k in row} for row in net.history]
        net.trim_for_prediction()
        self.net_ = net
        self.gate_ = None
        if self.gate and n_black:
            from ..adversaries import TimeSeriesCNNClassifier

            # The gate only tells sensitive activities apart, an easy task: the plain
            # network without augmentation does it at a fraction of the ResNet's cost.
            self.gate_ = TimeSeriesCNNClassifier(
                architecture="plain", augment=False, lr=1e-3, lr_schedule="constant",
                n_filters=32, max_epochs=min(self.max_epochs, 15), patience=self.patience,
                batch_size=self.batch_size, class_weight="balanced",
                early_stopping=self.validation_fraction is not None,
                validation_fraction=self.validation_fraction or 0.15,
                device=self.device_, random_state=draw_seed(rng),
            ).fit(X3, black.astype(int), groups=groups)
        return self

    def transform(self, X):
        """Replace sensitive activities by neutral ones, in batches of ``batch_size``.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)

        Returns
        -------
        X_replaced : ndarray of the same shape and layout as ``X``
            In the input's units; float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self, "net_")
        X3 = self._validate_motion(X, reset=False)
        if self.gate:
            # Only the windows the gate flags go through the autoencoder.
            flagged = (
                np.zeros(X3.shape[0], dtype=bool) if self.gate_ is None
                else self.gate_.predict(X3).astype(bool)
            )
            # From the input itself, not the float32 validated copy: bit for bit.
            Xt = np.array(X, dtype=_output_dtype(X)).reshape(X3.shape)
            if flagged.any():
                Xt[flagged] = self._replace(X3[flagged], Xt.dtype)
            return self._restore_motion(Xt, X)
        return self._restore_motion(self._replace(X3, _output_dtype(X)), X)

    def _replace(self, X3, dtype):
        """Run validated windows through the autoencoder, in batches of ``batch_size``."""
        device = self.device_
        module = self.net_.module_.to(device).eval()
        return _batched_transform(
            module, X3, self.mean_, self.scale_, self.batch_size, device, dtype
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


register_estimator_check_config(
    "ReplacementAutoEncoder",
    # scikit-learn's checks label windows 0, 1, 2 (and 1, 2 in some): activity 2 is the
    # sensitive one, 1 the neutral replacement, so the checks exercise the replacement.
    fast_params=dict(
        sensitive=[2], neutral=[1], max_epochs=2, batch_size=32, device="cpu", random_state=0
    ),
)
