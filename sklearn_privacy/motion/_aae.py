"""Anonymizing autoencoder (AAE) of Malekzadeh et al., "Mobile sensor data anonymization",
ACM/IEEE IoTDI 2019, implemented from the paper's description.

The estimator :class:`MotionAnonymizer` standardises the windows, builds the networks of
:mod:`._modules` and trains them with :class:`_AdversarialNet`, a :class:`skorch.NeuralNet`
whose ``train_step`` alternates two optimizers: one for the anonymizer (encoder +
decoder), one for the auxiliary classifiers (adversaries and task classifier).
"""

import copy
import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import Callback, PassthroughScoring
from skorch.dataset import Dataset, unpack_data
from skorch.helper import predefined_split
from skorch.utils import to_tensor
from torch import nn

from ..base import BaseProtector
from ..utils._torch import (
    EpochProgress,
    draw_seed,
    progress_bar,
    validation_split,
)
from ..utils.estimator_checks import register_estimator_check_config
from ._modules import PRIVACY_LOSSES, AdversarialModule, reset_parameters

__all__ = ["MotionAnonymizer"]

#: Defaults each ``schedule`` gives to the parameters left to ``None``.
SCHEDULES = {
    "fast": {
        "n_rounds": 3,
        "classifier_epochs": 2,
        "anonymizer_epochs": 2,
        "alternate": True,
        "n_filters": 32,
        "classifier_filters": 32,
    },
    "faithful": {
        "n_rounds": 8,
        "classifier_epochs": 24,
        "anonymizer_epochs": 24,
        "alternate": False,
        "n_filters": 100,
        "classifier_filters": 64,
    },
}


# -- helpers shared with the replacement autoencoder ---------------------------------
def _output_dtype(X):
    """Floating dtype the output should have: float32 for float32 input, else float64."""
    dtype = getattr(X, "dtype", None)
    if dtype is None and hasattr(X, "dtypes"):  # DataFrame
        dtype = np.result_type(*X.dtypes)
    if dtype is not None and np.dtype(dtype) == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _channel_stats(X):
    """Per-channel mean and standard deviation of ``(n, T, d)`` windows."""
    mean = X.mean(axis=(0, 1), dtype=np.float64)
    scale = X.std(axis=(0, 1), dtype=np.float64)
    scale[scale < 1e-8 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, scale


def _to_channels_first(X, mean, scale):
    """Standardise ``(n, T, d)`` windows into a float32 ``(n, d, T)`` array."""
    return np.ascontiguousarray(((X - mean) / scale).astype(np.float32).transpose(0, 2, 1))


def _from_channels_first(out, mean, scale, dtype):
    """Inverse of :func:`_to_channels_first`."""
    return (out.transpose(0, 2, 1).astype(np.float64) * scale + mean).astype(dtype)


def _batched_transform(forward, X, mean, scale, batch_size, device, dtype):
    """Apply ``forward`` (standardised channels-first tensor -> tensor of the same
    shape) to ``(n, T, d)`` windows in batches, returning windows in input units.

    Each batch is standardised, run and mapped back on its own, straight into a
    preallocated output of ``dtype``: besides the output, memory holds one batch.
    """
    out = np.empty(X.shape, dtype=dtype)
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            stop = start + batch_size
            xb = torch.from_numpy(_to_channels_first(X[start:stop], mean, scale)).to(device)
            out[start:stop] = _from_channels_first(forward(xb).cpu().numpy(), mean, scale, dtype)
    return out


def _train_valid_split(y, groups, fraction, rng):
    """Indices ``(train, valid)``: the library's one validation rule, ``valid`` being
    ``None`` when ``fraction`` is ``None`` (no validation)."""
    if fraction is None:
        return np.arange(len(y)), None
    return validation_split(
        y, groups, fraction, draw_seed(rng), disable_hint="validation_fraction=None"
    )


class _DivergenceCheck(Callback):
    """Stop ``fit`` with a clear error once training diverges.

    After every epoch: every loss must be finite and the reconstruction errors
    ``mse_keys`` of the history, in standardised units (1 for an output of zeros), at
    most ``_MAX_RECONSTRUCTION_MSE``, i.e. outputs within about a thousand standard
    deviations of their targets. A learning rate far too large breaks this within an
    epoch or two; such a model would otherwise be returned and give NaN or absurd
    windows in ``transform``.
    """

    def __init__(self, estimator, lr, mse_keys):
        self.estimator = estimator
        self.lr = lr
        self.mse_keys = mse_keys

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        for key in ("train_loss", "valid_loss", *self.mse_keys):
            value = row.get(key)
            if value is None:
                continue
            exploded = key in self.mse_keys and value > _MAX_RECONSTRUCTION_MSE
            if np.isfinite(value) and not exploded:
                continue
            raise ValueError(
                f"{self.estimator} diverged in epoch {len(net.history)} of training: "
                f"{key} = {value:.3g} (standardised units). The learning rate lr={self.lr} "
                "is too large for this model and data; use a smaller lr (the default is "
                "1e-3)."
            )


#: Reconstruction MSE (standardised units) above which training has diverged.
_MAX_RECONSTRUCTION_MSE = 1e6


def _encode_labels(values, what):
    """Classes and integer codes of one column of class labels."""
    kind = type_of_target(values, input_name=what)
    if kind == "unknown":
        raise ValueError(f"Unknown label type in {what}: expected class labels.")
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"{what} must hold class labels (binary or multiclass); got {kind!r} values. "
            "Discretise a continuous attribute first (e.g. with KBinsDiscretizer)."
        )
    return np.unique(values, return_inverse=True)


