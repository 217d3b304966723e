"""L0 gradient-minimisation smoothing (Xu, Lu, Xu and Jia, SIGGRAPH Asia 2011), batched.

The smoothed image ``S`` minimises ``|S - I|^2 + lambda * C(S)`` where ``C`` counts the
pixels with a non-zero gradient. The half-quadratic splitting solver alternates between

1. a hard threshold of the auxiliary gradients ``(h, v)``: set to zero wherever
   ``sum_c (dx S)^2 + (dy S)^2 < lambda / beta`` (summed over colour channels, so edges are
   shared by the channels), and
2. a closed-form solve for ``S`` in the Fourier domain (circular boundary conditions)::

       S = ifft2( (fft2(I) + beta * fft2(dx^T h + dy^T v)) / (1 + beta * (|F(dx)|^2 + |F(dy)|^2)) )

while ``beta`` grows geometrically from ``2 * lambda`` by a factor ``kappa`` until it
reaches ``beta_max``. Every step is a whole-batch tensor operation over ``(N, C, H, W)``:
there is no loop over images, only the ~22 solver iterations.
"""

import math

import torch

__all__ = ["l0_smooth"]


def _difference_spectrum(n, *, dtype, device):
    """``|F(d)|^2`` of the circular forward difference ``d`` on ``n`` samples."""
    k = torch.arange(n, dtype=dtype, device=device)
    return 2.0 - 2.0 * torch.cos(2.0 * math.pi * k / n)


def l0_smooth(images, *, lam=0.02, kappa=2.0, beta_max=1e5):
    """Smooth images by L0 gradient minimisation.

    Parameters
    ----------
    images : torch.Tensor of shape (N, C, H, W)
        Floating-point images, usually RGB in [0, 1] (``lam`` is relative to that range).
    lam : float, default=0.02
        Weight of the L0 gradient count: larger values give flatter images.
    kappa : float, default=2.0
        Growth factor of ``beta`` between solver iterations (> 1).
    beta_max : float, default=1e5
        ``beta`` grows from ``2 * lam`` while it is below ``beta_max``.

    Returns
    -------
    smoothed : torch.Tensor of shape (N, C, H, W)
        Same dtype and device as ``images``; not clipped.

    Examples
    --------
    >>> import torch
    >>> from sklearn_privacy.image._l0 import l0_smooth
    >>> flat = torch.full((1, 3, 8, 8), 0.5)
    >>> bool(torch.allclose(l0_smooth(flat), flat, atol=1e-6))
    True
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            "l0_smooth expects a torch.Tensor of shape (N, C, H, W); got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    if not images.is_floating_point():
        raise ValueError(f"l0_smooth expects a floating-point tensor, got {images.dtype}.")
    if lam <= 0 or kappa <= 1 or beta_max <= 0:
        raise ValueError(
            f"l0_smooth needs lam > 0, kappa > 1 and beta_max > 0; got lam={lam}, "
            f"kappa={kappa}, beta_max={beta_max}."
        )
    height, width = images.shape[-2:]
    spectrum = (
        _difference_spectrum(height, dtype=images.dtype, device=images.device)[:, None]
        + _difference_spectrum(width, dtype=images.dtype, device=images.device)[None, :]
    )
    fft_input = torch.fft.fft2(images)
    smoothed = images
    beta = 2.0 * lam
    while beta < beta_max:
        # Circular forward differences along W (h) and H (v).
        h = torch.roll(smoothed, shifts=-1, dims=-1) - smoothed
        v = torch.roll(smoothed, shifts=-1, dims=-2) - smoothed
        flat = (h.square() + v.square()).sum(dim=1, keepdim=True) < lam / beta
        h = h.masked_fill(flat, 0.0)
        v = v.masked_fill(flat, 0.0)
        # Adjoint of the forward differences: d^T g = g[i - 1] - g[i] (circular).
        divergence = (torch.roll(h, shifts=1, dims=-1) - h) + (torch.roll(v, shifts=1, dims=-2) - v)
        numerator = fft_input + beta * torch.fft.fft2(divergence)
        smoothed = torch.fft.ifft2(numerator / (1.0 + beta * spectrum)).real
        beta *= kappa
    return smoothed
