"""Torch pieces of EdgeFool: a bank of image filters, the fast guided filter, the L*
detail enhancement and the Carlini-Wagner margin.

The filter is the context-aggregation network of the "fast end-to-end trainable guided
filter" family: 3x3 convolutions with 24 channels and dilations 1, 2, 4, 8, 16, 1, each
followed by an adaptive normalisation ``w0 * x + w1 * instance_norm(x)`` and a
LeakyReLU(0.2), then a 1x1 head back to 3 channels and a fast guided filter (radius 1,
eps 1e-8) guided by the input image.

:class:`EdgeFoolFilter` holds ``n_filters`` independent filters whose parameters carry a
leading filter axis. With one filter it is an ordinary network applied to any batch (the
universal filter); with ``n_filters == N`` image ``i`` of an ``(N, 3, H, W)`` batch goes
through filter ``i`` only (grouped convolutions, ``groups=N``), so N per-image filters are
trained in one forward/backward pass without interacting.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._color import lab_to_rgb, rgb_to_lab

__all__ = [
    "EdgeFoolFilter",
    "box_filter",
    "cw_margin",
    "enhance_lightness",
    "fast_guided_filter",
    "s_curve",
]

#: Dilations of the 3x3 convolutions of the filter network.
DILATIONS = (1, 2, 4, 8, 16, 1)


def _box_sum_1d(x, radius, dim):
    """Sum of ``x`` over the window ``[i - radius, i + radius]`` along ``dim``, the window
    clipped at the borders, from one cumulative sum."""
    n = x.shape[dim]
    csum = F.pad(torch.cumsum(x, dim=dim).movedim(dim, -1), (1, 0)).movedim(-1, dim)
    idx = torch.arange(n, device=x.device)
    upper = (idx + radius + 1).clamp(max=n)
    lower = (idx - radius).clamp(min=0)
    return csum.index_select(dim, upper) - csum.index_select(dim, lower)


def box_filter(x, radius):
    """Box sum of radius ``radius`` over the last two axes, clipped at the borders.

    Parameters
    ----------
    x : torch.Tensor of shape (..., H, W)
    radius : int

    Returns
    -------
    sums : torch.Tensor of shape (..., H, W)
        ``sums[..., i, j] = x[..., i-r:i+r+1, j-r:j+r+1].sum()`` (indices clipped).
    """
    return _box_sum_1d(_box_sum_1d(x, radius, -2), radius, -1)


def fast_guided_filter(lr_x, lr_y, hr_x, *, radius=1, eps=1e-8):
    """Fast guided filter (He and Sun, 2015), per channel and batched.

    The local linear model ``y ~ A * x + b`` is fitted on the low-resolution pair
    ``(lr_x, lr_y)`` with box windows of radius ``radius``; ``A`` and ``b`` are upsampled
    bilinearly to the size of ``hr_x`` (a no-op when the sizes match) and applied to it.

    Parameters
    ----------
    lr_x, lr_y : torch.Tensor of shape (N, C, h, w)
        Guide and filtered signal at low resolution.
    hr_x : torch.Tensor of shape (N, C, H, W)
        Guide at the output resolution.
    radius : int, default=1
    eps : float, default=1e-8
        Regularisation of ``A = cov(x, y) / (var(x) + eps)``.

    Returns
    -------
    out : torch.Tensor of shape (N, C, H, W)
    """
    h, w = lr_x.shape[-2:]
    ones = torch.ones((1, 1, h, w), dtype=lr_x.dtype, device=lr_x.device)
    count = box_filter(ones, radius)
    mean_x = box_filter(lr_x, radius) / count
    mean_y = box_filter(lr_y, radius) / count
    cov_xy = box_filter(lr_x * lr_y, radius) / count - mean_x * mean_y
    var_x = box_filter(lr_x * lr_x, radius) / count - mean_x * mean_x
    A = cov_xy / (var_x + eps)
    b = mean_y - A * mean_x
    if hr_x.shape[-2:] != (h, w):
        size = hr_x.shape[-2:]
        A = F.interpolate(A, size=size, mode="bilinear", align_corners=True)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=True)
    return A * hr_x + b


def _instance_norm(x, eps=1e-3):
    """Per-image, per-channel normalisation over H and W (no affine part).

    Written out rather than ``F.instance_norm``: on torch 2.13 (CPU) the latter's backward
    is wrong for a batch of one image when the incoming gradient is channels-last
    (relative error above 100 %, float64 included), which happens when images arrive
    as permuted ``(N, H, W, 3)`` arrays.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


