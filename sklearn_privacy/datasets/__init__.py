"""Real-data loaders and windowing.

Motion loaders return a :class:`~sklearn.utils.Bunch` of whole recordings with
per-sample activity labels; :func:`make_windows` cuts them into tslearn-layout windows.
Image loaders return ``(n, H, W, 3)`` uint8 images with their labels.
"""

from ._base import get_data_home
from ._hapt import load_hapt
from ._images import load_cifar10, load_utkface
from ._mobifall import load_mobifall
from ._motionsense import load_motionsense
from ._windows import make_windows

__all__ = [
    "get_data_home",
    "load_cifar10",
    "load_hapt",
    "load_mobifall",
    "load_motionsense",
    "load_utkface",
    "make_windows",
]
