"""Image protectors: ColorFool, P-FGSM, EdgeFool, segmenters, colour maths, the classifier wrapper.

Every protector attacks a classifier through :class:`ImageClassifier`, which owns the
classifier's preprocessing (resize, normalisation): success is judged on the final
quantised image through that same deployment preprocessing. Images are ``(n, H, W, 3)``
uint8 or floats in [0, 1] (or a list of images of different sizes); outputs keep the
input's convention. ``transform`` leaves a fitted protector unchanged; per-image figures
(success, steps or trials, PSNR...) come from ``transform_with_diagnostics``.
"""

from ._classifier import ImageClassifier, topk_out_rate
from ._color import ciede2000, lab_to_rgb, lab_to_rgb_array, rgb_to_lab, rgb_to_lab_array
from ._colorfool import ROBUST_TRANSFORMS, ColorFool
from ._edgefool import EdgeFool
from ._pfgsm import PrivateFGSM
from ._segmenters import SEGMENT_REGIONS, HeuristicSegmenter, Segmenter, TorchSegmenterAdapter

__all__ = [
    "ColorFool",
    "EdgeFool",
    "HeuristicSegmenter",
    "ImageClassifier",
    "PrivateFGSM",
    "ROBUST_TRANSFORMS",
    "SEGMENT_REGIONS",
    "Segmenter",
    "TorchSegmenterAdapter",
    "ciede2000",
    "lab_to_rgb",
    "lab_to_rgb_array",
    "rgb_to_lab",
    "rgb_to_lab_array",
    "topk_out_rate",
]