class EdgeFoolFilter(nn.Module):
    """A bank of ``n_filters`` image-smoothing networks followed by a fast guided filter.

    Parameters
    ----------
    n_filters : int, default=1
        Number of independent filters. With 1, :meth:`forward` applies the same filter to
        every image of a batch; otherwise the batch must hold exactly ``n_filters`` images
        and image ``i`` goes through filter ``i``.
    channels : int, default=24
        Width of the hidden layers.
    dilations : tuple of int, default=(1, 2, 4, 8, 16, 1)
        Dilation of each hidden 3x3 convolution.
    negative_slope : float, default=0.2
        LeakyReLU slope.
    radius, eps : int, float, default=1, 1e-8
        Fast guided filter settings.
    head_init_std : float, default=0.01
        Scale of the random part of the head (see Notes).
    generator : torch.Generator, default=None
        Source of that random part (the same draw is used for every filter of the bank).

    Notes
    -----
    Identity initialisation: every hidden convolution starts as a centred identity
    kernel (channel ``i`` -> channel ``i``, so hidden channels 3..23 start at zero),
    ``w0 = 1, w1 = 0`` in the adaptive norms, and the head maps channels 0..2 to the
    output with an identity block. The head's weights from the other hidden channels are
    small random numbers: they multiply zeros at initialisation, so the network is an
    exact identity on images in [0, 1] (LeakyReLU is the identity on non-negative
    values), but they give those channels a gradient. (An all-zero block would leave them
    dead forever; a fully random head, as in the original guided-filter code, would not
    start from the identity.) The guided filter of an identity map is the identity up to
    ``eps``.

    The parameters of layer ``l`` are ``weight_l`` of shape
    ``(n_filters, out, in, 3, 3)``, the norm weights ``norm_w0_l``, ``norm_w1_l`` of shape
    ``(n_filters,)`` and the instance norm's affine ``norm_gamma_l``, ``norm_beta_l`` of
    shape ``(n_filters, channels)``; the head is ``head_weight`` ``(n_filters, 3,
    channels)`` and ``head_bias`` ``(n_filters, 3)``. :func:`torch.func.functional_call`
    with tensors of any leading size ``m`` runs ``m`` filters, which is how EdgeFool drops
    finished images from the batch.
    """

    def __init__(
        self,
        n_filters=1,
        *,
        channels=24,
        dilations=DILATIONS,
        negative_slope=0.2,
        radius=1,
        eps=1e-8,
        head_init_std=0.01,
        generator=None,
    ):
        super().__init__()
        self.channels = int(channels)
        self.dilations = tuple(int(d) for d in dilations)
        self.negative_slope = float(negative_slope)
        self.radius = int(radius)
        self.eps = float(eps)
        self.n_layers = len(self.dilations)
        c = self.channels
        for layer in range(self.n_layers):
            c_in = 3 if layer == 0 else c
            weight = torch.zeros(n_filters, c, c_in, 3, 3)
            diag = torch.arange(c_in)
            weight[:, diag, diag, 1, 1] = 1.0
            self.register_parameter(f"weight_{layer}", nn.Parameter(weight))
            self.register_parameter(f"norm_w0_{layer}", nn.Parameter(torch.ones(n_filters)))
            self.register_parameter(f"norm_w1_{layer}", nn.Parameter(torch.zeros(n_filters)))
            self.register_parameter(f"norm_gamma_{layer}", nn.Parameter(torch.ones(n_filters, c)))
            self.register_parameter(f"norm_beta_{layer}", nn.Parameter(torch.zeros(n_filters, c)))
        head = torch.zeros(3, c)
        head[:, :3] = torch.eye(3)
        head[:, 3:] = head_init_std * torch.randn(3, c - 3, generator=generator)
        self.head_weight = nn.Parameter(head.expand(n_filters, 3, c).clone())
        self.head_bias = nn.Parameter(torch.zeros(n_filters, 3))

    @property
    def n_filters(self):
        return self.head_weight.shape[0]

    @staticmethod
    def _per_image(param, n_images, n_filters):
        """Broadcast a per-filter parameter (F, ...) to the batch (N, ..., 1, 1)."""
        p = param if n_filters > 1 else param.expand(n_images, *param.shape[1:])
        return p.reshape(*p.shape, 1, 1)

    def _conv(self, x, weight, dilation):
        n_filters = weight.shape[0]
        if n_filters == 1:
            return F.conv2d(x, weight[0], padding=dilation, dilation=dilation)
        n, c_in, h, w = x.shape
        out = F.conv2d(
            x.reshape(1, n * c_in, h, w),
            weight.reshape(n_filters * weight.shape[1], c_in, 3, 3),
            padding=dilation,
            dilation=dilation,
            groups=n_filters,
        )
        return out.reshape(n, weight.shape[1], h, w)

    def forward(self, x):
        """Filter images.

        Parameters
        ----------
        x : torch.Tensor of shape (N, 3, H, W)
            RGB in [0, 1]. ``N`` must equal the number of filters unless there is one.

        Returns
        -------
        smoothed : torch.Tensor of shape (N, 3, H, W)
            Clipped to [0, 1].
        """
        n_filters = self.head_weight.shape[0]
        n = x.shape[0]
        # One memory layout for every path (grouped or not, batch of 1 or more), so the
        # batched and sequential runs compute the same sums.
        x = x.contiguous()
        if n_filters != 1 and n_filters != n:
            raise ValueError(
                f"A bank of {n_filters} filters needs a batch of {n_filters} images; got {n}."
            )
        y = x
        for layer, dilation in enumerate(self.dilations):
            y = self._conv(y, getattr(self, f"weight_{layer}"), dilation)
            w0 = self._per_image(getattr(self, f"norm_w0_{layer}")[:, None], n, n_filters)
            w1 = self._per_image(getattr(self, f"norm_w1_{layer}")[:, None], n, n_filters)
            gamma = self._per_image(getattr(self, f"norm_gamma_{layer}"), n, n_filters)
            beta = self._per_image(getattr(self, f"norm_beta_{layer}"), n, n_filters)
            y = w0 * y + w1 * (_instance_norm(y) * gamma + beta)
            y = F.leaky_relu(y, self.negative_slope)
        head_weight = self._per_image(self.head_weight, n, n_filters)[..., 0, 0]
        head_bias = self._per_image(self.head_bias, n, n_filters)
        y = torch.einsum("noc,nchw->nohw", head_weight, y) + head_bias
        return fast_guided_filter(x, y, x, radius=self.radius, eps=self.eps).clamp(0.0, 1.0)


