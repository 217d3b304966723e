"""A skorch-trained 1-D CNN attacker for motion windows."""

from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval

from ..utils.estimator_checks import register_estimator_check_config
from ._modules import TimeSeriesCNN
from ._torch_base import BaseTorchClassifier, _as_tensor
from ..utils.validation import validate_motion_windows

__all__ = ["TimeSeriesCNNClassifier"]


class TimeSeriesCNNClassifier(BaseTorchClassifier):
    """1-D convolutional classifier of motion windows, trained with skorch.

    The attacker of the motion benchmarks (identity, gender, activity). Convolution
    blocks (conv, batch norm, ReLU, dropout; max-pool of 2 between blocks) end in a
    global average pooling and a linear layer, so any window length works. Training uses
    AdamW and cross-entropy (optionally class-weighted); early stopping monitors the
    loss on a validation split carved from the *training* data only (grouped when
    ``groups`` are given) and restores the best weights.

    Parameters
    ----------
    n_filters : int, default=64
        Filters of the first block; later blocks have twice as many.
    kernel_size : int, default=5
        Convolution length along time (``"same"`` padding).
    n_blocks : int, default=3
        Number of convolution blocks.
    dropout : float in [0, 1), default=0.3
        Dropout after each block and before the linear layer.
    max_epochs : int, default=30
        Largest number of passes over the training data.
    lr : float, default=1e-3
        AdamW learning rate.
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
    verbose : int, default=0
        ``>= 1``: a progress bar over the epochs (on stderr).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batch order, dropout and the validation split, through
        local generators: fitting leaves the global numpy and torch random state
        unchanged.
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
    module_ : TimeSeriesCNN
        The fitted torch module: raw ``(N, T, d)`` float windows -> logits.
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
    >>> clf = TimeSeriesCNNClassifier(n_filters=8, max_epochs=20, lr=1e-2,
    ...                               early_stopping=False, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (40, 2)
    """

    _parameter_constraints: dict = {
        **BaseTorchClassifier._parameter_constraints,
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "standardize": ["boolean"],
    }

    def __init__(
        self,
        *,
        n_filters=64,
        kernel_size=5,
        n_blocks=3,
        dropout=0.3,
        max_epochs=30,
        lr=1e-3,
        batch_size=128,
        weight_decay=1e-4,
        class_weight=None,
        early_stopping=True,
        patience=5,
        validation_fraction=0.15,
        standardize=True,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
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

    def _build_module(self, X_fit, n_classes):
        n_channels = X_fit.shape[2]
        if self.standardize:
            mean = X_fit.mean(axis=(0, 1), dtype=np.float64)
            std = X_fit.std(axis=(0, 1), dtype=np.float64)
            std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        else:
            mean, std = np.zeros(n_channels), np.ones(n_channels)
        return TimeSeriesCNN(
            n_channels, n_classes, n_filters=self.n_filters, kernel_size=self.kernel_size,
            n_blocks=self.n_blocks, dropout=self.dropout,
            mean=mean.astype(np.float32), std=std.astype(np.float32),
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
    },
)
