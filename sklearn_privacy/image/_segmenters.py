"""Semantic segmenters for :class:`ColorFool`: the protocol, an offline heuristic, a torch adapter.

A *segmenter* is any callable taking a batch of float images ``(N, H, W, 3)`` in [0, 1]
(numpy) and returning a dict of soft masks ``(N, H, W)`` in [0, 1] for some of the regions
in :data:`SEGMENT_REGIONS` (``"person"``, ``"sky"``, ``"vegetation"``, ``"water"``); a
missing region counts as absent. Masks are "class indicator x confidence", so they may be
fractional.
"""

import copy
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..utils._torch import TorchPickleMixin, check_batch_size, get_map_location, resolve_device
from ..utils.validation import check_images
from ._classifier import _check_channel_stat, _check_size, _eval_mode, _module_device
from ._color import rgb_to_lab

__all__ = [
    "SEGMENT_REGIONS",
    "HeuristicSegmenter",
    "Segmenter",
    "TorchSegmenterAdapter",
    "check_segmentation",
]

#: Regions ColorFool treats specially, in the order used internally.
SEGMENT_REGIONS = ("person", "sky", "vegetation", "water")


@runtime_checkable
class Segmenter(Protocol):
    """What :class:`ColorFool` needs from a segmenter (a typing protocol).

    Any callable with this signature works; :class:`HeuristicSegmenter` and
    :class:`TorchSegmenterAdapter` are two.
    """

    def __call__(self, images):
        """Soft masks of a batch of images.

        Parameters
        ----------
        images : ndarray of shape (N, H, W, 3)
            float32 values in [0, 1].

        Returns
        -------
        masks : dict of str to array-like of shape (N, H, W)
            Values in [0, 1] for some of ``"person"``, ``"sky"``, ``"vegetation"``,
            ``"water"`` (class indicator x confidence); a missing region is absent.
        """


def check_segmentation(masks, shape):
    """Validate a segmenter's output; return a float32 tensor ``(N, 4, H, W)``.

    The channels follow :data:`SEGMENT_REGIONS`; absent regions are zero.
    """
    if not isinstance(masks, dict):
        raise TypeError(f"a segmenter must return a dict of masks, got {type(masks).__name__}.")
    unknown = set(masks) - set(SEGMENT_REGIONS)
    if unknown:
        raise ValueError(f"unknown segmentation regions {sorted(unknown)}; expected some of {SEGMENT_REGIONS}.")
    out = torch.zeros((shape[0], len(SEGMENT_REGIONS), shape[1], shape[2]), dtype=torch.float32)
    for i, region in enumerate(SEGMENT_REGIONS):
        if region not in masks:
            continue
        mask = masks[region]
        mask = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
        mask = mask.to(torch.float32)
        if tuple(mask.shape) != tuple(shape):
            raise ValueError(
                f"mask {region!r} has shape {tuple(mask.shape)}; expected {tuple(shape)} (N, H, W)."
            )
        if not torch.all(torch.isfinite(mask)):
            raise ValueError(f"mask {region!r} contains NaN or infinity.")
        out[:, i] = mask.clamp(0.0, 1.0)
    return out


def _ramp(x, lo, hi):
    """0 below ``lo``, 1 above ``hi``, linear in between."""
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


def _band(x, lo0, lo1, hi1, hi0):
    """Trapezoid: 0 outside [lo0, hi0], 1 on [lo1, hi1]."""
    return torch.minimum(_ramp(x, lo0, lo1), 1.0 - _ramp(x, hi1, hi0))


