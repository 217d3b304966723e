"""Save fitted protectors to a file and load them back without executing code from it.

:func:`save_protector` writes one file (a zip archive) holding:

- ``manifest.json``: the format name and version, the versions of sklearn-privacy, torch
  and scikit-learn that wrote it, and a SHA-256 checksum of every other member;
- ``estimator.json``: the class path of the protector (from an allow-list), its
  hyperparameters (``get_params(deep=False)``, JSON values or nested allowed
  estimators) and its fitted attributes, with references to the members below;
- ``arrays.npz``: the fitted numpy arrays, read with ``allow_pickle=False``;
- ``weights-<i>.pt``: the state dict of each torch network, read with
  ``torch.load(..., weights_only=True)``.

:func:`load_protector` rebuilds the protector from these parts: it instantiates only
allowed classes with the stored parameters and never unpickles arbitrary objects, so a
file from an untrusted source cannot run code. Plain :mod:`pickle` (and :mod:`joblib`)
keep working for users who trust their files.
"""

import hashlib
import importlib
import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "load_protector", "save_protector"]

#: Version of the file layout written by :func:`save_protector`. A file with another
#: format version is refused with an error that says which version wrote it.
FORMAT_VERSION = 1

_FORMAT_NAME = "sklearn-privacy-protector"
_MANIFEST = "manifest.json"
_ESTIMATOR = "estimator.json"
_ARRAYS = "arrays.npz"
_JSON_SCALARS = (type(None), bool, int, float, str)


def _allowed_estimators():
    """Class path -> class of the estimators a file may name."""
    from sklearn.pipeline import Pipeline

    from . import motion

    allowed = {f"sklearn_privacy.motion.{name}": getattr(motion, name) for name in motion.__all__}
    allowed["sklearn.pipeline.Pipeline"] = Pipeline
    return allowed


def _estimator_path(estimator):
    for path, cls in _allowed_estimators().items():
        if type(estimator) is cls:
            return path
    allowed = ", ".join(sorted(_allowed_estimators()))
    raise TypeError(
        f"save_protector cannot save a {type(estimator).__module__}."
        f"{type(estimator).__qualname__}: only these classes can be saved safely: "
        f"{allowed}. Use pickle or joblib to save other estimators (only load such "
        "files from sources you trust)."
    )


def _library_class(path, base, what):
    """Resolve ``path`` to a class of sklearn-privacy (or skorch's net) deriving from ``base``.

    Only modules of sklearn-privacy are imported (their code is the library's own) and the
    class must be defined where the path says, so a path cannot reach another object.
    """
    module_name, _, qualname = str(path).rpartition(".")
    if not (module_name == "skorch.net" or module_name.startswith("sklearn_privacy.")):
        raise ValueError(f"The file names a {what} class {path!r} outside sklearn-privacy.")
    try:
        obj = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"The file names a {what} class {path!r} that this version of sklearn-privacy "
            "does not have."
        ) from exc
    if not (
        isinstance(obj, type) and issubclass(obj, base)
        and obj.__module__ == module_name and obj.__qualname__ == qualname
    ):
        raise ValueError(f"The file names {path!r}, which is not a {what} class.")
    return obj


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


