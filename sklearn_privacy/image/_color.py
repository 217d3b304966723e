"""Colour maths: sRGB <-> CIE L*a*b* (D65) in torch and numpy, and CIEDE2000.

The torch conversions are vectorised and differentiable (gradients stay finite at black,
at white and on the gamut boundary), so white-box protectors can optimise through them.
Conventions:

- sRGB values are floats in [0, 1] (IEC 61966-2-1 transfer curve).
- L* lies in [0, 100]; a* and b* are unbounded but natural colours lie within about
  [-128, 127].
- The reference white is D65 *as given by the sRGB matrix* (its row sums,
  Xn = 0.95047, Yn = 1, Zn = 1.08883), so sRGB white maps to exactly L* = 100,
  a* = b* = 0.
"""

import numpy as np
import torch

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "rgb_to_lab_array",
    "lab_to_rgb_array",
    "ciede2000",
]

# sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1).
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ.sum(axis=1)  # D65 white of the matrix: (0.95047, 1.0, 1.08883)

# CIE constants of the f(t) curve, kept exact: delta = 6/29.
_DELTA = 6.0 / 29.0
_DELTA3 = _DELTA**3
_KAPPA = 3.0 * _DELTA**2


def _matrix(m, ref):
    return torch.as_tensor(m, dtype=ref.dtype, device=ref.device)


def _apply_matrix(m, x):
    """Multiply the channel axis (-3) of ``x`` by the 3x3 matrix ``m``.

    Written as elementwise products and sums in a fixed order rather than a matrix
    product: each pixel's result is then the same whatever the batch it is part of
    (a GEMM's blocking, and so its rounding, depends on the number of pixels).
    """
    c0, c1, c2 = x.unbind(dim=-3)
    rows = [float(m[i][0]) * c0 + float(m[i][1]) * c1 + float(m[i][2]) * c2 for i in range(3)]
    return torch.stack(rows, dim=-3)


def _check_channels(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(t).__name__}.")
    if t.ndim < 3 or t.shape[-3] != 3:
        raise ValueError(
            f"{name} expects a tensor of shape (..., 3, H, W) (e.g. (N, 3, H, W)); "
            f"got shape {tuple(t.shape)}."
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} expects a floating-point tensor, got {t.dtype}.")


def _srgb_to_linear(c):
    # Each branch is evaluated on clamped input so that the branch not taken never
    # produces inf/NaN gradients (torch.where back-propagates into both branches).
    low = c / 12.92
    high = ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(c <= 0.04045, low, high)


def _linear_to_srgb(c):
    low = 12.92 * c
    high = 1.055 * c.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(c <= 0.0031308, low, high)


def _f(t):
    return torch.where(t > _DELTA3, t.clamp_min(_DELTA3) ** (1.0 / 3.0), t / _KAPPA + 4.0 / 29.0)


def _f_inv(t):
    return torch.where(t > _DELTA, t**3, _KAPPA * (t - 4.0 / 29.0))


def rgb_to_lab(t):
    """Convert sRGB images to CIE L*a*b* (D65), differentiably.

    Parameters
    ----------
    t : torch.Tensor of shape (..., 3, H, W)
        sRGB values in [0, 1] (usually ``(N, 3, H, W)``), any floating dtype and device.

    Returns
    -------
    lab : torch.Tensor of the same shape, dtype and device
        Channels L* in [0, 100], a*, b*.

    Examples
    --------
    >>> import torch
    >>> from sklearn_privacy.image import rgb_to_lab
    >>> rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten().round(decimals=4).tolist()
    [100.0, 0.0, 0.0]
    """
    _check_channels(t, "rgb_to_lab")
    xyz = _apply_matrix(_RGB_TO_XYZ, _srgb_to_linear(t))
    white = _matrix(_WHITE, t).reshape(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(dim=-3)
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack([L, a, b], dim=-3)


def lab_to_rgb(t, *, clip=True):
    """Convert CIE L*a*b* (D65) images to sRGB, differentiably.

    Parameters
    ----------
    t : torch.Tensor of shape (..., 3, H, W)
        Channels L*, a*, b*.
    clip : bool, default=True
        Clip the result to [0, 1] (colours outside the sRGB gamut are clipped per
        channel). With ``False`` out-of-gamut values are returned as they are.

    Returns
    -------
    rgb : torch.Tensor of the same shape, dtype and device
        sRGB values (in [0, 1] when ``clip``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_privacy.image import lab_to_rgb, rgb_to_lab
    >>> x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    >>> bool(torch.allclose(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-10))
    True
    """
    _check_channels(t, "lab_to_rgb")
    L, a, b = t.unbind(dim=-3)
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    white = _matrix(_WHITE, t).reshape(3, 1, 1)
    xyz = _f_inv(torch.stack([fx, fy, fz], dim=-3)) * white
    rgb = _linear_to_srgb(_apply_matrix(_XYZ_TO_RGB, xyz))
    return rgb.clamp(0.0, 1.0) if clip else rgb


def _channels_last_call(fn, x, **kwargs):
    arr = np.asarray(x)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(
            f"expected an array whose last axis holds 3 channels, got shape {arr.shape}."
        )
    out_dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    flat = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64).reshape(-1, 3))
    # (M, 3) -> (M, 3, 1, 1) so the channel axis sits at -3.
    res = fn(flat[:, :, None, None], **kwargs)[:, :, 0, 0]
    return res.numpy().reshape(arr.shape).astype(out_dtype, copy=False)


