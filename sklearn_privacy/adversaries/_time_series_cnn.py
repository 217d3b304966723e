"""A skorch-trained 1-D CNN attacker for motion windows."""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context
from skorch.callbacks import LRScheduler
from sklearn.utils._param_validation import Interval, StrOptions

from ..utils.estimator_checks import register_estimator_check_config
from ._ts_modules import ARCHITECTURES, TimeSeriesNet
from ._torch_base import BaseTorchClassifier, _as_tensor
from ..utils.validation import validate_motion_windows

__all__ = ["TimeSeriesCNNClassifier"]

_DEFAULT_ARCHITECTURE = "resnet"
# Kernel length of each architecture when kernel_size is None: the plain blocks'
# convolutions, ResNet's longest (8, 5, 3 as in the paper), InceptionTime's longest
# (39, 19, 9).
_DEFAULT_KERNEL = {"plain": 5, "resnet": 8, "inception": 40}


class TimeSeriesCNNClassifier(BaseTorchClassifier):
    """Deep time-series classifier of motion windows, trained with skorch.

    The attacker of the motion benchmarks (identity, gender, activity), and a strong
    app model. Three fully convolutional networks are available, all ending in a
    global average pooling over time and a linear layer, so any window length works:

    - ``"resnet"`` (default): the residual network for time series of Wang, Yan and
      Oates (2017), a strong baseline of time-series classification benchmarks.
      Residual blocks of three convolutions (kernel sizes 8, 5, 3), each followed by
      batch norm and ReLU, with a 1x1 convolution + batch norm shortcut; widths
      ``n_filters``, then ``2 * n_filters`` (64, 128, 128 in the paper).
    - ``"inception"``: the network of InceptionTime (Ismail Fawaz et al., 2020).
      Inception modules (a 1x1 bottleneck convolution feeding three parallel
      convolutions of lengths 39, 19 and 9, plus a max-pool + 1x1 branch; batch norm,
      ReLU) with a residual shortcut every three modules, six modules deep. It sees
      longer patterns than the ResNet, at a higher cost per window.
    - ``"plain"``: conv, batch norm, ReLU, dropout blocks with a max-pool of 2
      between them: the cheapest, and the weakest.

    Training uses AdamW, cross-entropy (optionally class-weighted) and, by default, a
    cosine learning-rate decay over ``max_epochs`` and random augmentation of the
    training batches (see ``augment``); early stopping monitors the loss on a
    validation split carved from the *training* data only (grouped when ``groups``
    are given) and restores the weights of the best validation epoch. Prediction is
    deterministic: augmentation and dropout are off.

    Parameters
    ----------
    architecture : {"resnet", "inception", "plain"}, default="resnet"
        The network (see above).
    n_filters : int, default=64
        Width of the network: filters of the first block (``"resnet"``,
        ``"plain"``; later blocks have twice as many) or twice the filters of each of
        the four branches of an inception module (so ``64`` gives InceptionTime's 32
        per branch and 128 channels per module).
    kernel_size : int or None, default=None
        Longest convolution along time. None means the architecture's own: 5 for
        ``"plain"`` (every convolution), 8 for ``"resnet"`` (kernels 8, 5, 3; another
        ``k`` gives ``k``, ``round(5k/8)``, ``round(3k/8)``) and 40 for
        ``"inception"`` (kernels 39, 19, 9: ``k``, ``k/2`` and ``k/4`` made odd).
    n_blocks : int or None, default=None
        Number of blocks: plain blocks, residual blocks or inception modules. None
        means the architecture's own: 3, 3 and 6.
    dropout : float in [0, 1), default=0.3
        Dropout before the linear layer (and after each block of ``"plain"``).
    max_epochs : int, default=30
        Largest number of passes over the training data.
    lr : float, default=3e-3
        AdamW's (initial) learning rate.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: the learning rate decays from ``lr`` towards 0 along a half
        cosine over ``max_epochs``, stepped once per epoch. ``"constant"``: ``lr``
        throughout.
    batch_size : int, default=128
        Mini-batch size, for training and for (bounded-memory) prediction.
    weight_decay : float, default=1e-4
        AdamW's decoupled weight decay.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn (``"balanced"``:
        inversely proportional to class frequencies in ``y``).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when its loss has
        not improved for ``patience`` epochs and restore the best epoch's weights.
    patience : int, default=5
        Epochs without improvement before stopping.
    validation_fraction : float in (0, 1), default=0.15
        Share of the training samples held out for early stopping. With ``groups``,
        whole groups are held out (about this share of the samples), never the last
        training samples of a class (see :meth:`fit`).
    standardize : bool, default=True
        Standardise each channel with the mean and standard deviation of the training
        windows (held inside the module, so :meth:`torch_model` takes raw windows).
    augment : bool, default=True
        Randomly perturb every training batch, after standardisation: each channel
        of each window is scaled by ``1 + 0.1 * N(0, 1)``, ``0.05 * N(0, 1)`` noise is
        added at every step, and each window is rolled circularly along time by a
        random offset (the network pools over time, so this teaches it that a gait
        cycle or gesture may start anywhere in the window). The draws come from the
        fit's own seeded generator. Never applied at prediction, nor to the
        early-stopping validation windows.
    verbose : int, default=0
        ``>= 1``: a progress bar over the epochs (on stderr).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batch order, dropout, the augmentation and the
        validation split, through local generators: fitting leaves the global numpy
        and torch random state unchanged.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available (else the CPU); an explicit ``"cuda"`` on a
        machine without CUDA is a ``ValueError`` at :meth:`fit`. A model pickled on a
        GPU loads on a CPU-only machine on the CPU, with a warning.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.
    n_timestamps_in_, n_channels_in_ : int
        Window shape seen in ``fit``; prediction requires the same shape.
    module_ : torch.nn.Module
        The fitted torch module: raw ``(N, T, d)`` float windows -> logits (in eval
        mode: no augmentation, no dropout).
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
    ``fit`` accepts ``groups`` to make the early-stopping split grouped, so overlapping
    windows of one group never sit on both sides. Use the finest groups you have: the
    3-column (subject, recording, segment) rows of
    :func:`~sklearn_privacy.model_selection.window_groups` hold out runs of activity.
    For an identity attacker trained on a single recording per person, grouping by
    recording could only hold out whole people, whom the attacker cannot recognise;
    the class-preserving split never does that, and raises a ``ValueError`` when no
    group can be held out.

    The ``groups`` request is on by default: with
    ``sklearn.set_config(enable_metadata_routing=True)``,
    ``cross_validate(clf, X, y, cv=GroupKFold(), params={"groups": g})`` sends each
    training fold's groups both to the splitter and to ``fit`` (never the test fold's);
    :class:`~sklearn_privacy.model_selection.RecordingDisjointSplit` and ``fit`` both
    accept the 3-column rows of ``window_groups``.
    Without routing, pass ``fit(X, y, groups=g)`` or ``Pipeline.fit(..., clf__groups=g)``.
    Opt out with ``set_fit_request(groups=False)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.adversaries import TimeSeriesCNNClassifier
    >>> t = np.arange(64) / 50.0
    >>> freqs = np.repeat([2.0, 6.0], 20)
    >>> X = np.sin(2 * np.pi * freqs[:, None] * t)[:, :, None]
    >>> y = (freqs > 4).astype(int)
    >>> clf = TimeSeriesCNNClassifier(n_filters=8, max_epochs=10, lr=1e-2,
    ...                               early_stopping=False, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (40, 2)
    >>> clf.module_.architecture
    'resnet'
    >>> inception = TimeSeriesCNNClassifier(architecture="inception", n_filters=8,
    ...                                     max_epochs=10, lr=1e-2, early_stopping=False,
    ...                                     random_state=0).fit(X, y)
    >>> inception.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseTorchClassifier._parameter_constraints,
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_blocks": [Interval(Integral, 1, None, closed="left"), None],
        "standardize": ["boolean"],
        "augment": ["boolean"],
        "lr_schedule": [StrOptions({"constant", "cosine"})],
    }

    def __init__(
        self,
        *,
        architecture=_DEFAULT_ARCHITECTURE,
        n_filters=64,
        kernel_size=None,
        n_blocks=None,
        dropout=0.3,
        max_epochs=30,
        lr=3e-3,
        lr_schedule="cosine",
        batch_size=128,
        weight_decay=1e-4,
        class_weight=None,
        early_stopping=True,
        patience=5,
        validation_fraction=0.15,
        standardize=True,
        augment=True,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.architecture = architecture
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.augment = augment
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, groups=None):
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows (2-D input is one channel).
        y : array-like of shape (n_windows,)
            Labels (identity, attribute, activity...).
        groups : array-like of shape (n_windows,) or (n_windows, n_columns), default=None
            Group of each window, making the early-stopping split grouped; with 2-D
            groups each distinct row is one group, e.g. the (subject, recording,
            segment) rows of :func:`~sklearn_privacy.model_selection.window_groups`
            (one group per run of activity) or (subject, recording) pairs (one per
            recording). About ``validation_fraction`` of the windows are held out as
            whole groups taken in a random order, skipping any group whose removal
            would leave a class without training windows. Validated but otherwise
            ignored when ``early_stopping=False``.

        Returns
        -------
        self : TimeSeriesCNNClassifier
        """
        return self._fit(X, y, groups)

    def _validate_X(self, X, *, reset):
        return validate_motion_windows(self, X, reset=reset)

    def _fit_inputs(self, X):
        return X

    def _training_options(self, options, n_batches):
        # Cosine decay from lr towards 0 over max_epochs, stepped once per epoch.
        if self.lr_schedule == "cosine":
            return [("lr_scheduler", LRScheduler(
                policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=self.max_epochs,
            ))]
        return []

    def _build_module(self, X_fit, n_classes):
        n_channels = X_fit.shape[2]
        if self.standardize:
            mean = X_fit.mean(axis=(0, 1), dtype=np.float64)
            std = X_fit.std(axis=(0, 1), dtype=np.float64)
            std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        else:
            mean, std = np.zeros(n_channels), np.ones(n_channels)
        arch = self.architecture
        n_filters = self.n_filters
        if arch == "inception":
            n_filters = max(1, n_filters // 2)  # per branch: 4 branches -> 2 * n_filters
        return TimeSeriesNet(
            n_channels, n_classes, architecture=arch, n_filters=n_filters,
            kernel_size=_DEFAULT_KERNEL[arch] if self.kernel_size is None else self.kernel_size,
            n_blocks=ARCHITECTURES[arch] if self.n_blocks is None else self.n_blocks,
            dropout=self.dropout, mean=mean.astype(np.float32), std=std.astype(np.float32),
            augment=self.augment,
        )

    def _batch_to_tensor(self, X_batch):
        return _as_tensor(X_batch)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


register_estimator_check_config(
    "TimeSeriesCNNClassifier",
    fast_params={
        "n_filters": 8,
        "kernel_size": 3,
        "n_blocks": 1,
        "max_epochs": 8,
        "lr": 3e-2,
        "batch_size": 64,
        "early_stopping": False,
        "dropout": 0.0,
        # scikit-learn's checks feed tabular blobs: nothing to augment there.
        "augment": False,
    },
)