# -- writing -------------------------------------------------------------------------------
class _Writer:
    """Encode values as JSON, collecting arrays and torch weights as separate members."""

    def __init__(self):
        self.arrays = {}
        self.weights = []

    def estimator(self, est, where):
        from sklearn.base import BaseEstimator

        if not isinstance(est, BaseEstimator):
            raise TypeError(f"{where} is a {type(est).__name__}, not a scikit-learn estimator.")
        path = _estimator_path(est)
        params = est.get_params(deep=False)
        state = {k: v for k, v in vars(est).items() if k not in params}
        return {
            "class": path,
            "params": {k: self.value(v, f"{where}.{k}") for k, v in params.items()},
            "state": {k: self.value(v, f"{where}.{k}") for k, v in state.items()},
        }

    def value(self, value, where):
        import torch
        from sklearn.base import BaseEstimator
        from skorch import NeuralNet

        if isinstance(value, float) and not np.isfinite(value):
            return {"__float__": repr(value)}
        if isinstance(value, _JSON_SCALARS):
            return value
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return {"__scalar__": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, (list, tuple)):
            items = [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where} is a dict with keys that are not strings.")
            return {"__dict__": {k: self.value(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, NeuralNet):
            return self._net(value, where)
        if isinstance(value, BaseEstimator):
            return {"__estimator__": self.estimator(value, where)}
        raise TypeError(
            f"save_protector cannot store {where} (a {type(value).__module__}."
            f"{type(value).__qualname__}) safely. Use pickle or joblib for this protector "
            "(only load such files from sources you trust)."
        )

    def _array(self, array, where):
        if array.dtype.kind in "biufcUSmM":
            key = f"a{len(self.arrays)}"
            self.arrays[key] = array
            return {"__array__": key}
        if array.dtype == object:
            items = array.ravel().tolist()
            if all(isinstance(v, _JSON_SCALARS) and not isinstance(v, float) for v in items):
                return {"__object_array__": items, "shape": list(array.shape)}
        raise TypeError(
            f"{where} is an array of dtype {array.dtype} that cannot be stored safely."
        )

    def _net(self, net, where):
        if not getattr(net, "initialized_", False):
            raise TypeError(f"{where} is a skorch net that is not initialized.")
        params = net.get_params(deep=False)
        module_kwargs = {
            k[len("module__"):]: v for k, v in params.items() if k.startswith("module__")
        }
        buffer = io.BytesIO()
        import torch

        state = {k: v.detach().cpu() for k, v in net.module_.state_dict().items()}
        torch.save(state, buffer)
        name = f"weights-{len(self.weights)}.pt"
        self.weights.append((name, buffer.getvalue()))
        return {"__net__": {
            "class": _class_path(type(net)),
            "module": _class_path(params["module"]),
            "module_kwargs": self.value(module_kwargs, f"{where}.module kwargs"),
            "batch_size": self.value(params.get("batch_size"), f"{where}.batch_size"),
            "device": str(params.get("device")),
            "weights": name,
        }}


def save_protector(protector, path):
    """Save a fitted protector (or a pipeline of protectors) to ``path``, safely.

    The file holds the hyperparameters as JSON, the fitted numpy arrays in the ``.npz``
    format and the torch weights as state dicts: :func:`load_protector` rebuilds the
    protector from them without unpickling arbitrary objects, so loading a file never
    runs code from it.

    Parameters
    ----------
    protector : estimator
        A fitted :class:`~sklearn_privacy.motion.MotionAnonymizer`,
        :class:`~sklearn_privacy.motion.ReplacementAutoEncoder`,
        :class:`~sklearn_privacy.motion.Downsampler`,
        :class:`~sklearn_privacy.motion.SSASmoother` or
        :class:`~sklearn_privacy.motion.GaussianNoise`, or a
        :class:`~sklearn.pipeline.Pipeline` made of them. An unfitted one is saved too
        (its hyperparameters only).
    path : str or path-like
        The file to write (conventionally ending in ``.skp``); overwritten if it exists.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If the protector, or one of its parameters or fitted attributes, cannot be
        stored safely (e.g. another estimator class, a callable parameter, or
        ``ReplacementAutoEncoder(gate=True)``'s fitted gate classifier). Use
        :mod:`pickle` or :mod:`joblib` for those, and load such files only from sources
        you trust.

    See Also
    --------
    load_protector : Load the file back.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import Downsampler
    >>> from sklearn_privacy.persistence import load_protector, save_protector
    >>> X = np.random.RandomState(0).randn(4, 50, 3).astype(np.float32)
    >>> protector = Downsampler(target_rate=10).fit(X)
    >>> import tempfile, os
    >>> path = save_protector(protector, os.path.join(tempfile.mkdtemp(), "p.skp"))
    >>> np.array_equal(load_protector(path).transform(X), protector.transform(X))
    True
    """
    import sklearn
    import torch

    from . import __version__

    writer = _Writer()
    document = json.dumps(writer.estimator(protector, type(protector).__name__)).encode()
    arrays = io.BytesIO()
    np.savez(arrays, **writer.arrays)
    members = {_ESTIMATOR: document, _ARRAYS: arrays.getvalue(), **dict(writer.weights)}
    manifest = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sklearn_privacy_version": __version__,
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "checksums": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest, indent=1))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# -- reading -------------------------------------------------------------------------------
class _Reader:
    """Decode what :class:`_Writer` wrote."""

    def __init__(self, arrays, weights):
        self.arrays = arrays
        self.weights = weights

    def estimator(self, doc):
        if not isinstance(doc, dict) or set(doc) != {"class", "params", "state"}:
            raise ValueError("An estimator entry of the file is malformed.")
        allowed = _allowed_estimators()
        if doc["class"] not in allowed:
            raise ValueError(
                f"The file names the class {doc['class']!r}, which load_protector does not "
                f"load; allowed: {', '.join(sorted(allowed))}."
            )
        cls = allowed[doc["class"]]
        params = {k: self.value(v) for k, v in doc["params"].items()}
        try:
            estimator = cls(**params)
        except TypeError as exc:
            raise ValueError(
                f"The file's parameters do not fit {cls.__name__} in this version of "
                f"sklearn-privacy: {exc}"
            ) from exc
        state = {k: self.value(v) for k, v in doc["state"].items()}
        device = state.get("device_")
        if isinstance(device, str) and device.startswith("cuda"):
            import torch

            from .utils._torch import get_map_location

            if not torch.cuda.is_available():
                state["device_"] = get_map_location(device, owner=cls.__name__)
        estimator.__dict__.update(state)
        return estimator

    def value(self, value):
        if isinstance(value, _JSON_SCALARS):
            return value
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict) or len(value) == 0:
            raise ValueError("A value of the file is malformed.")
        tag = next(iter(value))
        if tag == "__float__":
            return float(value[tag])
        if tag == "__scalar__":
            return np.dtype(value[tag]).type(value["value"])
        if tag == "__array__":
            if value[tag] not in self.arrays:
                raise ValueError(f"The file refers to a missing array {value[tag]!r}.")
            return self.arrays[value[tag]]
        if tag == "__object_array__":
            array = np.empty(len(value[tag]), dtype=object)
            array[:] = value[tag]
            return array.reshape(value["shape"])
        if tag == "__tuple__":
            return tuple(self.value(v) for v in value[tag])
        if tag == "__dict__":
            return {k: self.value(v) for k, v in value[tag].items()}
        if tag == "__device__":
            import torch

            return torch.device(value[tag])
        if tag == "__estimator__":
            return self.estimator(value[tag])
        if tag == "__net__":
            return self._net(value[tag])
        raise ValueError(f"A value of the file has an unknown tag {tag!r}.")

    def _net(self, doc):
        import torch
        from skorch import NeuralNet

        net_cls = _library_class(doc["class"], NeuralNet, "skorch net")
        module_cls = _library_class(doc["module"], torch.nn.Module, "torch module")
        if doc["weights"] not in self.weights:
            raise ValueError(f"The file refers to missing weights {doc['weights']!r}.")
        try:
            state = torch.load(
                io.BytesIO(self.weights[doc["weights"]]), map_location="cpu", weights_only=True
            )
        except Exception as exc:  # weights_only refuses anything but tensors
            raise ValueError(
                f"The weights {doc['weights']!r} of the file are not a plain state dict "
                f"of tensors; refusing to load them ({type(exc).__name__})."
            ) from exc
        module_kwargs = {f"module__{k}": v for k, v in self.value(doc["module_kwargs"]).items()}
        # The criterion and optimizer only complete skorch's initialisation: they are
        # dropped by ``trim_for_prediction`` below, as in the fitted protector.
        net = net_cls(module_cls, criterion=torch.nn.MSELoss,
                      batch_size=self.value(doc["batch_size"]), device="cpu", verbose=0,
                      **module_kwargs)
        # Building the module draws initial weights: keep the caller's torch state.
        with torch.random.fork_rng(devices=[]):
            net.initialize()
        try:
            net.module_.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"The weights {doc['weights']!r} do not fit the network described in the "
                f"file: {exc}"
            ) from exc
        net.trim_for_prediction()
        device = doc["device"]
        if device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # the estimator that holds the net warns once
        net.set_params(device=device)
        net.module_.to(device)
        return net


