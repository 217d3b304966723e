"""sklearn-privacy: protect personal data from unwanted automatic inferences.

Protectors are scikit-learn transformers that alter motion-sensor windows or photos so
that the wanted inference still works and unwanted ones (identity, gender, age, the
private scene) fail. The library also ships attackers, routed privacy scorers, real-data
loaders and benchmarks to measure the privacy-utility trade-off honestly.
"""

from .base import BaseProtector

__version__ = "0.1.0.dev0"

__all__ = ["BaseProtector", "__version__"]