def _hsv(rgb):
    """Hue in degrees [0, 360), saturation and value in [0, 1]; ``rgb`` is (N, 3, H, W)."""
    r, g, b = rgb.unbind(dim=1)
    v, arg = rgb.max(dim=1)
    c = v - rgb.min(dim=1).values
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(
        arg == 0,
        ((g - b) / safe) % 6.0,
        torch.where(arg == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = torch.where(c > 0, h * 60.0, torch.zeros_like(h))
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return h, s, v


def _box_smooth(x, size):
    if size <= 1:
        return x
    pad = size // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), size, stride=1)


class HeuristicSegmenter:
    """Offline colour-and-position heuristic segmenter (no learned weights).

    A rough stand-in for the semantic segmenter of ColorFool that needs no downloaded
    model. It is a *heuristic*: it labels pixels from their colour (HSV, CIE Lab and
    YCbCr rules) and their height in the image, with no notion of objects, so it confuses
    e.g. a blue shirt with water or a beige wall with skin. Use
    :class:`TorchSegmenterAdapter` with a real segmentation network for faithful
    ColorFool results.

    Rules (soft, piecewise-linear scores in [0, 1]):

    - ``sky``: bright (L* > 45) blue hues (HSV hue 180-260 degrees, some saturation) or
      bright low-chroma greys and whites (overcast sky), in the upper part of the image;
    - ``water``: blue and cyan hues (170-260 degrees) in the lower part of the image;
    - ``vegetation``: yellow-green to green hues (70-165 degrees), saturated, not dark;
    - ``person``: skin tones (YCbCr Cr in about [133, 173], Cb in [77, 127]), not dark.

    Scores are smoothed with a box filter and scaled so that they sum to at most 1 per
    pixel.

    Parameters
    ----------
    smoothing : float, default=1/32
        Width of the smoothing box as a fraction of the shorter image side (0 disables).
    batch_size : int, default=4
        Images segmented at once (bounds the memory of the intermediate maps).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.image import HeuristicSegmenter
    >>> img = np.zeros((1, 8, 8, 3), dtype=np.float32)
    >>> img[:, :4] = (0.45, 0.65, 0.95)   # blue upper half
    >>> img[:, 4:] = (0.15, 0.55, 0.10)   # green lower half
    >>> masks = HeuristicSegmenter()(img)
    >>> bool(masks["sky"][0, 0].mean() > 0.5), bool(masks["vegetation"][0, 7].mean() > 0.5)
    (True, True)
    """

    def __init__(self, smoothing=1 / 32, batch_size=4):
        self.smoothing = smoothing
        self.batch_size = batch_size

    def __repr__(self):
        return f"HeuristicSegmenter(smoothing={self.smoothing!r}, batch_size={self.batch_size!r})"

    def __call__(self, images):
        """Segment a batch of images.

        Parameters
        ----------
        images : array-like of shape (N, H, W, 3)
            Floats in [0, 1], or uint8 in [0, 255] (scaled to [0, 1]).

        Returns
        -------
        masks : dict of str to ndarray of shape (N, H, W)
            Soft masks for ``"person"``, ``"sky"``, ``"vegetation"`` and ``"water"``.

        Raises
        ------
        ValueError
            On images :func:`~sklearn_privacy.utils.check_images` rejects (empty,
            NaN or infinity, non-numeric, out of range, wrong shape).
        """
        if not (0 <= float(self.smoothing) < 1):
            raise ValueError(f"smoothing must lie in [0, 1), got {self.smoothing!r}.")
        batch_size = check_batch_size(self.batch_size)
        x, _ = check_images(images)
        out = {region: np.empty(x.shape[:3], dtype=np.float32) for region in SEGMENT_REGIONS}
        for start in range(0, x.shape[0], batch_size):
            masks = self._segment(torch.from_numpy(x[start : start + batch_size]).permute(0, 3, 1, 2))
            for i, region in enumerate(SEGMENT_REGIONS):
                out[region][start : start + batch_size] = masks[:, i].numpy()
        return out

    def _segment(self, rgb):
        """Soft masks ``(N, 4, H, W)`` (order of SEGMENT_REGIONS) of ``(N, 3, H, W)`` images."""
        height, width = rgb.shape[-2:]
        with torch.no_grad():
            lab = rgb_to_lab(rgb)
            L = lab[:, 0]
            chroma = torch.hypot(lab[:, 1], lab[:, 2])
            hue, sat, val = _hsv(rgb)
            r, g, b = (rgb * 255.0).unbind(dim=1)
            cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
            cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
            rows = torch.linspace(0.0, 1.0, height).view(1, height, 1)
            upper = 1.0 - _ramp(rows, 0.35, 0.65)
            lower = _ramp(rows, 0.35, 0.65)

            blue = _band(hue, 170.0, 185.0, 250.0, 265.0) * _ramp(sat, 0.08, 0.2)
            grey = (1.0 - _ramp(chroma, 6.0, 14.0)) * _ramp(L, 62.0, 78.0)
            sky = torch.maximum(blue * _ramp(L, 45.0, 60.0), grey) * upper
            water = _band(hue, 160.0, 175.0, 250.0, 265.0) * _ramp(sat, 0.12, 0.25) * _ramp(val, 0.1, 0.2) * lower
            vegetation = _band(hue, 60.0, 75.0, 155.0, 170.0) * _ramp(sat, 0.12, 0.25) * _ramp(val, 0.08, 0.16)
            person = (
                _band(cr, 128.0, 136.0, 170.0, 178.0)
                * _band(cb, 72.0, 80.0, 124.0, 132.0)
                * _ramp(val, 0.2, 0.35)
                * _ramp(sat, 0.08, 0.15)
            )
            masks = torch.stack([person, sky, vegetation, water], dim=1)
            size = int(round(float(self.smoothing) * min(height, width)))
            masks = _box_smooth(masks, size | 1 if size > 1 else 1)
            return masks / masks.sum(dim=1, keepdim=True).clamp_min(1.0)


class TorchSegmenterAdapter(TorchPickleMixin):
    """Use any torch semantic-segmentation network as a ColorFool segmenter.

    The network's per-pixel logits are turned into probabilities (softmax over classes),
    resized back to the image, and the probabilities of the classes mapped to each region
    are summed into that region's soft mask.

    Parameters
    ----------
    model : torch.nn.Module
        Maps normalised images ``(N, 3, h, w)`` to logits ``(N, C, h', w')`` (a dict
        with key ``"out"``, as torchvision's segmentation models return, is accepted).
    class_mapping : dict of str to int or sequence of int
        For each region of ``("person", "sky", "vegetation", "water")`` the model's class
        indices that belong to it, e.g. for an ADE20K model
        ``{"person": [12], "sky": [2], "vegetation": [4, 9, 17], "water": [21, 26]}``
        (check the indices of your model's label list).
    input_size : int or (height, width), default=None
        Resize images to this size before the model (``None``: native size).
    mean, std : sequence of 3 floats, default=None
        Normalisation expected by the model.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the model runs (a copy is moved there when needed). ``"auto"`` picks CUDA
        when available; an explicit ``"cuda"`` without CUDA is a ``ValueError`` when
        called. Pickled on a GPU, the adapter loads on a CPU-only machine on the CPU,
        with a warning.
    batch_size : int, default=8
        Images per forward pass.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_privacy.image import TorchSegmenterAdapter
    >>> net = torch.nn.Conv2d(3, 5, kernel_size=1)
    >>> seg = TorchSegmenterAdapter(net, {"sky": [1], "water": [3, 4]}, device="cpu")
    >>> sorted(seg(np.random.rand(2, 6, 6, 3)))
    ['sky', 'water']
    """

    # Saved with torch.save and loaded on the CPU when CUDA is gone (TorchPickleMixin).
    _torch_attributes = ("model",)

    def __init__(self, model, class_mapping, *, input_size=None, mean=None, std=None, device="auto", batch_size=8):
        self.model = model
        self.class_mapping = class_mapping
        self.input_size = input_size
        self.mean = mean
        self.std = std
        self.device = device
        self.batch_size = batch_size

    def __repr__(self):
        return (
            f"TorchSegmenterAdapter({type(self.model).__name__}(...), "
            f"class_mapping={self.class_mapping!r})"
        )

    def __getstate__(self):
        state = super().__getstate__()  # the model is saved with torch.save
        state.pop("_cache", None)
        dev = _module_device(self.model) if isinstance(self.model, torch.nn.Module) else None
        state["device_"] = None if dev is None else str(dev)  # where the model was
        return state

    def __setstate__(self, state):
        # The model loads on the CPU, with a warning, when it was saved on CUDA and
        # CUDA is not available here; an explicit CUDA ``device`` then becomes "cpu".
        saved_on = state.get("device_")
        super().__setstate__(state)
        self.__dict__.pop("device_", None)
        device = self.device
        if device not in (None, "auto") and torch.device(device).type == "cuda":
            if not torch.cuda.is_available():
                if not str(saved_on).startswith("cuda"):  # not warned about yet
                    get_map_location(device, owner="TorchSegmenterAdapter")
                self.device = "cpu"

    def _mapping(self):
        if not isinstance(self.class_mapping, dict) or not self.class_mapping:
            raise ValueError("class_mapping must be a non-empty dict region -> class indices.")
        mapping = {}
        for region, classes in self.class_mapping.items():
            if region not in SEGMENT_REGIONS:
                raise ValueError(f"unknown region {region!r} in class_mapping; use {SEGMENT_REGIONS}.")
            idx = np.atleast_1d(np.asarray(classes))
            if idx.dtype.kind not in "iu" or idx.ndim != 1 or idx.size == 0 or idx.min() < 0:
                raise ValueError(f"class_mapping[{region!r}] must be non-negative class indices, got {classes!r}.")
            mapping[region] = torch.as_tensor(idx, dtype=torch.long)
        return mapping

    def _prepared_model(self, device):
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(self.model).__name__}.")
        cache = getattr(self, "_cache", None)
        if cache is not None and cache[0] is self.model and cache[1] == device:
            return cache[2]
        model = self.model
        current = _module_device(model)
        if current is not None and current != torch.device(device):
            model = copy.deepcopy(model).to(device)
        self._cache = (self.model, device, model)
        return model

    def __call__(self, images):
        """Segment a batch of images.

        Parameters
        ----------
        images : array-like of shape (N, H, W, 3)
            Floats in [0, 1], or uint8 in [0, 255] (scaled to [0, 1]).

        Returns
        -------
        masks : dict of str to ndarray of shape (N, H, W)
            One soft mask per mapped region.

        Raises
        ------
        ValueError
            On images :func:`~sklearn_privacy.utils.check_images` rejects (empty,
            NaN or infinity, non-numeric, out of range, wrong shape).
        """
        mapping = self._mapping()
        size = _check_size(self.input_size)
        mean = _check_channel_stat(self.mean, "mean")
        std = _check_channel_stat(self.std, "std")
        batch_size = check_batch_size(self.batch_size)
        device = resolve_device(self.device)
        model = self._prepared_model(device)
        x, _ = check_images(images)
        n, height, width, _ = x.shape
        out = {region: np.empty((n, height, width), dtype=np.float32) for region in mapping}
        with torch.no_grad(), _eval_mode(model):
            for start in range(0, n, batch_size):
                t = torch.from_numpy(x[start : start + batch_size]).permute(0, 3, 1, 2).to(device)
                if size is not None and tuple(t.shape[-2:]) != size:
                    t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
                if mean is not None:
                    t = t - torch.as_tensor(mean, dtype=t.dtype, device=device).view(1, 3, 1, 1)
                if std is not None:
                    t = t / torch.as_tensor(std, dtype=t.dtype, device=device).view(1, 3, 1, 1)
                logits = model(t)
                if isinstance(logits, dict):
                    logits = logits["out"]
                if logits.ndim != 4:
                    raise ValueError(
                        f"the segmentation model must return (N, C, h, w) logits; got {tuple(logits.shape)}."
                    )
                proba = torch.softmax(logits.float(), dim=1)
                if tuple(proba.shape[-2:]) != (height, width):
                    proba = F.interpolate(proba, size=(height, width), mode="bilinear", align_corners=False)
                n_classes = proba.shape[1]
                for region, idx in mapping.items():
                    if idx.max() >= n_classes:
                        raise ValueError(
                            f"class_mapping[{region!r}] names class {int(idx.max())} but the model has {n_classes} classes."
                        )
                    mask = proba[:, idx.to(device)].sum(dim=1).clamp(0.0, 1.0)
                    out[region][start : start + len(mask)] = mask.cpu().numpy()
        return out