def _read_members(path):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"{path} is not a protector file written by save_protector (not a zip archive)."
            " Pickled estimators are not loaded by load_protector: they can run code."
        ) from exc
    with archive:
        names = archive.namelist()
        if _MANIFEST not in names:
            raise ValueError(f"{path} is not a protector file written by save_protector.")
        try:
            manifest = json.loads(archive.read(_MANIFEST))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: the manifest is corrupted ({exc}).") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
            raise ValueError(f"{path} is not a protector file written by save_protector.")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            from . import __version__

            raise ValueError(
                f"{path} has format version {version!r}, written by sklearn-privacy "
                f"{manifest.get('sklearn_privacy_version', '?')}; this sklearn-privacy "
                f"({__version__}) reads format version {FORMAT_VERSION} only. Load it "
                "with the version that wrote it, or refit the protector."
            )
        checksums = manifest.get("checksums")
        if not isinstance(checksums, dict) or set(checksums) != set(names) - {_MANIFEST}:
            raise ValueError(
                f"{path} has been tampered with or is corrupted: its members do not match "
                "its manifest."
            )
        members = {}
        for name, digest in checksums.items():
            data = archive.read(name)
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(
                    f"{path} has been tampered with or is corrupted: the checksum of "
                    f"{name!r} does not match its manifest."
                )
            members[name] = data
    return manifest, members


