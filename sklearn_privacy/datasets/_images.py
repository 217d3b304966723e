"""Image data set loaders: UTKFace face chips and CIFAR-10.

Both read local files only (no download). JPEGs are decoded with Pillow in a thread pool
(decoding releases the GIL) straight into one preallocated uint8 array.
"""

import codecs
import numbers
import os
import pickle
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.utils import Bunch

__all__ = ["load_utkface", "load_cifar10"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

_UTKFACE_LAYOUT = (
    "a folder of UTKFace face chips named <age>_<gender>_<race>_<datetime>.jpg.chip.jpg "
    "(e.g. crop_part1/, or its parent holding crop_part1/)"
)
_CIFAR10_LAYOUT = (
    "either JPEG folders <path>/train/<class>/NNNN.jpg and <path>/test/<class>/NNNN.jpg, "
    "or the pickled python batches data_batch_1..data_batch_5, test_batch and batches.meta "
    "(in <path> or <path>/cifar-10-batches-py)"
)
_UTKFACE_SUFFIX = ".jpg.chip.jpg"

_UTKFACE_DESCR = """UTKFace (crop_part1): aligned and cropped face chips
=====================================================

Z. Zhang, Y. Song, H. Qi. Age Progression/Regression by Conditional Adversarial
Autoencoder. IEEE CVPR 2017. Non-commercial research purposes only; the copyright of the
images belongs to their original owners.

Labels come from the file names ``<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``:

- age: integer years;
- gender: 0 = male, 1 = female;
- race: 0 = White, 1 = Black, 2 = Asian, 3 = Indian, 4 = Others.

Files whose names do not parse are skipped and listed in ``skipped`` with the reason
(crop_part1 holds two such names, each missing a label), as are ``.jpg`` entries that are
not readable files (broken links, link loops). Hidden files (``.*``, including macOS
``._*`` resource forks) are ignored. Images are in sorted file-name order.
"""

_CIFAR10_DESCR = """CIFAR-10: 32x32 colour images in 10 classes
==========================================

A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Technical report,
University of Toronto, 2009. Cite the report when using the data.

Classes (target indices): airplane 0, automobile 1, bird 2, cat 3, deer 4, dog 5,
frog 6, horse 7, ship 8, truck 9. Read either from the pickled python batches (the
original pixels) or from JPEG folders ``<subset>/<class>/NNNN.jpg`` (re-encoded, lossy:
pixels differ slightly from the original arrays). Images from JPEG folders are grouped by
class, in file-name order; images from batches keep the batch order.
"""


# -- shared helpers -----------------------------------------------------------------------
def _check_size(size):
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"size must be None, a positive int or a (height, width) pair; got {size!r}.")
    return (int(size[0]), int(size[1]))


def _check_positive(value, name):
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be None or a positive integer, got {value!r}.")
    return int(value)


def _is_hidden(name):
    """Hidden files and folders (``.*``, macOS ``._*`` resource forks, ``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def _decode(path, size):
    """Decode one image to an (H, W, 3) uint8 array, resized to ``size`` when given."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            # Pillow would clip 16-bit values to 255 and turn float ones into 0.
            if not (mode in ("I", "F") or mode.startswith("I;")):
                if size is not None:
                    # JPEG DCT scaling: decode directly at the smallest scale >= size (fast).
                    img.draft("RGB", (size[1], size[0]))
                if img.mode != "RGB":
                    img = img.convert("RGB")
                if size is not None and img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Truncated or corrupt files, non-images: name the file instead of Pillow's words only.
        raise ValueError(f"cannot decode the image {path}: {exc}") from exc
    raise ValueError(
        f"{path} is a {mode!r} image (more than 8 bits per channel); convert it to 8-bit "
        "RGB first"
    )


def _decode_all(paths, size, n_jobs):
    """Decode ``paths`` into one (n, H, W, 3) uint8 array with a thread pool."""
    if not paths:
        return np.empty((0,) + ((size or (0, 0)) + (3,)), dtype=np.uint8)
    first = _decode(paths[0], size)
    out = np.empty((len(paths),) + first.shape, dtype=np.uint8)
    out[0] = first

    def fill(i):
        arr = _decode(paths[i], size)
        if arr.shape != first.shape:
            raise ValueError(
                f"{paths[i]} has shape {arr.shape} but {paths[0]} has {first.shape}; "
                "pass size=... to resize all images to one size."
            )
        out[i] = arr

    n_jobs = n_jobs or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        list(pool.map(fill, range(1, len(paths))))
    return out


