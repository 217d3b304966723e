"""Real-data loaders and windowing.

Motion loaders return a :class:`~sklearn.utils.Bunch` of whole recordings with
per-sample activity labels; :func:`make_windows` cuts them into tslearn-layout windows.
"""

from ._base import get_data_home
from ._hapt import load_hapt
from ._mobifall import load_mobifall
from ._motionsense import load_motionsense
from ._windows import make_windows

__all__ = [
    "get_data_home",
    "load_hapt",
    "load_mobifall",
    "load_motionsense",
    "make_windows",
]