def load_protector(path):
    """Load a protector written by :func:`save_protector`, without running code from it.

    Only allowed sklearn-privacy classes (and scikit-learn's
    :class:`~sklearn.pipeline.Pipeline`) are instantiated, numpy arrays are read with
    ``allow_pickle=False`` and torch weights with ``weights_only=True``. Weights saved
    from a GPU load on the CPU when CUDA is not available (with a ``UserWarning``; the
    protector's ``device_`` becomes ``"cpu"``).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_protector`.

    Returns
    -------
    protector : estimator
        The protector, fitted as it was saved: its ``transform`` gives the same output.

    Raises
    ------
    ValueError
        If the file is not a protector file (for instance a pickle), was written with
        another format version, has been altered since it was written (checksums), is
        malformed, or names a class that is not allowed.
    FileNotFoundError
        If ``path`` does not exist.

    Warns
    -----
    UserWarning
        When the file was written by another version of sklearn-privacy (the format is
        the same, but results may differ), or when GPU weights load on the CPU.

    See Also
    --------
    save_protector : Write such a file.

    Notes
    -----
    The checksums catch corrupted files and edits that did not update them, not a
    deliberate forgery; what makes a hostile file harmless is that nothing in it is
    executed: at worst it describes a different protector made of allowed classes.
    """
    from . import __version__

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No protector file at {path}.")
    manifest, members = _read_members(path)
    saved_with = manifest.get("sklearn_privacy_version")
    if saved_with != __version__:
        warnings.warn(
            f"{path} was written by sklearn-privacy {saved_with}; this is {__version__}. "
            "The format is compatible, but the protector's behaviour may differ.",
            UserWarning,
            stacklevel=2,
        )
    try:
        with np.load(io.BytesIO(members[_ARRAYS]), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        document = json.loads(members[_ESTIMATOR])
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(
            f"{path}: the stored arrays or parameters are unreadable ({exc})."
        ) from exc
    weights = {name: data for name, data in members.items() if name.startswith("weights-")}
    try:
        return _Reader(arrays, weights).estimator(document)
    except (AttributeError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: the stored protector is malformed ({type(exc).__name__}: {exc})."
        ) from exc