# -- UTKFace ------------------------------------------------------------------------------
def _parse_utkface_name(name):
    """Return ``(age, gender, race)`` or a string saying why the name is malformed."""
    if not name.endswith(_UTKFACE_SUFFIX):
        return f"name does not end with {_UTKFACE_SUFFIX!r}"
    fields = name[: -len(_UTKFACE_SUFFIX)].split("_")
    if len(fields) != 4:
        return (
            f"expected 4 fields <age>_<gender>_<race>_<datetime>, found {len(fields)} "
            "(a label is missing)"
        )
    if not all(re.fullmatch(r"\d+", f) for f in fields):
        return "fields are not all non-negative integers"
    age, gender, race = (int(f) for f in fields[:3])
    if gender not in (0, 1):
        return f"gender {gender} is not 0 (male) or 1 (female)"
    if race not in range(5):
        return f"race {race} is not in 0..4"
    return age, gender, race


def load_utkface(path, *, size=None, max_images=None, n_jobs=None):
    """Load UTKFace face chips with their age, gender and race labels.

    Parameters
    ----------
    path : str or path-like
        The folder of ``<age>_<gender>_<race>_<datetime>.jpg.chip.jpg`` files (e.g.
        ``.../utkface/crop_part1``), or a folder holding ``crop_part1/``.
    size : int or (height, width), default=None
        Resize every image to this size (bilinear; JPEG draft-mode decoding makes small
        sizes fast). ``None`` keeps the native 200x200.
    max_images : int, default=None
        Load only the first ``max_images`` well-formed files in sorted name order.
    n_jobs : int, default=None
        Decoding threads (default: up to 8).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``images``: uint8 array of shape (n, H, W, 3);
        - ``age``, ``gender`` (0 male, 1 female), ``race`` (0-4): int arrays of shape (n,);
        - ``filenames``: list of n file names;
        - ``skipped``: list of ``(file name, reason)`` for names that do not parse and
          for ``.jpg`` entries that are not readable files (broken links, link loops);
        - ``DESCR``: description and citation.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or holds no UTKFace file.
    ValueError
        If an image cannot be decoded (truncated or corrupt file) or has more than 8 bits
        per channel (16-bit or float images); the message names it.

    Warns
    -----
    UserWarning
        When files are skipped (malformed names, unreadable entries); they are listed in
        ``skipped``. Hidden files (``.*``, macOS ``._*``) are ignored without a warning.

    Examples
    --------
    >>> from sklearn_privacy.datasets import load_utkface  # doctest: +SKIP
    >>> faces = load_utkface("path/to/utkface/crop_part1", size=64)  # doctest: +SKIP
    >>> faces.images.shape  # doctest: +SKIP
    (9778, 64, 64, 3)
    """
    size = _check_size(size)
    max_images = _check_positive(max_images, "max_images")
    root = Path(path).expanduser()
    if root.is_dir() and (root / "crop_part1").is_dir():
        root = root / "crop_part1"
    if not root.is_dir():
        raise FileNotFoundError(f"UTKFace folder not found: {root}. Expected {_UTKFACE_LAYOUT}.")
    entries = sorted(
        (p for p in root.iterdir() if p.name.lower().endswith(".jpg") and not _is_hidden(p.name)),
        key=lambda p: p.name,
    )
    if not entries:
        raise FileNotFoundError(f"no .jpg file in {root}. Expected {_UTKFACE_LAYOUT}.")
    kept, labels, skipped = [], [], []
    for entry in entries:
        name = entry.name
        # is_file() is False for folders, broken links and link loops (never raises).
        parsed = _parse_utkface_name(name) if entry.is_file() else (
            "not a readable file (a folder, a broken link or a link loop)"
        )
        if isinstance(parsed, str):
            skipped.append((name, parsed))
        else:
            kept.append(name)
            labels.append(parsed)
    if skipped:
        warnings.warn(
            f"UTKFace: skipped {len(skipped)} file(s) in {root}, with malformed names or not "
            f"readable ({', '.join(n for n, _ in skipped[:3])}"
            f"{', ...' if len(skipped) > 3 else ''}); "
            "see the 'skipped' entry of the returned Bunch.",
            UserWarning,
            stacklevel=2,
        )
    if max_images is not None:
        kept, labels = kept[:max_images], labels[:max_images]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, 3)
    images = _decode_all([root / n for n in kept], size, n_jobs)
    return Bunch(
        images=images,
        age=labels[:, 0],
        gender=labels[:, 1],
        race=labels[:, 2],
        filenames=kept,
        skipped=skipped,
        DESCR=_UTKFACE_DESCR,
    )


