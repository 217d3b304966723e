"""A local cache of fitted models: train once, reuse in later runs.

Nothing is ever downloaded: the cache only holds what this machine fitted. A model is
stored as two files, a JSON file (class, hyperparameters, small fitted attributes) and a
torch file of tensors only, read back with ``torch.load(..., weights_only=True)`` so
loading never executes code from the cache.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_key", "fit_or_load_cached", "get_cache_dir"]


def get_cache_dir(cache_dir=None):
    """Return the folder where sklearn-privacy caches fitted models.

    Parameters
    ----------
    cache_dir : str or path-like, default=None
        The folder to use. When None, ``$SKLEARN_PRIVACY_CACHE`` if set, else
        ``~/.cache/sklearn-privacy``. ``~`` is expanded. The folder is not created here;
        :func:`fit_or_load_cached` creates it when it first writes to it.

    Returns
    -------
    cache_dir : pathlib.Path

    Examples
    --------
    >>> from sklearn_privacy.utils import get_cache_dir
    >>> get_cache_dir("/tmp/models").as_posix()
    '/tmp/models'
    """
    if cache_dir is None:
        cache_dir = (os.environ.get("SKLEARN_PRIVACY_CACHE")
                     or Path("~") / ".cache" / "sklearn-privacy")
    return Path(cache_dir).expanduser()


def _hash_value(digest, value):
    """Feed ``value`` (arrays, scalars, nested lists/dicts) into ``digest``, exactly."""
    if value is None or isinstance(value, (bool, int, float, str)):
        digest.update(json.dumps([type(value).__name__, value]).encode())
        return
    if isinstance(value, dict):
        digest.update(b"dict%d" % len(value))
        for k in sorted(value, key=repr):
            _hash_value(digest, repr(k))
            _hash_value(digest, value[k])
        return
    arr = np.asarray(value)
    if arr.dtype == object:
        digest.update(b"object%r" % (arr.shape,))
        for item in arr.reshape(-1):
            _hash_value(digest, item)
        return
    arr = np.ascontiguousarray(arr)
    digest.update(f"array{arr.dtype.str}{arr.shape}".encode())
    digest.update(memoryview(arr.reshape(-1).view(np.uint8)))


#: Parameters that change how a fit runs or reports, not the model it gives.
_NOT_IN_KEY = ("verbose", "device", "n_jobs")


def _params_json(estimator):
    params = {
        k: v for k, v in estimator.get_params(deep=False).items() if k not in _NOT_IN_KEY
    }
    return json.dumps(params, sort_keys=True, default=repr)


def cache_key(estimator, X, y=None, **fit_params):
    """The hex digest that names a fitted model in the cache.

    It hashes the estimator's class, its parameters (``get_params(deep=False)``, less
    ``verbose``, ``device`` and ``n_jobs``, which do not change the model), the
    library version and the exact training data (values, dtype and shape of ``X``,
    ``y`` and every fit parameter): changing any of them gives another key.

    Parameters
    ----------
    estimator : estimator
    X, y : array-like
        The training data.
    **fit_params : dict
        Other arguments given to ``fit`` (e.g. ``groups``).

    Returns
    -------
    key : str
        64 hexadecimal characters.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_privacy.utils import cache_key
    >>> X = np.zeros((4, 2)); y = [0, 1, 0, 1]
    >>> cache_key(LogisticRegression(), X, y) == cache_key(LogisticRegression(C=2.0), X, y)
    False
    """
    from .. import __version__

    cls = type(estimator)
    digest = hashlib.sha256()
    _hash_value(digest, f"{cls.__module__}.{cls.__qualname__}")
    _hash_value(digest, __version__)
    _hash_value(digest, _params_json(estimator))
    _hash_value(digest, X)
    _hash_value(digest, y)
    _hash_value(digest, {k: v for k, v in fit_params.items()})
    return digest.hexdigest()


def _check_key(key):
    if key is None:
        return ""
    if not isinstance(key, str) or not key or not all(c.isalnum() or c in "-_." for c in key) \
            or key.startswith("."):
        raise ValueError(
            "key must be None or a non-empty name of letters, digits, '-', '_' and '.' "
            f"(not starting with '.'); got {key!r}."
        )
    return key + "-"


def fit_or_load_cached(estimator, X, y=None, *, key=None, cache_dir=None, **fit_params):
    """Fit ``estimator``, or load the model fitted earlier with the same settings and data.

    The cache entry is named by :func:`cache_key` (class, parameters, library version
    and training data), so a changed parameter or a changed training set never reuses a
    stale model. Nothing is downloaded: a miss fits the estimator here and stores it.
    Only estimators that can save themselves safely are supported: a ``save(path)``
    method and a ``load(path, device=...)`` class method, as in
    :class:`~sklearn_privacy.adversaries.ImageCNNClassifier`.

    Set ``random_state`` to an int: with ``random_state=None`` every fit differs, yet
    the cache returns the first one.

    Parameters
    ----------
    estimator : estimator with ``save`` and ``load``
        Fitted in place on a miss.
    X, y : array-like
        Training data, given to ``estimator.fit(X, y, **fit_params)``.
    key : str, default=None
        A readable prefix of the file names (e.g. ``"cifar10-attacked"``); letters,
        digits, ``-``, ``_`` and ``.``.
    cache_dir : str or path-like, default=None
        See :func:`get_cache_dir`.
    **fit_params : dict
        Other arguments of ``fit`` (part of the cache key).

    Returns
    -------
    fitted : estimator
        ``estimator`` itself, fitted, on a miss; on a hit a new instance loaded from the
        cache on ``estimator``'s ``device``, with the same parameters.

    Raises
    ------
    TypeError
        If the estimator cannot save and load itself.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.adversaries import ImageCNNClassifier
    >>> from sklearn_privacy.utils import fit_or_load_cached
    >>> X = np.zeros((8, 8, 8, 3), dtype=np.uint8); y = np.repeat([0, 1], 4)
    >>> X[y == 1] = 255
    >>> clf = ImageCNNClassifier(n_filters=2, input_size=8, max_epochs=1,
    ...                          early_stopping=False, random_state=0, device="cpu")
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = fit_or_load_cached(clf, X, y, key="demo", cache_dir=tmp)
    ...     again = fit_or_load_cached(clf, X, y, key="demo", cache_dir=tmp)
    >>> bool(np.array_equal(first.predict_proba(X), again.predict_proba(X)))
    True
    """
    cls = type(estimator)
    if not (callable(getattr(estimator, "save", None)) and callable(getattr(cls, "load", None))):
        raise TypeError(
            f"{cls.__name__} cannot be cached: it needs a save(path) method and a "
            "load(path, device=...) class method (as ImageCNNClassifier has)."
        )
    prefix = _check_key(key)
    folder = get_cache_dir(cache_dir)
    path = folder / f"{prefix}{cache_key(estimator, X, y, **fit_params)}.pt"
    if path.is_file() and path.with_suffix(".json").is_file():
        return cls.load(path, device=getattr(estimator, "device", "auto"))
    estimator.fit(X, y, **fit_params)
    folder.mkdir(parents=True, exist_ok=True)
    # Write under temporary names, then rename: a crash never leaves a half entry.
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp_path = Path(tmp) / path.name
        estimator.save(tmp_path)
        os.replace(tmp_path.with_suffix(".json"), path.with_suffix(".json"))
        os.replace(tmp_path, path)
    return estimator
