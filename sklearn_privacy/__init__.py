"""sklearn-privacy: protect personal data from unwanted automatic inferences.

Protectors are scikit-learn transformers that alter motion-sensor windows or photos so
that the wanted inference still works and unwanted ones (identity, gender, age, the
private scene) fail. The library also ships attackers, routed privacy scorers, real-data
loaders and benchmarks to measure the privacy-utility trade-off honestly.
"""

__version__ = "0.1.0.dev0"

__all__ = ["BaseProtector", "__version__"]


def __getattr__(name):
    # Importing the package stays light (no torch) so that the ``sklearn-privacy`` command
    # answers ``--help`` and ``--version`` at once; ``BaseProtector`` loads on first use.
    if name == "BaseProtector":
        from .base import BaseProtector

        return BaseProtector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