# -- CIFAR-10 -----------------------------------------------------------------------------
def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


def _encode_latin1(obj, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: str -> latin1 only."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError("_codecs.encode is only admitted for str -> latin1 bytes")
    return codecs.encode(obj, "latin1", errors)


_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer(),
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol-2 pickles written by Python 3 encode bytes through _codecs.encode.
    ("_codecs", "encode"): _encode_latin1,
}


class _CifarUnpickler(pickle.Unpickler):
    """Admits numpy arrays and dtypes only: a batch is a dict of lists, bytes and arrays."""

    def find_class(self, module, name):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global '{module}.{name}' in a CIFAR-10 batch: only numpy arrays "
                "are admitted"
            ) from None


def _read_batch(file):
    with open(file, "rb") as f:
        obj = _CifarUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{file} does not hold a CIFAR-10 batch dict (got {type(obj).__name__}).")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _as_str(value):
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _first_per_class(target, max_per_class):
    """Indices keeping the first ``max_per_class`` of each class, in original order."""
    if max_per_class is None:
        return np.arange(len(target))
    order = np.argsort(target, kind="stable")
    sorted_t = target[order]
    starts = np.searchsorted(sorted_t, sorted_t, side="left")
    rank = np.arange(len(target)) - starts
    return np.sort(order[rank < max_per_class])


