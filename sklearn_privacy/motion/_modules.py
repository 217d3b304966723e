"""Torch modules and losses of the motion protectors.

Every module takes and returns windows in the channels-first layout ``(n, d, T)`` that
:mod:`torch.nn.Conv1d` expects; the estimators convert from and to tslearn's
``(n, T, d)``. Nothing here knows about scikit-learn.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AnonymizingAutoEncoder",
    "AuxiliaryClassifier",
    "ReplacementNetwork",
    "AdversarialModule",
    "published_privacy_loss",
    "uniform_privacy_loss",
    "entropy_privacy_loss",
    "PRIVACY_LOSSES",
    "reset_parameters",
]


class _EvenConv1d(nn.Conv1d):
    """Length-preserving convolution for an even kernel: ``k // 2 - 1`` zeros on the
    left, ``k // 2`` on the right (what ``padding="same"`` does, without its warning)."""

    def forward(self, x):
        k = self.kernel_size[0]
        return super().forward(F.pad(x, (k // 2 - 1, k // 2)))


class _EvenConvTranspose1d(nn.ConvTranspose1d):
    """Transposed convolution for an even kernel (built with ``padding = k // 2 - 1``),
    cropped on the right to ``stride`` times the input length: the adjoint of
    :class:`_EvenConv1d`'s padding."""

    def forward(self, x):
        return super().forward(x)[..., : self.stride[0] * x.shape[-1]]


def _conv1d(in_channels, out_channels, kernel_size):
    """Length-preserving 1-D convolution, for odd and even kernels."""
    if kernel_size % 2:
        return nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return _EvenConv1d(in_channels, out_channels, kernel_size)


def _conv_selu_bn(in_channels, out_channels, kernel_size, *, transposed=False, stride=1):
    """Convolution -> SELU -> batch norm, length preserving (or doubling when stride=2)."""
    padding = kernel_size // 2
    if transposed:
        # output_padding makes a stride-2 transposed conv exactly double the length
        # (for an odd kernel; an even one gives one sample more, cropped).
        odd = kernel_size % 2
        conv = (nn.ConvTranspose1d if odd else _EvenConvTranspose1d)(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding if odd else padding - 1,
            output_padding=stride - 1,
        )
    else:
        conv = _conv1d(in_channels, out_channels, kernel_size)
    return nn.Sequential(conv, nn.SELU(), nn.BatchNorm1d(out_channels))


class AnonymizingAutoEncoder(nn.Module):
    """Encoder-decoder of the anonymizing autoencoder (Malekzadeh et al., IoTDI 2019).

    Channels are processed independently with shared weights (the published
    ``(1, k)`` 2-D convolutions over a ``(d, T)`` image): the ``d`` channels are folded
    into the batch and every convolution is 1-D along time, which is the same map.

    Encoder: 4 convolutions of ``n_filters`` (kernel ``kernel_size``, SELU, batch norm)
    with a max-pool of 2 after the second and the fourth, then a 1-filter linear
    convolution: the latent has shape ``(d, T/4)``. Decoder: the mirror image with
    transposed convolutions (two of stride 2) and a final linear convolution.
    Windows whose length is not a multiple of 4 are padded (edge values repeated) and the
    output is cropped back.

    With ``task_bottleneck=(n_classes, n_channels, n_timestamps)`` the latent is
    squeezed through the task: a linear head maps the conv latent to ``n_classes``
    logits, and the decoder only sees a linear embedding of their softmax. The output
    then depends on the input through the task posterior alone (a re-synthesis of the
    activity), an option beyond the paper. With ``hard_bottleneck=True`` the decoder
    sees the one-hot predicted class instead (straight-through gradients in training),
    so the output depends on the input through the predicted label alone.

    Parameters
    ----------
    n_filters : int, default=100
    kernel_size : int, default=3
    latent_norm : bool, default=False
        Batch-normalise the latent without affine parameters, so that Gaussian noise
        added to it has a fixed scale the encoder cannot grow out of.
    task_bottleneck : tuple of 3 int or None, default=None
        ``(n_classes, n_channels, n_timestamps)`` to squeeze the latent through the task.
    hard_bottleneck : bool, default=False
        Decode from the one-hot predicted class rather than the posterior.
    task_head : {"linear", "cnn"}, default="linear"
        How the bottleneck predicts the task: ``"linear"`` reads the 1-filter latent of
        the per-channel encoder; ``"cnn"`` is an :class:`AuxiliaryClassifier` (of
        ``head_filters`` filters) on the whole window, which sees every channel jointly
        and is as strong as an activity app. Only used with ``task_bottleneck``.
    head_filters : int, default=64
        Filters of the ``"cnn"`` task head.
    """

    def __init__(self, n_filters=100, kernel_size=3, latent_norm=False, task_bottleneck=None,
                 hard_bottleneck=False, task_head="linear", head_filters=64):
        super().__init__()
        self.hard_bottleneck = bool(hard_bottleneck)
        if task_head not in ("linear", "cnn"):
            raise ValueError(f"task_head must be 'linear' or 'cnn', got {task_head!r}.")
        self.task_head = task_head
        f, k = n_filters, kernel_size
        # With a CNN task head the latent is rebuilt from the task prediction alone, so
        # the per-channel encoder would have nothing to contribute.
        self.encoder = None
        if task_bottleneck is None or task_head == "linear":
            self.encoder = nn.Sequential(
                _conv_selu_bn(1, f, k),
                _conv_selu_bn(f, f, k),
                nn.MaxPool1d(2),
                _conv_selu_bn(f, f, k),
                _conv_selu_bn(f, f, k),
                nn.MaxPool1d(2),
                _conv1d(f, 1, k),
            )
        self.latent_norm = nn.BatchNorm1d(1, affine=False) if latent_norm else None
        self.to_task = self.from_task = None
        if task_bottleneck is not None:
            n_classes, n_channels, n_timestamps = task_bottleneck
            width = n_channels * math.ceil(n_timestamps / 4)
            if task_head == "cnn":
                self.to_task = AuxiliaryClassifier(n_channels, [n_classes], head_filters)
            else:
                self.to_task = nn.Linear(width, n_classes)
            self.from_task = nn.Linear(n_classes, width)
        self.decoder = nn.Sequential(
            _conv_selu_bn(1, f, k, transposed=True),
            _conv_selu_bn(f, f, k, transposed=True, stride=2),
            _conv_selu_bn(f, f, k, transposed=True),
            _conv_selu_bn(f, f, k, transposed=True, stride=2),
            _conv1d(f, 1, k),
        )

    @staticmethod
    def _fold(x):
        n, d, t = x.shape
        return x.reshape(n * d, 1, t), n, d

    def encode(self, x):
        """Map ``(n, d, T)`` windows to ``(latent, task_logits)``.

        The latent has shape ``(n, d, ceil(T/4))``; ``task_logits`` is ``None`` without
        a task bottleneck.
        """
        n, d, t = x.shape
        logits = None
        if self.encoder is None:  # CNN task head: it reads the whole window
            logits = self.to_task(x)[0]
        else:
            t_pad = 4 * math.ceil(t / 4)
            if t_pad != t:
                x = F.pad(x, (0, t_pad - t), mode="replicate")
            z = self.encoder(self._fold(x)[0]).reshape(n, d, -1)
            if self.to_task is not None:
                logits = self.to_task(z.flatten(1))
        if logits is not None:
            code = torch.softmax(logits, dim=1)
            if self.hard_bottleneck:
                one_hot = F.one_hot(code.argmax(dim=1), code.shape[1]).to(code.dtype)
                # Straight-through: the forward value is exactly one-hot.
                code = one_hot + code - code.detach()
            z = self.from_task(code).reshape(n, d, -1)
        if self.latent_norm is not None:
            z = self.latent_norm(z.reshape(n * d, 1, -1)).reshape(n, d, -1)
        return z, logits

    def decode(self, z, n_timestamps):
        """Map latents back to windows of ``n_timestamps`` samples."""
        h, n, d = self._fold(z)
        return self.decoder(h).reshape(n, d, -1)[..., :n_timestamps]

    def forward(self, x, noise_std=0.0, generator=None):
        """Return ``(z, x_hat, task_logits)``; ``noise_std`` adds noise to the latent."""
        z, logits = self.encode(x)
        if noise_std > 0:
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + noise_std * noise
        return z, self.decode(z, x.shape[-1]), logits


class AuxiliaryClassifier(nn.Module):
    """Small 1-D CNN with dropout: an adversary or the task classifier.

    Three convolutions (ReLU, batch norm, max-pool), global average and max pooling
    (so any window length works, the latent's ``T/4`` as well as the output's ``T``),
    then a dense layer with dropout and one linear head per target.

    Parameters
    ----------
    in_channels : int
    n_outputs : sequence of int
        Number of classes of each head.
    n_filters : int, default=64
    dropout : float, default=0.5
    """

    def __init__(self, in_channels, n_outputs, n_filters=64, dropout=0.5):
        super().__init__()
        f = n_filters
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, f, 5, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(f),
            nn.MaxPool1d(2, ceil_mode=True),
            nn.Conv1d(f, f, 5, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(f),
            nn.MaxPool1d(2, ceil_mode=True),
            nn.Conv1d(f, f, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm1d(f),
        )
        self.dense = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * f, f), nn.ReLU(), nn.Dropout(dropout)
        )
        self.heads = nn.ModuleList(nn.Linear(f, int(k)) for k in n_outputs)

    def forward(self, x):
        """Return a list of logits, one ``(n, n_classes)`` tensor per head."""
        h = self.features(x)
        h = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        h = self.dense(h)
        return [head(h) for head in self.heads]


class AdversarialModule(nn.Module):
    """The anonymizer and its auxiliary classifiers, trained by two optimizers.

    Attributes
    ----------
    anonymizer : AnonymizingAutoEncoder
    adversaries_latent, adversaries_output : nn.ModuleList of AuxiliaryClassifier
        ``n_adversaries`` adversaries on the latent and on the output, each with one
        head per sensitive attribute.
    utility : AuxiliaryClassifier or None
        The task (activity) classifier on the output; ``None`` without task labels.
    """

    def __init__(
        self,
        n_channels,
        n_sensitive_classes,
        n_task_classes=None,
        *,
        n_filters=100,
        kernel_size=3,
        classifier_filters=64,
        dropout=0.5,
        n_adversaries=1,
        latent_noise=0.0,
        task_bottleneck_length=None,
        hard_bottleneck=False,
        task_head="linear",
    ):
        super().__init__()
        self.latent_noise = float(latent_noise)
        bottleneck = None
        if task_bottleneck_length is not None:
            bottleneck = (n_task_classes, n_channels, task_bottleneck_length)
        self.anonymizer = AnonymizingAutoEncoder(
            n_filters, kernel_size, latent_norm=self.latent_noise > 0, task_bottleneck=bottleneck,
            hard_bottleneck=hard_bottleneck, task_head=task_head,
            head_filters=classifier_filters,
        )

        def make(n_outputs):
            return AuxiliaryClassifier(n_channels, n_outputs, classifier_filters, dropout)

        self.adversaries_latent = nn.ModuleList(
            make(n_sensitive_classes) for _ in range(n_adversaries)
        )
        self.adversaries_output = nn.ModuleList(
            make(n_sensitive_classes) for _ in range(n_adversaries)
        )
        self.utility = make([n_task_classes]) if n_task_classes else None

    def classifiers(self):
        """The modules trained by the classifier optimizer."""
        mods = [*self.adversaries_latent, *self.adversaries_output]
        return mods + ([self.utility] if self.utility is not None else [])

    def forward(self, x, noise=None, generator=None):
        """Return ``(z, x_hat, task_logits)``; noise defaults to ``latent_noise`` in train mode."""
        if noise is None:
            noise = self.latent_noise if self.training else 0.0
        return self.anonymizer(x, noise_std=noise, generator=generator)


class ReplacementNetwork(nn.Module):
    """Autoencoder of the replacement autoencoder (Malekzadeh et al., IoTDI 2018).

    conv(64, k5) -> conv(32, k5) -> conv(1, k5) -> dense 256 -> 128 -> 256 -> dense T
    -> conv(32, k5) -> conv(64, k5) -> conv(d, k5, linear); SELU and batch norm after
    every hidden layer. About 154k parameters for 2 channels of 128 samples.

    Parameters
    ----------
    n_channels : int
    n_timestamps : int
    kernel_size : int, default=5
    """

    def __init__(self, n_channels, n_timestamps, kernel_size=5):
        super().__init__()
        k = kernel_size
        t = n_timestamps

        def dense(i, o):
            return nn.Sequential(nn.Linear(i, o), nn.SELU(), nn.BatchNorm1d(o))

        self.encoder = nn.Sequential(
            _conv_selu_bn(n_channels, 64, k),
            _conv_selu_bn(64, 32, k),
            _conv_selu_bn(32, 1, k),
            nn.Flatten(),
            dense(t, 256),
            dense(256, 128),
        )
        self.decoder = nn.Sequential(
            dense(128, 256),
            dense(256, t),
            nn.Unflatten(1, (1, t)),
            _conv_selu_bn(1, 32, k),
            _conv_selu_bn(32, 64, k),
            _conv1d(64, n_channels, k),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


# -- privacy losses --------------------------------------------------------------------
_EPS = 1e-7


def published_privacy_loss(logits, target):
    """``-log(1 - p[true]) - log(1 - max_k p[k])``, averaged over the batch.

    The loss of Malekzadeh et al. (IoTDI 2019): it pushes the probability of the true
    class towards 0 and flattens the adversary's most confident guess. Probabilities are
    clipped to ``[1e-7, 1 - 1e-7]``.

    Parameters
    ----------
    logits : Tensor of shape (n, n_classes)
    target : LongTensor of shape (n,)

    Returns
    -------
    loss : scalar Tensor
    """
    p = torch.softmax(logits, dim=1).clamp(_EPS, 1 - _EPS)
    p_true = p.gather(1, target[:, None])[:, 0]
    p_max = p.amax(dim=1)
    return (-torch.log1p(-p_true) - torch.log1p(-p_max)).mean()


def uniform_privacy_loss(logits, target=None):
    """Cross-entropy to the uniform posterior minus its minimum, ``KL(u || p)``.

    Zero exactly when the adversary's posterior is uniform. For two classes it is the
    binary cross-entropy to a constant 0.5 target (minus ``log 2``), the attribute
    variant of Malekzadeh et al. (2020).
    """
    log_p = torch.log_softmax(logits, dim=1)
    return (-log_p.mean(dim=1) - math.log(logits.shape[1])).mean()


def entropy_privacy_loss(logits, target=None):
    """``log K - H(p)`` = ``KL(p || u)``: maximises the adversary's entropy."""
    log_p = torch.log_softmax(logits, dim=1)
    neg_entropy = (log_p.exp() * log_p).sum(dim=1)
    return (neg_entropy + math.log(logits.shape[1])).mean()


PRIVACY_LOSSES = {
    "published": published_privacy_loss,
    "uniform": uniform_privacy_loss,
    "entropy": entropy_privacy_loss,
}


def reset_parameters(module):
    """Re-initialise every sub-module that has ``reset_parameters`` (a fresh network)."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    if hasattr(module, "reset_running_stats"):
        module.reset_running_stats()
