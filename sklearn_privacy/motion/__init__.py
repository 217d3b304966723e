"""Motion protectors: learned anonymizers and signal-processing baselines."""

from ._aae import MotionAnonymizer
from ._baselines import Downsampler, GaussianNoise, SSASmoother
from ._rae import ReplacementAutoEncoder

__all__ = [
    "Downsampler",
    "GaussianNoise",
    "MotionAnonymizer",
    "ReplacementAutoEncoder",
    "SSASmoother",
]
