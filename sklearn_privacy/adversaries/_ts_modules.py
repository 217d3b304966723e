"""Torch modules of the time-series attackers: plain CNN, ResNet and InceptionTime.

Every network maps *raw* ``(N, T, d)`` windows to logits: the per-channel
standardisation learned on the training windows is a buffer of the module, and the
training-time augmentation (:func:`augment_windows`) runs inside ``forward`` only while
the module is in training mode, so the fitted module in eval mode is deterministic and
differentiable end to end.

- ``"plain"``: conv -> batch norm -> ReLU -> dropout blocks, max-pool of 2 between
  blocks (the library's original network).
- ``"resnet"``: the fully convolutional residual network for time series of Wang, Yan
  and Oates (2017): residual blocks of three convolutions (kernel sizes 8, 5, 3), batch
  norm and ReLU, a 1x1 convolution + batch norm shortcut, global average pooling.
- ``"inception"``: InceptionTime's network (Ismail Fawaz et al., 2020): inception
  modules (bottleneck 1x1 convolution, three parallel convolutions of decreasing
  length and a max-pool + 1x1 branch, batch norm, ReLU) with a residual shortcut every
  three modules, global average pooling.

All three use ``"same"`` padding and no striding, so any window length ``T >= 1``
works.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._modules import Standardize

__all__ = [
    "ARCHITECTURES",
    "InceptionTimeNet",
    "ResNetTS",
    "TimeSeriesNet",
    "augment_windows",
]

#: Architectures of :class:`TimeSeriesNet`, with their default number of blocks
#: (plain blocks, residual blocks, inception modules).
ARCHITECTURES = {"plain": 3, "resnet": 3, "inception": 6}


def augment_windows(x, *, scale=0.1, jitter=0.05, shift=True):
    """Random training-time perturbations of standardised ``(N, C, T)`` windows.

    Each window gets its own draws from torch's generator (seeded by the estimator's
    ``random_state`` through a forked generator):

    - amplitude scaling: every channel multiplied by ``1 + scale * N(0, 1)``;
    - jitter: additive ``jitter * N(0, 1)`` noise at every time step;
    - time shift: a circular roll by a uniform offset in ``[0, T)`` (the networks
      pool globally over time, so this teaches invariance to where a gait cycle or
      gesture starts in the window).

    Parameters
    ----------
    x : tensor of shape (N, C, T)
    scale, jitter : float
    shift : bool

    Returns
    -------
    x_aug : tensor of shape (N, C, T)
    """
    n, c, t = x.shape
    dev = x.device
    if scale > 0:
        x = x * (1.0 + scale * torch.randn(n, c, 1, device=dev, dtype=x.dtype))
    if jitter > 0:
        x = x + jitter * torch.randn(x.shape, device=dev, dtype=x.dtype)
    if shift and t > 1:
        offset = torch.randint(0, t, (n, 1, 1), device=dev)
        idx = (torch.arange(t, device=dev).view(1, 1, t) + offset) % t
        x = torch.gather(x, 2, idx.expand(n, c, t))
    return x


class _SameConv1d(nn.Conv1d):
    """Bias-free convolution whose output has the input's length, for any kernel.

    Pads ``(k - 1) // 2`` steps on the left and ``k // 2`` on the right (like
    ``padding="same"``, without its copy warning for even kernels).
    """

    def __init__(self, in_ch, out_ch, kernel_size):
        super().__init__(in_ch, out_ch, kernel_size, bias=False)

    def forward(self, x):
        k = self.kernel_size[0]
        if k > 1:
            x = F.pad(x, ((k - 1) // 2, k // 2))
        return super().forward(x)


def _conv_bn(in_ch, out_ch, kernel_size):
    return [_SameConv1d(in_ch, out_ch, kernel_size), nn.BatchNorm1d(out_ch)]


class _PlainBody(nn.Module):
    """conv -> BN -> ReLU -> dropout blocks; width doubles after the first block."""

    def __init__(self, n_channels, *, n_filters, kernel_size, n_blocks, dropout):
        super().__init__()
        blocks, in_ch = [], n_channels
        for i in range(n_blocks):
            out_ch = n_filters * (2 if i > 0 else 1)
            blocks.append(nn.Sequential(
                *_conv_bn(in_ch, out_ch, kernel_size), nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            ))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = in_ch

    def forward(self, x):
        for i, block in enumerate(self.blocks):
            if i > 0 and x.shape[-1] >= 2:
                x = F.max_pool1d(x, 2)
            x = block(x)
        return x


class _ResidualBlock(nn.Module):
    """Three conv + BN (+ ReLU) layers and a 1x1 conv + BN shortcut."""

    def __init__(self, in_ch, out_ch, kernel_sizes):
        super().__init__()
        k1, k2, k3 = kernel_sizes
        self.body = nn.Sequential(
            *_conv_bn(in_ch, out_ch, k1), nn.ReLU(inplace=True),
            *_conv_bn(out_ch, out_ch, k2), nn.ReLU(inplace=True),
            *_conv_bn(out_ch, out_ch, k3),
        )
        self.shortcut = nn.Sequential(*_conv_bn(in_ch, out_ch, 1))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNetTS(nn.Module):
    """Residual body of Wang et al. (2017): widths ``n, 2n, 2n, 2n...``.

    Parameters
    ----------
    n_channels : int
    n_filters : int
        Width of the first residual block (64 in the paper, then 128, 128).
    kernel_size : int
        Longest kernel, of each block's first convolution; the two others have
        ``round(5 k / 8)`` and ``round(3 k / 8)`` (8, 5, 3 for ``k = 8``, the paper's).
    n_blocks : int
    """

    def __init__(self, n_channels, *, n_filters, kernel_size, n_blocks):
        super().__init__()
        k = int(kernel_size)
        kernels = (k, max(1, round(5 * k / 8)), max(1, round(3 * k / 8)))
        blocks, in_ch = [], n_channels
        for i in range(n_blocks):
            out_ch = n_filters * (2 if i > 0 else 1)
            blocks.append(_ResidualBlock(in_ch, out_ch, kernels))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = in_ch

    def forward(self, x):
        return self.blocks(x)


class _InceptionModule(nn.Module):
    """Bottleneck, three parallel convs and a max-pool + 1x1 branch, BN, ReLU."""

    def __init__(self, in_ch, n_filters, kernel_sizes, bottleneck):
        super().__init__()
        use_bottleneck = in_ch > 1
        self.bottleneck = (
            nn.Conv1d(in_ch, bottleneck, 1, bias=False) if use_bottleneck else nn.Identity()
        )
        mid = bottleneck if use_bottleneck else in_ch
        self.convs = nn.ModuleList(_SameConv1d(mid, n_filters, k) for k in kernel_sizes)
        self.pool_conv = nn.Conv1d(in_ch, n_filters, 1, bias=False)
        self.bn = nn.BatchNorm1d(n_filters * (len(kernel_sizes) + 1))

    def forward(self, x):
        z = self.bottleneck(x)
        pooled = F.max_pool1d(x, 3, stride=1, padding=1)
        out = torch.cat([conv(z) for conv in self.convs] + [self.pool_conv(pooled)], dim=1)
        return F.relu(self.bn(out))


class InceptionTimeNet(nn.Module):
    """InceptionTime's body: inception modules, a residual shortcut every 3 modules.

    Parameters
    ----------
    n_channels : int
    n_filters : int
        Filters of each of the four branches of a module (32 in the paper), so each
        module outputs ``4 * n_filters`` channels.
    kernel_size : int
        Longest convolution of a module (40 in the paper); the two others are a half
        and a quarter of it, all made odd so that the padding is symmetric.
    n_blocks : int
        Number of inception modules (the depth, 6 in the paper).
    """

    def __init__(self, n_channels, *, n_filters, kernel_size, n_blocks):
        super().__init__()
        k = int(kernel_size)
        kernels = sorted({max(1, (k // d) - (1 - (k // d) % 2)) for d in (1, 2, 4)},
                         reverse=True)
        bottleneck = n_filters
        width = n_filters * (len(kernels) + 1)
        modules, shortcuts = [], []
        in_ch, res_ch = n_channels, n_channels
        for i in range(n_blocks):
            modules.append(_InceptionModule(in_ch, n_filters, kernels, bottleneck))
            in_ch = width
            if i % 3 == 2:
                shortcuts.append(nn.Sequential(*_conv_bn(res_ch, width, 1)))
                res_ch = width
        self.inception = nn.ModuleList(modules)
        self.shortcuts = nn.ModuleList(shortcuts)
        self.out_channels = width

    def forward(self, x):
        residual = x
        for i, module in enumerate(self.inception):
            x = module(x)
            if i % 3 == 2:
                x = F.relu(x + self.shortcuts[i // 3](residual))
                residual = x
        return x


class TimeSeriesNet(nn.Module):
    """A time-series classifier that owns its preprocessing.

    Input ``(N, T, d)`` raw windows (tslearn's layout), output ``(N, n_classes)``
    logits: per-channel standardisation, training-time augmentation (only in training
    mode, when ``augment`` is set), the body of ``architecture``, global average
    pooling over time, dropout and a linear layer.

    Parameters
    ----------
    n_channels : int
    n_classes : int
    architecture : {"plain", "resnet", "inception"}
    n_filters : int
    kernel_size : int
    n_blocks : int
    dropout : float
    mean, std : array-like of shape (n_channels,)
        Per-channel standardisation learned on the training windows.
    augment : bool
    """

    def __init__(self, n_channels, n_classes, *, architecture, n_filters, kernel_size,
                 n_blocks, dropout, mean, std, augment):
        super().__init__()
        self.architecture = architecture
        self.augment = bool(augment)
        self.standardize = Standardize(mean, std)
        if architecture == "plain":
            self.body = _PlainBody(n_channels, n_filters=n_filters, kernel_size=kernel_size,
                                   n_blocks=n_blocks, dropout=dropout)
        elif architecture == "resnet":
            self.body = ResNetTS(n_channels, n_filters=n_filters, kernel_size=kernel_size,
                                 n_blocks=n_blocks)
        elif architecture == "inception":
            self.body = InceptionTimeNet(n_channels, n_filters=n_filters,
                                         kernel_size=kernel_size, n_blocks=n_blocks)
        else:
            raise ValueError(
                f"Unknown architecture {architecture!r}; expected one of "
                f"{sorted(ARCHITECTURES)}."
            )
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(self.body.out_channels, n_classes))

    def forward(self, x):
        x = self.standardize(x).transpose(1, 2)  # (N, d, T)
        if self.training and self.augment:
            x = augment_windows(x)
        x = self.body(x)
        return self.head(x.mean(dim=-1))