def _integer_array(values, file, key, low, high):
    """``values`` as an integer array in ``[low, high]``; never wraps, truncates or rounds."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{file}: the {key!r} entry is not an array ({exc}).") from None
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{file}: the {key!r} entry must hold integers in {low}..{high}, got dtype {arr.dtype}."
        )
    if arr.size and (arr.min() < low or arr.max() > high):
        raise ValueError(
            f"{file}: the {key!r} entry must hold integers in {low}..{high}, found values "
            f"{arr.min()}..{arr.max()}."
        )
    return arr


def _load_cifar_batches(folder, subset, max_per_class):
    names = [f"data_batch_{i}" for i in range(1, 6)] if subset == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 batches {missing} not found in {folder}. Expected {_CIFAR10_LAYOUT}."
        )
    meta = _read_batch(folder / "batches.meta")
    target_names = [_as_str(n) for n in meta.get("label_names", CIFAR10_CLASSES)]
    data, target, filenames = [], [], []
    for name in names:
        batch = _read_batch(folder / name)
        try:
            arr = _integer_array(batch["data"], folder / name, "data", 0, 255).astype(np.uint8)
            labels = _integer_array(
                batch["labels"], folder / name, "labels", 0, len(target_names) - 1
            ).astype(np.int64)
        except KeyError as exc:
            raise ValueError(f"{folder / name} lacks the {exc} entry of a CIFAR-10 batch.") from None
        if (
            arr.ndim != 2
            or arr.shape[1] != 3 * 32 * 32
            or labels.ndim != 1
            or arr.shape[0] != labels.shape[0]
        ):
            raise ValueError(
                f"{folder / name}: data of shape {arr.shape} with {labels.shape[0]} labels; "
                "expected (n, 3072) rows of 32x32 RGB planes."
            )
        data.append(arr)
        target.append(labels)
        files = batch.get("filenames")
        filenames.extend(
            _as_str(f) for f in (files if files is not None else [f"{name}/{i}" for i in range(len(labels))])
        )
    data, target = np.concatenate(data), np.concatenate(target)
    keep = _first_per_class(target, max_per_class)
    images = data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return Bunch(
        images=np.ascontiguousarray(images),
        target=target[keep],
        target_names=target_names,
        filenames=[filenames[i] for i in keep],
        DESCR=_CIFAR10_DESCR,
    )


def _load_cifar_jpeg(root, subset, max_per_class, n_jobs):
    folder = root / subset
    # The class indices are CIFAR-10's canonical ones, whatever the folder listing holds,
    # so that every subset maps a class name to the same target.
    entries = [p for p in folder.iterdir() if not _is_hidden(p.name)]
    classes = {p.name for p in entries if p.is_dir()}
    missing = [c for c in CIFAR10_CLASSES if c not in classes]
    if missing:
        raise FileNotFoundError(
            f"{folder}: class folder(s) {missing} missing; expected one folder per CIFAR-10 "
            f"class {list(CIFAR10_CLASSES)}. Expected {_CIFAR10_LAYOUT}."
        )
    unknown = sorted(classes - set(CIFAR10_CLASSES))
    if unknown:
        raise ValueError(
            f"{folder}: folder(s) {unknown} are not CIFAR-10 classes {list(CIFAR10_CLASSES)}."
        )
    others = sorted(p.name for p in entries if not p.is_dir())
    target_names = list(CIFAR10_CLASSES)
    paths, target = [], []
    for k, cls in enumerate(target_names):
        files, ignored = [], []
        for p in (folder / cls).iterdir():
            if _is_hidden(p.name):
                continue
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                ignored.append(p.name)
            elif not p.is_file():
                raise ValueError(
                    f"{p} is not a readable file (a folder, a broken link or a link loop)."
                )
            else:
                files.append(p.name)
        others.extend(f"{cls}/{n}" for n in sorted(ignored))
        files.sort()
        if max_per_class is not None:
            files = files[:max_per_class]
        paths.extend(folder / cls / f for f in files)
        target.extend([k] * len(files))
    if others:
        warnings.warn(
            f"CIFAR-10: ignored {len(others)} non-image file(s) in {folder} "
            f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}).",
            UserWarning,
            stacklevel=3,
        )
    images = _decode_all(paths, None, n_jobs)
    return Bunch(
        images=images,
        target=np.asarray(target, dtype=np.int64),
        target_names=target_names,
        filenames=[f"{subset}/{p.parent.name}/{p.name}" for p in paths],
        DESCR=_CIFAR10_DESCR,
    )


def load_cifar10(path, *, subset="train", max_per_class=None, n_jobs=None):
    """Load CIFAR-10 from JPEG class folders or from the pickled python batches.

    Parameters
    ----------
    path : str or path-like
        A folder with ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (e.g.
        ``path/to/cifar10``), or with the python batches ``data_batch_1`` ..
        ``data_batch_5``, ``test_batch`` and ``batches.meta`` (directly or in
        ``cifar-10-batches-py/``). The batches are read with an unpickler that admits
        numpy arrays only, never arbitrary code.
    subset : {"train", "test"}, default="train"
        Which split to load.
    max_per_class : int, default=None
        Keep only the first ``max_per_class`` images of each class.
    n_jobs : int, default=None
        JPEG decoding threads (default: up to 8).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``images``: uint8 array of shape (n, 32, 32, 3);
        - ``target``: int array of shape (n,), indices into ``target_names``;
        - ``target_names``: list of class names (for JPEG folders always the canonical
          CIFAR-10 order, airplane 0 to truck 9, in every subset);
        - ``filenames``: list of n names (``"<subset>/<class>/<file>"`` for JPEG folders,
          the batch's own file names for pickles);
        - ``DESCR``: description and citation.

    Raises
    ------
    FileNotFoundError
        If ``path`` holds neither layout, or a JPEG subset lacks a class folder.
    ValueError
        If a JPEG subset holds a folder that is not a CIFAR-10 class, an image cannot be
        decoded or has more than 8 bits per channel, or a batch holds pixels outside
        0..255, non-integer data or labels outside the classes (the message names the
        file).
    pickle.UnpicklingError
        If a batch file refers to anything but numpy arrays.

    Warns
    -----
    UserWarning
        When a JPEG subset holds files that are not images (``.jpg``, ``.jpeg``,
        ``.png``); they are not loaded. Hidden files and folders (``.*``, macOS ``._*``,
        ``__MACOSX``) are ignored without a warning.

    Examples
    --------
    >>> from sklearn_privacy.datasets import load_cifar10  # doctest: +SKIP
    >>> test = load_cifar10("path/to/cifar10", subset="test")  # doctest: +SKIP
    >>> test.images.shape  # doctest: +SKIP
    (10000, 32, 32, 3)
    """
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
    max_per_class = _check_positive(max_per_class, "max_per_class")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder not found: {root}. Expected {_CIFAR10_LAYOUT}.")
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "batches.meta").is_file():
            return _load_cifar_batches(folder, subset, max_per_class)
    if (root / subset).is_dir():
        return _load_cifar_jpeg(root, subset, max_per_class, n_jobs)
    raise FileNotFoundError(f"no CIFAR-10 {subset!r} data in {root}. Expected {_CIFAR10_LAYOUT}.")