def rgb_to_lab_array(images):
    """Convert channel-last sRGB arrays to CIE L*a*b* (D65) with numpy in and out.

    Parameters
    ----------
    images : array-like of shape (..., 3)
        uint8 values in [0, 255] or floats in [0, 1], e.g. ``(n, H, W, 3)`` images.

    Returns
    -------
    lab : ndarray of shape (..., 3)
        float64 (float32 if the input was float32).

    Examples
    --------
    >>> from sklearn_privacy.image import rgb_to_lab_array
    >>> rgb_to_lab_array([1.0, 0.0, 0.0]).round(2).tolist()
    [53.24, 80.09, 67.2]
    """
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    return _channels_last_call(rgb_to_lab, arr)


def lab_to_rgb_array(lab, *, clip=True):
    """Convert channel-last CIE L*a*b* (D65) arrays to sRGB floats in [0, 1].

    Parameters
    ----------
    lab : array-like of shape (..., 3)
        Channels L*, a*, b*.
    clip : bool, default=True
        Clip to [0, 1].

    Returns
    -------
    rgb : ndarray of shape (..., 3)
        float64 (float32 if the input was float32).
    """
    return _channels_last_call(lab_to_rgb, lab, clip=clip)


def ciede2000(lab1, lab2, *, kL=1.0, kC=1.0, kH=1.0):
    """CIEDE2000 colour difference between two sets of L*a*b* colours (vectorised).

    Implements Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
    implementation notes, supplementary test data, and mathematical observations",
    Color Research & Application 30(1), 2005, including its hue conventions.

    Parameters
    ----------
    lab1, lab2 : array-like of shape (..., 3)
        L*a*b* colours; broadcast against each other.
    kL, kC, kH : float, default=1.0
        Parametric weighting factors.

    Returns
    -------
    delta_e : ndarray of shape (...)
        Colour differences (float64).

    Examples
    --------
    >>> from sklearn_privacy.image import ciede2000
    >>> float(ciede2000([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485]).round(4))
    2.0425
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    if lab1.shape[-1:] != (3,) or lab2.shape[-1:] != (3,):
        raise ValueError(
            f"ciede2000 expects arrays of shape (..., 3); got {lab1.shape} and {lab2.shape}."
        )
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)

    c_bar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    zero_chroma = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(zero_chroma, 0.0, dh)
    dL = L2 - L1
    dC = c2p - c1p
    dH = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    L_bar = (L1 + L2) / 2.0
    C_bar = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        h_sum / 2.0,
        np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
    )
    h_bar = np.where(zero_chroma, h_sum, h_bar)

    T = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    C_bar7 = C_bar**7
    R_C = 2.0 * np.sqrt(C_bar7 / (C_bar7 + 25.0**7))
    S_L = 1.0 + 0.015 * (L_bar - 50.0) ** 2 / np.sqrt(20.0 + (L_bar - 50.0) ** 2)
    S_C = 1.0 + 0.045 * C_bar
    S_H = 1.0 + 0.015 * C_bar * T
    R_T = -np.sin(np.radians(2.0 * d_theta)) * R_C

    tL = dL / (kL * S_L)
    tC = dC / (kC * S_C)
    tH = dH / (kH * S_H)
    return np.sqrt(np.maximum(tL**2 + tC**2 + tH**2 + R_T * tC * tH, 0.0))