def _balanced_weights(codes, n_classes):
    """``n / (k * count)`` per class (0 for classes absent from ``codes``)."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = codes.shape[0] / (present.sum() * counts[present])
    return weights.astype(np.float32)


def _decay_groups(modules, weight_decay):
    """Adam parameter groups: L2 on kernels only (not on biases or batch norm)."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.ndim > 1 else no_decay).append(p)
    # Keras' ``l2(c)`` adds ``c * ||w||^2`` to the loss: a gradient of ``2 c w``.
    return [
        {"params": decay, "weight_decay": 2.0 * weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# -- skorch machinery ---------------------------------------------------------------------
class _AdversarialNet(NeuralNet):
    """skorch net that trains the anonymizer against its classifiers.

    ``phase`` selects what :meth:`train_step` does with each batch:

    - ``"classifiers"``: the anonymizer is frozen (eval mode); the adversaries and the
      task classifier take one step on its outputs (class-weighted cross-entropy).
    - ``"anonymizer"``: the classifiers are frozen (eval mode); the encoder and decoder
      take one step on the anonymizer loss.
    - ``"alternate"``: one classifier step, then one anonymizer step, on every batch.

    Targets are packed as an int64 array ``(n, 1 + n_attributes)``: the task label
    (``-1`` when there is none), then one code per sensitive attribute.
    """

    def __init__(
        self,
        module,
        *args,
        privacy_loss="published",
        loss_weights=(0.01, 1.0, 1.0, 2.0),
        task_class_weight=None,
        sensitive_class_weights=(),
        weight_decay=0.0,
        phase="classifiers",
        **kwargs,
    ):
        super().__init__(module, *args, **kwargs)
        self.privacy_loss = privacy_loss
        self.loss_weights = loss_weights
        self.task_class_weight = task_class_weight
        self.sensitive_class_weights = sensitive_class_weights
        self.weight_decay = weight_decay
        self.phase = phase

    # optimizers: one for the anonymizer (``optimizer_``, so ``lr`` keeps its skorch
    # meaning), one for all the classifiers.
    def initialize_optimizer(self, *_, **__):
        self.optimizer_ = self.optimizer(
            _decay_groups([self.module_.anonymizer], self.weight_decay), lr=self.lr
        )
        self.optimizer_classifiers_ = self.optimizer(
            _decay_groups(self.module_.classifiers(), self.weight_decay), lr=self.lr
        )
        return self

    def reset_classifiers(self):
        """Fresh classifiers: new initial weights and an empty optimizer state."""
        for clf in self.module_.classifiers():
            reset_parameters(clf)
        self.optimizer_classifiers_.state.clear()

    # -- losses ---------------------------------------------------------------------
    def _weights(self, device):
        # Built per batch (tiny arrays): cached tensors would be pickled with the net
        # and could pin it to a CUDA device.
        task = self.task_class_weight
        task = None if task is None else torch.as_tensor(task, device=device)
        sens = [
            None if w is None else torch.as_tensor(w, device=device)
            for w in self.sensitive_class_weights
        ]
        return task, sens

    def _classifier_outputs(self, z, x_hat):
        m = self.module_
        lat = [adv(z) for adv in m.adversaries_latent]
        out = [adv(x_hat) for adv in m.adversaries_output]
        util = m.utility(x_hat)[0] if m.utility is not None else None
        return lat, out, util

    @staticmethod
    def _accuracy(logits, target):
        return (logits.argmax(dim=1) == target).float().mean().item()

    def _scores(self, lat, out, util, y):
        """Accuracies: per classifier network (for early stopping) and per role."""
        s = y[:, 1:]
        per_net = []
        for heads in [*lat, *out]:
            per_net.append(np.mean([self._accuracy(h, s[:, j]) for j, h in enumerate(heads)]))
        if util is not None:
            per_net.append(self._accuracy(util, y[:, 0]))
        n_adv = len(lat)
        scores = {
            "adv_latent_acc": float(np.mean(per_net[:n_adv])),
            "adv_output_acc": float(np.mean(per_net[n_adv : 2 * n_adv])),
        }
        if util is not None:
            scores["utility_acc"] = per_net[-1]
        scores.update({f"acc_clf{i}": acc for i, acc in enumerate(per_net)})
        return scores

    def _classifier_loss(self, lat, out, util, y):
        task_w, sens_w = self._weights(y.device)
        s = y[:, 1:]
        loss = 0.0
        for heads in [*lat, *out]:
            for j, h in enumerate(heads):
                loss = loss + F.cross_entropy(h, s[:, j], weight=sens_w[j])
        if util is not None:
            loss = loss + F.cross_entropy(util, y[:, 0], weight=task_w)
        return loss

    def _anonymizer_loss(self, x, x_hat, lat, out, util, task_logits, y):
        w_rec, w_lat, w_out, w_util = self.loss_weights
        privacy = PRIVACY_LOSSES[self.privacy_loss]
        s = y[:, 1:]

        def priv(ensemble):
            per_member = [
                sum(privacy(h, s[:, j]) for j, h in enumerate(heads)) for heads in ensemble
            ]
            return sum(per_member) / len(per_member)

        rec = F.mse_loss(x_hat, x)
        loss = w_rec * rec + w_lat * priv(lat) + w_out * priv(out)
        if util is not None:
            loss = loss + w_util * F.cross_entropy(util, y[:, 0])
        if task_logits is not None:  # the task bottleneck is trained on the task too
            loss = loss + w_util * F.cross_entropy(task_logits, y[:, 0])
        return loss, rec

    def _record(self, prefix, scores):
        for key, value in scores.items():
            self.history.record_batch(f"{prefix}_{key}", float(value))

    # -- steps ----------------------------------------------------------------------
    def _classifier_step(self, z, x_hat, y):
        for clf in self.module_.classifiers():
            clf.train()
        lat, out, util = self._classifier_outputs(z.detach(), x_hat.detach())
        loss = self._classifier_loss(lat, out, util, y)
        self.optimizer_classifiers_.zero_grad()
        loss.backward()
        self.optimizer_classifiers_.step()
        return loss, self._scores(lat, out, util, y)

    def train_step(self, batch, **fit_params):
        Xi, yi = unpack_data(batch)
        x = to_tensor(Xi, device=self.device)
        y = to_tensor(yi, device=self.device)
        m = self.module_
        m.train()
        if self.phase == "classifiers":
            m.anonymizer.eval()
            with torch.no_grad():
                z, x_hat, _ = m(x, noise=m.latent_noise)
            loss, scores = self._classifier_step(z, x_hat, y)
            scores["rec_mse"] = F.mse_loss(x_hat, x).item()
            self._record("train", scores)
            return {"loss": loss.detach(), "y_pred": x_hat}
        if self.phase not in ("anonymizer", "alternate"):
            raise ValueError(f"unknown phase {self.phase!r}")

        z, x_hat, task_logits = m(x)
        if self.phase == "alternate":
            self._classifier_step(z, x_hat, y)
        classifiers = m.classifiers()
        for clf in classifiers:
            clf.eval()
            clf.requires_grad_(False)
        try:
            lat, out, util = self._classifier_outputs(z, x_hat)
            loss, rec = self._anonymizer_loss(x, x_hat, lat, out, util, task_logits, y)
            self.optimizer_.zero_grad()
            loss.backward()
            self.optimizer_.step()
        finally:
            for clf in classifiers:
                clf.requires_grad_(True)
        scores = self._scores(lat, out, util, y)
        scores["rec_mse"] = rec.item()
        self._record("train", scores)
        return {"loss": loss.detach(), "y_pred": x_hat.detach()}

    def validation_step(self, batch, **fit_params):
        Xi, yi = unpack_data(batch)
        x = to_tensor(Xi, device=self.device)
        y = to_tensor(yi, device=self.device)
        self.module_.eval()
        with torch.no_grad():
            z, x_hat, task_logits = self.module_(x)
            lat, out, util = self._classifier_outputs(z, x_hat)
            loss, rec = self._anonymizer_loss(x, x_hat, lat, out, util, task_logits, y)
        scores = self._scores(lat, out, util, y)
        scores["rec_mse"] = rec.item()
        self._record("valid", scores)
        return {"loss": loss, "y_pred": x_hat}


class _ClassifierEarlyStopping(Callback):
    """Early stopping of the classifier phase on validation accuracy.

    Each classifier keeps its best weights; the phase stops once none of them improved
    for ``patience`` epochs, and every classifier gets its best weights back.
    """

    def __init__(self, patience):
        self.patience = patience

    def on_train_begin(self, net, **kwargs):
        n = len(net.module_.classifiers())
        self.best_ = [-np.inf] * n
        self.misses_ = [0] * n
        self.states_ = [None] * n

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if net.phase != "classifiers" or dataset_valid is None:
            return
        row = net.history[-1]
        for i, clf in enumerate(net.module_.classifiers()):
            acc = row.get(f"valid_acc_clf{i}", -np.inf)
            if acc > self.best_[i]:
                self.best_[i], self.misses_[i] = acc, 0
                self.states_[i] = copy.deepcopy(clf.state_dict())
            else:
                self.misses_[i] += 1
        if min(self.misses_) >= self.patience:
            raise KeyboardInterrupt  # skorch ends the fit loop quietly

    def on_train_end(self, net, **kwargs):
        if net.phase != "classifiers":
            return
        for clf, state in zip(net.module_.classifiers(), self.states_):
            if state is not None:
                clf.load_state_dict(state)


#: Scores shown by the progress bar (history key, short name).
_PROGRESS_KEYS = (
    ("adv_latent_acc", "lat"), ("adv_output_acc", "out"), ("utility_acc", "util"),
    ("rec_mse", "mse"), ("loss", "loss"),
)


_SCORE_KEYS = ("adv_latent_acc", "adv_output_acc", "utility_acc", "rec_mse")
_HISTORY_NAMES = (
    ("adv_latent_acc", "adversary_latent_accuracy"),
    ("adv_output_acc", "adversary_output_accuracy"),
    ("utility_acc", "utility_accuracy"),
    ("rec_mse", "reconstruction_mse"),
)


# -- the estimator --------------------------------------------------------------------------
class MotionAnonymizer(BaseProtector):
    """Anonymizing autoencoder (AAE): hide who (or what attribute) while keeping the activity.

    An encoder-decoder is trained against adversaries that try to infer the sensitive
    labels from its latent code and from its output, while a task classifier on the
    output keeps the activity recognisable (Malekzadeh et al., IoTDI 2019; the attribute
    variant of 2020 with ``privacy_loss="uniform"``). The anonymizer minimises::

        reconstruction_weight * MSE(x_hat, x)
        + latent_weight * privacy(adversary_latent(z))
        + output_weight * privacy(adversary_output(x_hat))
        + utility_weight * CE(task_classifier(x_hat), y)

    Windows are standardised per channel with the training mean and standard deviation
    inside the estimator; :meth:`transform` returns windows in the input's units, shape
    and layout. Training runs in skorch with two optimizers (anonymizer; classifiers).

    Parameters
    ----------
    schedule : {"fast", "faithful"}, default="fast"
        Training profile; it supplies the value of every parameter below left to ``None``.

        - ``"faithful"``: the published schedule and widths: 8 rounds; each round
          trains the classifiers (warm-started, up to 24 epochs, early stopping on
          validation accuracy with ``patience``, class weights) and then the encoder
          and decoder for 24 epochs with the classifiers frozen; ``n_filters=100``,
          ``classifier_filters=64``. Meant for a GPU: up to 384 epochs in all, which
          takes hours on a CPU for the full HAPT data (15k windows).
        - ``"fast"`` (default): 3 rounds of 2 classifier epochs then 2 anonymizer
          epochs in which the classifiers keep learning on every batch
          (``alternate=True``); ``n_filters=32``, ``classifier_filters=32``. Minutes
          on a CPU for the full HAPT data (15k windows of 2 x 128 samples).

        Beyond the paper, the options ``reset_adversaries_each_round``,
        ``privacy_loss="entropy"``, ``reconstruction_weight=0`` and
        ``task_bottleneck`` lowered the identity accuracy of an adaptive attacker in
        our HAPT experiments (see the issue report); they are off by default.

    n_rounds : int, default=None
        Rounds of (classifier phase, anonymizer phase).
    classifier_epochs : int, default=None
        Maximum epochs of each classifier phase (early stopping with ``patience``).
    anonymizer_epochs : int, default=None
        Epochs of each anonymizer phase.
    alternate : bool, default=None
        In the anonymizer phase, also take one classifier step on every batch, so the
        adversaries follow the anonymizer instead of staying frozen.
    n_filters : int, default=None
        Filters of the encoder and decoder convolutions (published: 100).
    kernel_size : int, default=3
        Temporal kernel of the encoder and decoder (odd or even).
    classifier_filters : int, default=None
        Filters of the auxiliary classifiers (adversaries and task classifier); 64 in
        ``"faithful"``, 32 in ``"fast"``.
    dropout : float, default=0.5
        Dropout of the auxiliary classifiers.
    reconstruction_weight, latent_weight, output_weight, utility_weight : float
        Loss weights, defaults ``0.01, 1, 1, 2`` (published). The tiny reconstruction
        weight lets outputs move far from inputs (only an app retrained on anonymized
        data keeps its accuracy).
    privacy_loss : {"published", "uniform", "entropy"}, default="published"
        ``"published"``: ``-log(1 - p[true]) - log(1 - max_k p[k])`` (probabilities
        clipped to [1e-7, 1 - 1e-7]); ``"uniform"``: cross-entropy to the uniform
        posterior (binary cross-entropy to 0.5 for two classes), as ``KL(u || p)``;
        ``"entropy"``: ``log K - H(p)``, maximising the adversary's entropy.
    reset_adversaries_each_round : bool, default=False
        Re-initialise the classifiers at the start of every round after the first, so
        the anonymizer faces fresh adversaries rather than overfitting stale ones.
    n_adversaries : int, default=1
        Independently initialised adversaries on the latent and on the output; the
        privacy loss is averaged over them.
    latent_noise : float, default=0.0
        Standard deviation of Gaussian noise added during training to the latent,
        which is then batch-normalised (no affine) so the noise has a fixed scale.
    noise_at_transform : bool, default=False
        Also add the latent noise in :meth:`transform`, drawn as ``noise_random_state``
        says.
    noise_random_state : int or None, default=None
        Source of the latent noise of :meth:`transform` (with ``noise_at_transform``).
        ``None`` (the only setting that protects): fresh noise from operating-system
        entropy on every call, never stored in the estimator or its pickle. An int
        gives every call the same noise, for reproducible experiments only: **unsafe
        for protection**, since anyone who knows the seed can regenerate the noise.
        ``random_state`` seeds training only.
    task_bottleneck : bool or {"soft", "hard"}, default=False
        Squeeze the latent through the task: the encoder predicts the task (activity)
        and the decoder only sees a linear embedding of that prediction, so the output
        is a re-synthesis of the activity. ``True`` or ``"soft"``: the decoder sees the
        posterior, so the output depends on the input through the posterior alone.
        ``"hard"``: it sees the one-hot predicted class (straight-through gradients),
        so the output is one learned window per predicted activity and carries nothing
        about the input beyond that label; privacy is then bounded by what the
        activity says about the person, at the price of any other use of the data.
        Requires ``y``; the encoder's task head is trained with the ``utility_weight``
        cross-entropy.
    task_head : {"linear", "cnn"}, default="linear"
        The task predictor of the bottleneck (needs ``task_bottleneck``). ``"linear"``
        reads the latent of the per-channel encoder. ``"cnn"`` replaces the encoder by
        a convolutional classifier of ``classifier_filters`` filters over all channels
        jointly (the architecture of the adversaries), so the re-synthesised activity is
        as accurate as an activity app: with ``task_bottleneck="hard"`` the utility of
        the output is the head's own activity accuracy.
    patience : int, default=6
        Early-stopping patience (epochs) of the classifier phases.
    validation_fraction : float or None, default=0.1
        Share of the *training* data held out to early-stop the classifiers and to
        report accuracies in ``history_``; whole recordings when ``groups`` is given to
        :meth:`fit`. ``None`` trains on everything without early stopping.
    class_weight : {"balanced"} or None, default="balanced"
        Class weights of the classifiers' cross-entropy.
    lr : float, default=1e-3
        Adam learning rate of both optimizers.
    weight_decay : float, default=1e-3
        L2 penalty ``weight_decay * ||w||^2`` on the kernels (published 1e-3).
    batch_size : int, default=128
        Training batch size, and batch size of :meth:`transform` (bounded memory).
    device : str, default="auto"
        Torch device; ``"auto"`` picks CUDA when available (else the CPU); an explicit
        ``"cuda"`` without CUDA is an error at :meth:`fit`.
    random_state : int, RandomState instance or None, default=None
        Seeds numpy and torch in training (weights, batches, splits, training noise)
        through local generators: fitting leaves the global numpy and torch random
        state unchanged. It does not seed the noise of :meth:`transform` (see
        ``noise_random_state``).
    verbose : int, default=0
        Show a progress bar over the epochs of all rounds.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained networks (trimmed for prediction); ``net_.module_.anonymizer`` is
        the encoder-decoder.
    history_ : list of dict
        One entry per round with the validation (or training) accuracies of the latent
        adversary, the output adversary and the task classifier at the end of the
        classifier phase (``adversary_latent_accuracy``, ...) and at the end of the
        anonymizer phase (``fooled_adversary_latent_accuracy``, ...), the reconstruction
        MSE (standardised units) and the number of epochs run.
    classes_ : ndarray or None
        Task (activity) classes; ``None`` when fitted without ``y``.
    sensitive_classes_ : ndarray or list of ndarray
        Classes of the sensitive attribute (a list, one per column, for 2-D input).
    mean_, scale_ : ndarray of shape (n_channels,)
        Per-channel standardisation learned from the training windows.
    device_ : str
        Device used.
    n_features_in_, n_timestamps_in_, n_channels_in_ : int
        Flattened width, window length and channels seen in fit.

    See Also
    --------
    ReplacementAutoEncoder : replaces sensitive activities by neutral ones.

    Notes
    -----
    The privacy of such an anonymizer must be measured with an *adaptive* attacker,
    retrained on anonymized data: the published figures used a static attacker trained
    on raw data, and the authors' own in-training adversary still reached about 79 %
    identity accuracy on anonymized data.

    One exploratory run on HAPT (10 people, ``|acc|`` and ``|gyro|`` windows with step
    32; anonymizer and attacker trained on each person's first recording, attacker
    tested on the second; a 1-D CNN attacker retrained on anonymized windows; the
    activity app retrained on anonymized windows and tested on 6 unseen people; one
    seed): identity accuracy 37 % raw, 24 % with the defaults, 15 % with
    ``task_bottleneck=True, reset_adversaries_each_round=True, privacy_loss="entropy",
    reconstruction_weight=0, n_rounds=4, anonymizer_epochs=3, classifier_filters=64``
    (chance 10 %; an attacker who knows only the activity reaches 12 %), for an
    activity macro-F1 of 86 (raw), 87 and 84.

    The benchmark (``benchmarks/results/motion_privacy.md``: all 30 HAPT people, windows
    of 128 samples with step 64, attackers retrained on protected data of each person's
    other recording) shows why a second attacker family matters: with the defaults a
    CNN attacker falls from 14 % to 5 % per window, but a feature attacker
    (:func:`~sklearn_privacy.adversaries.make_feature_attacker` with extremely
    randomised trees) still reaches 25 % (31 % on raw data). With
    ``task_bottleneck="hard"`` both stay at chance level (4-5 % per window, 3-8 % per
    recording; chance 4 %), at an activity macro-F1 of 0.76 against 0.81 raw; adding
    ``task_head="cnn", anonymizer_epochs=4`` keeps them there (3.4 % / 6.6 % for the
    CNN, 3.8 % / 3.3 % for the feature attacker) and lifts the macro-F1 to 0.83, as
    the head is a slightly stronger activity classifier than the benchmark's app.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import MotionAnonymizer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(64, 16, 2))
    >>> y, who = rng.randint(0, 2, 64), rng.randint(0, 3, 64)
    >>> aae = MotionAnonymizer(n_rounds=1, classifier_epochs=1, anonymizer_epochs=1,
    ...                        n_filters=4, classifier_filters=4, random_state=0)
    >>> aae.fit_transform(X, y, sensitive_features=who).shape
    (64, 16, 2)
    """

    _parameter_constraints = {
        "schedule": [StrOptions(set(SCHEDULES))],
        "n_rounds": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "classifier_epochs": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "anonymizer_epochs": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "alternate": ["boolean", None],
        "n_filters": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "classifier_filters": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "reconstruction_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "latent_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "output_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "utility_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "privacy_loss": [StrOptions(set(PRIVACY_LOSSES))],
        "reset_adversaries_each_round": ["boolean"],
        "n_adversaries": [Interval(numbers.Integral, 1, None, closed="left")],
        "latent_noise": [Interval(numbers.Real, 0, None, closed="left")],
        "noise_at_transform": ["boolean"],
        "noise_random_state": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "task_bottleneck": ["boolean", StrOptions({"soft", "hard"})],
        "task_head": [StrOptions({"linear", "cnn"})],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "class_weight": [StrOptions({"balanced"}), None],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        schedule="fast",
        n_rounds=None,
        classifier_epochs=None,
        anonymizer_epochs=None,
        alternate=None,
        n_filters=None,
        kernel_size=3,
        classifier_filters=None,
        dropout=0.5,
        reconstruction_weight=0.01,
        latent_weight=1.0,
        output_weight=1.0,
        utility_weight=2.0,
        privacy_loss="published",
        reset_adversaries_each_round=False,
        n_adversaries=1,
        latent_noise=0.0,
        noise_at_transform=False,
        noise_random_state=None,
        task_bottleneck=False,
        task_head="linear",
        patience=6,
        validation_fraction=0.1,
        class_weight="balanced",
        lr=1e-3,
        weight_decay=1e-3,
        batch_size=128,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.schedule = schedule
        self.n_rounds = n_rounds
        self.classifier_epochs = classifier_epochs
        self.anonymizer_epochs = anonymizer_epochs
        self.alternate = alternate
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.classifier_filters = classifier_filters
        self.dropout = dropout
        self.reconstruction_weight = reconstruction_weight
        self.latent_weight = latent_weight
        self.output_weight = output_weight
        self.utility_weight = utility_weight
        self.privacy_loss = privacy_loss
        self.reset_adversaries_each_round = reset_adversaries_each_round
        self.n_adversaries = n_adversaries
        self.latent_noise = latent_noise
        self.noise_at_transform = noise_at_transform
        self.noise_random_state = noise_random_state
        self.task_bottleneck = task_bottleneck
        self.task_head = task_head
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _resolved(self, name):
        value = getattr(self, name)
        return SCHEDULES[self.schedule][name] if value is None else value

    _y_usage = "optional"
    _y_min_classes = 2

    def fit(self, X, y=None, *, sensitive_features=None, groups=None):
        """Train the anonymizer against adversaries of ``sensitive_features``.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Training windows.
        y : array-like of shape (n_windows,), default=None
            Task labels (the activity) the output must keep, at least 2 classes.
            Without them the task classifier and its loss term are dropped, with a
            warning.
        sensitive_features : array-like of shape (n_windows,) or (n_windows, n_attributes)
            What must be hidden: identity, or categorical attributes (one adversary head
            per column). Required; requested through metadata routing by default.
        groups : array-like of shape (n_windows,), default=None
            Recording (or session, or chunk) ids: the validation split holds out whole
            groups, so overlapping windows never straddle it; 2-D groups (e.g. the rows
            of :func:`~sklearn_privacy.model_selection.window_groups`) make each distinct
            row one group. Groups holding the last training windows of a sensitive
            class are not held out (an adversary is validated only on people it trained
            on); when no group can be held out this is an error: pass finer groups or
            ``validation_fraction=None``. Not requested by default in routing (use
            ``set_fit_request(groups=True)``).

        Returns
        -------
        self : MotionAnonymizer
        """
        return self._fit_template(X, y, sensitive_features, groups=groups)

    def _fit(self, X3, y, sensitive_features, *, rng, groups=None):
        if self.task_head != "linear" and not self.task_bottleneck:
            raise ValueError(
                f"task_head={self.task_head!r} is the predictor of the task bottleneck; "
                "set task_bottleneck=True, 'soft' or 'hard' as well."
            )
        n = X3.shape[0]
        y_codes, sens_codes = self._encode_targets(y, sensitive_features, n)
        if y is None:
            warnings.warn(
                "MotionAnonymizer is fitted without y: nothing keeps the task (activity) "
                "recognisable in its output. Pass the task labels as y to keep it.",
                UserWarning,
            )
        self.mean_, self.scale_ = _channel_stats(X3)
        Xs = _to_channels_first(X3, self.mean_, self.scale_)
        targets = np.column_stack([y_codes, *sens_codes]).astype(np.int64)
        train, valid = _train_valid_split(sens_codes[0], groups, self.validation_fraction, rng)
        n_rounds = self._resolved("n_rounds")
        epochs_per_round = self._resolved("classifier_epochs") + self._resolved("anonymizer_epochs")
        with progress_bar(
            n_rounds * epochs_per_round, desc="MotionAnonymizer", verbose=self.verbose
        ) as bar:
            net = self._make_net(Xs, targets, train, valid, bar)
            self.history_ = [
                self._run_round(net, r, Xs[train], targets[train], valid is not None)
                for r in range(n_rounds)
            ]
        net.trim_for_prediction()
        self.net_ = net
        return self

    def _encode_targets(self, y, sensitive_features, n):
        """Set ``classes_`` and ``sensitive_classes_``; return the integer codes."""
        s = self._check_sensitive(sensitive_features, n, name="MotionAnonymizer")
        sens_classes, sens_codes = [], []
        for j, column in enumerate(s.reshape(n, -1).T):
            classes, codes = _encode_labels(column, "sensitive_features")
            if classes.shape[0] < 2:
                raise ValueError(
                    "Each column of sensitive_features needs at least 2 classes; column "
                    f"{j} has 1 class ({classes.tolist()}): there is nothing to hide."
                )
            sens_classes.append(classes)
            sens_codes.append(codes)
        self.sensitive_classes_ = sens_classes[0] if s.ndim == 1 else sens_classes
        if y is not None:
            self.classes_, y_codes = _encode_labels(y, "y")
        elif self.task_bottleneck:
            raise ValueError(
                f"task_bottleneck={self.task_bottleneck!r} needs the task labels y in fit."
            )
        else:
            self.classes_, y_codes = None, np.full(n, -1)
        return y_codes, sens_codes

    def _make_net(self, Xs, targets, train, valid, bar):
        """The initialised :class:`_AdversarialNet` with its modules and callbacks."""
        n_task = None if self.classes_ is None else self.classes_.shape[0]
        sensitive_classes = (
            self.sensitive_classes_
            if isinstance(self.sensitive_classes_, list)
            else [self.sensitive_classes_]
        )
        n_sensitive = [k.shape[0] for k in sensitive_classes]
        task_w = sens_w = None
        if self.class_weight == "balanced":
            if n_task:
                task_w = _balanced_weights(targets[train, 0], n_task)
            sens_w = [
                _balanced_weights(targets[train, 1 + j], k) for j, k in enumerate(n_sensitive)
            ]
        module_kwargs = {
            "n_channels": self.n_channels_in_,
            "n_sensitive_classes": n_sensitive,
            "n_task_classes": n_task,
            "n_filters": self._resolved("n_filters"),
            "kernel_size": self.kernel_size,
            "classifier_filters": self._resolved("classifier_filters"),
            "dropout": self.dropout,
            "n_adversaries": self.n_adversaries,
            "latent_noise": self.latent_noise,
            "task_bottleneck_length": self.n_timestamps_in_ if self.task_bottleneck else None,
            "hard_bottleneck": self.task_bottleneck == "hard",
            "task_head": self.task_head,
        }
        n_classifiers = 2 * self.n_adversaries + 1
        score_callbacks = [
            (f"{prefix}_{key}", PassthroughScoring(f"{prefix}_{key}", on_train=prefix == "train"))
            for prefix in ("train", "valid")
            for key in (*_SCORE_KEYS, *(f"acc_clf{i}" for i in range(n_classifiers)))
        ]
        n_train = train.shape[0]
        net = _AdversarialNet(
            AdversarialModule,
            criterion=nn.MSELoss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=1,
            train_split=(
                None if valid is None else predefined_split(Dataset(Xs[valid], targets[valid]))
            ),
            callbacks=[
                *score_callbacks,
                ("early_stopping", _ClassifierEarlyStopping(self.patience)),
                ("progress", EpochProgress(bar, _PROGRESS_KEYS)),
                ("divergence", _DivergenceCheck(
                    "MotionAnonymizer", self.lr, ("train_rec_mse", "valid_rec_mse"))),
            ],
            iterator_train__shuffle=True,
            # A last batch of one window would break batch norm on short windows.
            iterator_train__drop_last=n_train > self.batch_size
            and n_train % self.batch_size == 1,
            device=self.device_,
            verbose=0,
            privacy_loss=self.privacy_loss,
            loss_weights=(
                self.reconstruction_weight,
                self.latent_weight,
                self.output_weight,
                self.utility_weight,
            ),
            task_class_weight=task_w,
            sensitive_class_weights=sens_w or [None] * len(n_sensitive),
            weight_decay=self.weight_decay,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
        )
        return net.initialize()

    def _run_round(self, net, r, X_train, y_train, validated):
        """One round: classifier phase, then anonymizer phase; returns its history entry."""
        if r > 0 and self.reset_adversaries_each_round:
            net.reset_classifiers()
        prefix = "valid" if validated else "train"
        anonymizer_phase = "alternate" if self._resolved("alternate") else "anonymizer"
        entry = {"round": r}
        for phase, epochs, tag in [
            ("classifiers", self._resolved("classifier_epochs"), ""),
            (anonymizer_phase, self._resolved("anonymizer_epochs"), "fooled_"),
        ]:
            if epochs == 0:
                continue
            net.phase = phase
            start = len(net.history)
            net.partial_fit(X_train, y_train, epochs=epochs)
            row = net.history[-1]
            key = "classifier_epochs" if phase == "classifiers" else "anonymizer_epochs"
            entry[key] = len(net.history) - start
            for score, name in _HISTORY_NAMES:
                if f"{prefix}_{score}" in row:
                    entry[tag + name] = float(row[f"{prefix}_{score}"])
            if phase != "classifiers":
                entry["anonymizer_loss"] = float(row[f"{prefix}_loss"])
        entry["scored_on"] = "validation" if validated else "training"
        return entry

    def transform(self, X):
        """Anonymize windows, in batches of ``batch_size``.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)

        Returns
        -------
        X_anonymized : ndarray of the same shape and layout as ``X``
            In the input's units; float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self, "net_")
        X3 = self._validate_motion(X, reset=False)
        device = self.device_
        anonymizer = self.net_.module_.anonymizer.to(device).eval()
        noise = self.latent_noise if self.noise_at_transform else 0.0
        generator = None
        if noise > 0:
            seed = self.noise_random_state
            if seed is None:  # fresh OS entropy on every call, never stored
                seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
            generator = torch.Generator(device=device).manual_seed(int(seed))
        Xt = _batched_transform(
            lambda xb: anonymizer(xb, noise_std=noise, generator=generator)[1],
            X3, self.mean_, self.scale_, self.batch_size, device, _output_dtype(X),
        )
        return self._restore_motion(Xt, X)

    # Pickling: skorch saves ``net_``'s torch state and maps it to the CPU when CUDA is
    # gone; ``BaseProtector`` (TorchPickleMixin) then sets ``device_`` to "cpu".

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_NEEDS_SENSITIVE = (
    "fit requires sensitive_features (what to hide), which scikit-learn's checks never "
    "pass; MotionAnonymizer raises a clear ValueError instead of guessing them (it must "
    "not use y as the identity). With sensitive_features supplied the check passes."
)

register_estimator_check_config(
    "MotionAnonymizer",
    fast_params=dict(
        n_filters=2,
        classifier_filters=2,
        n_rounds=1,
        classifier_epochs=1,
        anonymizer_epochs=1,
        batch_size=32,
        device="cpu",
        random_state=0,
    ),
    expected_failed_checks={
        check: _NEEDS_SENSITIVE
        for check in (
            "check_dict_unchanged",
            "check_dont_overwrite_parameters",
            "check_dtype_object",
            "check_estimators_dtypes",
            "check_estimators_fit_returns_self",
            "check_estimators_nan_inf",
            "check_estimators_overwrite_params",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_fit2d_1feature",
            "check_fit2d_1sample",
            "check_fit2d_predict1d",
            "check_fit_check_is_fitted",
            "check_fit_idempotent",
            "check_fit_score_takes_y",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_n_features_in",
            "check_n_features_in_after_fitting",
            "check_pipeline_consistency",
            "check_positive_only_tag_during_fit",
            "check_readonly_memmap_input",
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
        )
    },
)
