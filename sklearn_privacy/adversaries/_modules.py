"""Torch modules of the attackers (kept apart from the estimators that train them).

Every module maps *raw* inputs to logits: the standardisation learned from the training
data (and, for images, the resize to the network's input size) lives inside the module as
buffers, so the fitted module alone reproduces the estimator's predictions and gradient
based attacks can differentiate through the whole preprocessing.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ClassWeightedCrossEntropy",
    "IMAGE_ARCHITECTURES",
    "ImageCNN",
    "Standardize",
    "TimeSeriesCNN",
    "random_flip_crop",
    "resize_images",
]


class Standardize(nn.Module):
    """Subtract a mean and divide by a standard deviation held as buffers.

    Parameters
    ----------
    mean, std : tensor
        Already shaped to broadcast against the input (e.g. ``(d,)`` for
        ``(N, T, d)`` windows, ``(1, 3, 1, 1)`` for ``(N, 3, H, W)`` images).
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())

    def forward(self, x):
        return (x - self.mean) / self.std


class ClassWeightedCrossEntropy(nn.Module):
    """Cross-entropy with per-class weights, averaged over the samples.

    Unlike ``nn.CrossEntropyLoss(weight=...)``, whose mean divides by the sum of the
    batch's weights (so a batch without the up-weighted class is not affected at all),
    this is ``mean_i(weight[y_i] * CE_i)``: scikit-learn's ``class_weight`` semantics,
    where a weight multiplies each sample's loss.

    Parameters
    ----------
    weight : tensor of shape (n_classes,) or None
        ``None`` gives the plain mean cross-entropy.
    label_smoothing : float in [0, 1), default=0.0
        Share of the target mass spread uniformly over all classes.
    """

    def __init__(self, weight=None, label_smoothing=0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.register_buffer(
            "weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        )

    def forward(self, logits, target):
        loss = F.cross_entropy(logits, target, reduction="none",
                               label_smoothing=self.label_smoothing)
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()


class TimeSeriesCNN(nn.Module):
    """1-D CNN over motion windows with global average pooling.

    Input ``(N, T, d)`` in tslearn's layout, output ``(N, n_classes)`` logits. Each
    block is conv (``"same"`` padding) -> batch norm -> ReLU -> dropout; blocks after
    the first double the width once and are preceded by a max-pool of 2 while the
    sequence is at least 2 long, so any window length ``T >= 1`` works.

    Parameters
    ----------
    n_channels : int
    n_classes : int
    n_filters : int
    kernel_size : int
    n_blocks : int
    dropout : float
    mean, std : array-like of shape (n_channels,)
        Per-channel standardisation learned on the training windows.
    """

    def __init__(self, n_channels, n_classes, *, n_filters, kernel_size, n_blocks,
                 dropout, mean, std):
        super().__init__()
        self.standardize = Standardize(mean, std)
        blocks = []
        in_ch = n_channels
        for i in range(n_blocks):
            out_ch = n_filters * (2 if i > 0 else 1)
            blocks.append(nn.Sequential(
                nn.Conv1d(in_ch, out_ch, kernel_size, padding="same", bias=False),
                nn.BatchNorm1d(out_ch),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            ))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, n_classes))

    def forward(self, x):
        x = self.standardize(x).transpose(1, 2)  # (N, d, T)
        for i, block in enumerate(self.blocks):
            if i > 0 and x.shape[-1] >= 2:
                x = F.max_pool1d(x, 2)
            x = block(x)
        return self.head(x.mean(dim=-1))


def resize_images(x, size):
    """Resize ``(N, C, H, W)`` images to ``size x size`` (bilinear, antialiased).

    Returns ``x`` itself when it already has that size.
    """
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def random_flip_crop(x, pad, cutout=0):
    """Random horizontal flip, ``pad``-pixel translation crop and cutout, per image.

    Vectorised over the batch: each image gets its own flip, crop offsets and cutout
    position from torch's generator (seeded by the estimator's ``random_state``).
    ``cutout > 0`` then sets a ``cutout x cutout`` square (clipped at the borders,
    centred anywhere in the image) to the image's mean colour.
    """
    x = _flip_crop(x, pad)
    if cutout > 0:
        x = _cutout(x, cutout)
    return x


