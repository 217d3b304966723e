"""Attackers: the models a protector must defeat.

- :class:`TimeSeriesCNNClassifier`: a skorch-trained deep time-series classifier of
  motion windows (ResNet, InceptionTime or a plain CNN), with training augmentation.
- :class:`MotionFeatures` + :func:`make_feature_attacker`: hand-crafted motion features
  and gradient boosting, a second, unrelated attacker family.
- :class:`RocketClassifier`: random convolution kernels (MiniRocket, MultiRocket, from
  the optional package aeon) and a calibrated ridge head, the strongest motion attacker.
- :class:`DTWNeighborsClassifier`: k-nearest neighbours under dynamic time warping.
- :class:`ImageCNNClassifier`: a small image CNN that owns its preprocessing, so image
  attacks can differentiate through it (:meth:`ImageCNNClassifier.torch_model`).
"""

from ._dtw import DTWNeighborsClassifier
from ._features import MotionFeatures, make_feature_attacker
from ._image_cnn import ImageCNNClassifier
from ._rocket import RocketClassifier
from ._time_series_cnn import TimeSeriesCNNClassifier

__all__ = [
    "DTWNeighborsClassifier",
    "ImageCNNClassifier",
    "MotionFeatures",
    "RocketClassifier",
    "TimeSeriesCNNClassifier",
    "make_feature_attacker",
]
