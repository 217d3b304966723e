"""Motion protectors: learned anonymizers and signal-processing baselines."""

from ._baselines import Downsampler, GaussianNoise, SSASmoother

__all__ = ["Downsampler", "GaussianNoise", "SSASmoother"]