def s_curve(x, gain=15.0):
    """The detail S-curve ``sig(x, g) = 1 / (1 + exp(-g x)) - 1/2 = tanh(g x / 2) / 2``.

    Its slope at 0 is ``g / 4`` (3.75 for ``g = 15``) and it saturates at +-1/2, so
    ``100 * sig(d / 100, 15)`` multiplies small L* details by 3.75 and never exceeds +-50.
    """
    return 0.5 * torch.tanh(0.5 * gain * x)


def enhance_lightness(images, smoothed, *, gain=15.0):
    """EdgeFool's detail enhancement, on CIE L* only.

    ``L_out = L_s + 100 * sig((L - L_s) / 100, gain)`` where ``L`` is the lightness of
    ``images`` and ``L_s`` that of ``smoothed`` (the base layer is kept as it is). The
    chroma channels a*, b* are those of ``images``: colours are unchanged; ``L_out`` is
    clipped to [0, 100] and the result to [0, 1] in sRGB.

    Parameters
    ----------
    images, smoothed : torch.Tensor of shape (N, 3, H, W)
        sRGB in [0, 1].
    gain : float, default=15.0

    Returns
    -------
    enhanced : torch.Tensor of shape (N, 3, H, W)
    """
    lab = rgb_to_lab(images)
    lightness_s = rgb_to_lab(smoothed)[:, :1]
    detail = lab[:, :1] - lightness_s
    lightness = (lightness_s + 100.0 * s_curve(detail / 100.0, gain)).clamp(0.0, 100.0)
    return lab_to_rgb(torch.cat([lightness, lab[:, 1:]], dim=1))


def cw_margin(logits, labels, *, confidence=0.0):
    """Untargeted Carlini-Wagner margin ``max(Z_y - max_{j != y} Z_j, -confidence)``.

    Parameters
    ----------
    logits : torch.Tensor of shape (N, n_classes)
    labels : torch.Tensor of shape (N,)
        The label to move away from (the clean prediction).
    confidence : float, default=0.0

    Returns
    -------
    margin : torch.Tensor of shape (N,)
        Zero (or ``-confidence``) once another class wins by the confidence.
    """
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return (true - others).clamp_min(-confidence)