def _cutout(x, size):
    n, _, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (n,), device=dev)
    cx = torch.randint(0, w, (n,), device=dev)
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= (cy - size // 2)[:, None]) & (rows < (cy - size // 2 + size)[:, None])
    in_cols = (cols >= (cx - size // 2)[:, None]) & (cols < (cx - size // 2 + size)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (n, 1, h, w)
    fill = x.mean(dim=(-2, -1), keepdim=True)
    return torch.where(mask, fill, x)


def _flip_crop(x, pad):
    n, _, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, device=dev) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if pad <= 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(0, 2 * pad + 1, (n,), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), device=dev)
    rows = oy[:, None] + torch.arange(h, device=dev)  # (n, h)
    cols = ox[:, None] + torch.arange(w, device=dev)  # (n, w)
    idx = torch.arange(n, device=dev)[:, None, None]
    # Advanced indices around a slice: the result is (n, h, w, C).
    out = padded[idx, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def _conv_bn_relu(in_ch, out_ch, kernel_size):
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with an identity (or 1x1) shortcut."""

    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class _Residual(nn.Module):
    """``x + f(x)``."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


#: Architectures of :class:`ImageCNN` (``architecture`` parameter).
IMAGE_ARCHITECTURES = ("small", "wide", "resnet", "resnet9", "resnet20")


def _image_body(architecture, n_filters):
    """Return ``(feature extractor, number of output channels)``."""
    nf = n_filters
    if architecture == "small":
        # Three VGG-style stages: 2 x (conv3 BN ReLU), max-pool; widths nf, 2nf, 4nf.
        layers, in_ch = [], 3
        for i in range(3):
            out_ch = nf * 2**i
            layers += _conv_bn_relu(in_ch, out_ch, 3) + _conv_bn_relu(out_ch, out_ch, 3)
            layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        return nn.Sequential(*layers), in_ch
    if architecture == "wide":
        # Two wide stages of single 5x5 convs; widths 2nf, 4nf.
        layers, in_ch = [], 3
        for i in range(2):
            out_ch = 2 * nf * 2**i
            layers += _conv_bn_relu(in_ch, out_ch, 5)
            layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        return nn.Sequential(*layers), in_ch
    if architecture == "resnet9":
        # The fast "ResNet-9" of the DAWNBench CIFAR-10 entries: a stem, then three
        # stages (conv-BN-ReLU + max-pool), the first and last followed by a residual
        # pair of conv-BN-ReLU; widths nf, 2nf, 4nf, 8nf.
        layers = _conv_bn_relu(3, nf, 3)
        in_ch = nf
        for i, residual in enumerate((True, False, True)):
            out_ch = nf * 2 ** (i + 1)
            layers += _conv_bn_relu(in_ch, out_ch, 3) + [nn.MaxPool2d(2)]
            if residual:
                layers.append(_Residual(nn.Sequential(
                    *_conv_bn_relu(out_ch, out_ch, 3), *_conv_bn_relu(out_ch, out_ch, 3)
                )))
            in_ch = out_ch
        return nn.Sequential(*layers), in_ch
    if architecture == "resnet20":
        # He et al.'s CIFAR ResNet-20: a stem + three stages of three basic blocks
        # (strides 1, 2, 2); widths nf, 2nf, 4nf (the paper's nf is 16).
        layers = _conv_bn_relu(3, nf, 3)
        in_ch = nf
        for i in range(3):
            out_ch = nf * 2**i
            for j in range(3):
                layers.append(_BasicBlock(in_ch, out_ch, 2 if (i > 0 and j == 0) else 1))
                in_ch = out_ch
        return nn.Sequential(*layers), in_ch
    if architecture == "resnet":
        # A ResNet-8-like net: stem + three basic blocks (strides 1, 2, 2).
        layers = _conv_bn_relu(3, nf, 3)
        in_ch = nf
        for i, stride in enumerate((1, 2, 2)):
            out_ch = nf * 2**i
            layers.append(_BasicBlock(in_ch, out_ch, stride))
            in_ch = out_ch
        return nn.Sequential(*layers), in_ch
    raise ValueError(f"Unknown architecture {architecture!r}.")


class ImageCNN(nn.Module):
    """Small image CNN that owns its preprocessing.

    Input: float images ``(N, 3, H, W)`` in [0, 1], any ``H, W``. They are resized to
    ``input_size`` (bilinear, antialiased), randomly flipped, translated and (with
    ``cutout``) partly masked while training when ``augment`` is set, standardised per
    channel with the training statistics, then classified. Augmentation happens only in
    training mode: in eval mode the module is deterministic. Output: ``(N, n_classes)``
    logits.

    Parameters
    ----------
    n_classes : int
    architecture : {"small", "wide", "resnet", "resnet9", "resnet20"}
    n_filters : int
    input_size : int
    dropout : float
    mean, std : array-like of shape (3,)
        Per-channel statistics of the resized training images.
    augment : bool
    cutout : int, default=0
        Side of the cutout square while augmenting (0: none).
    """

    def __init__(self, n_classes, *, architecture, n_filters, input_size, dropout, mean,
                 std, augment, cutout=0):
        super().__init__()
        self.input_size = int(input_size)
        self.augment = bool(augment)
        self.cutout = int(cutout)
        self.standardize = Standardize(
            torch.as_tensor(mean).reshape(1, 3, 1, 1), torch.as_tensor(std).reshape(1, 3, 1, 1)
        )
        self.features, width = _image_body(architecture, n_filters)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(self, x):
        x = resize_images(x, self.input_size)
        if self.training and self.augment:
            x = random_flip_crop(x, max(1, self.input_size // 8), self.cutout)
        x = self.features(self.standardize(x))
        return self.head(x.mean(dim=(-2, -1)))
