"""Apply a fitted protector to data larger than memory, chunk by chunk.

- :func:`chunked_transform`: a numpy array or a memory-mapped ``.npy`` file (``np.load(path,
  mmap_mode="r")``), read a chunk of windows at a time and written into a ``.npy`` file
  (or an array in memory), with a progress bar.
- :func:`dask_transform`: a Dask array chunked along the windows, transformed lazily by
  ``map_blocks``, so it runs on a Dask cluster.
- :func:`transform_image_folder`: the image files of a folder, read a chunk of images at
  a time and written as PNG files to another folder.

Both feed each chunk to the protector's ``transform`` as it is: the result equals the
in-memory ``transform`` whenever the protector transforms each window independently of
the others (every motion protector does). :class:`~sklearn_privacy.motion.GaussianNoise`
draws its noise per call, that is per chunk: with ``noise_random_state=None`` (fresh
noise, the safe choice here) the output differs from the in-memory one only by the draw;
with a fixed ``noise_random_state`` every chunk of the same size repeats the same noise,
which an attacker could average out.
"""

import mmap
import numbers
from pathlib import Path

import numpy as np

__all__ = ["chunked_transform", "dask_transform", "transform_image_folder"]

#: File suffixes read by :func:`transform_image_folder` by default.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_DASK_MISSING = (
    "dask_transform needs Dask: install it with pip install \"sklearn-privacy[distributed]\" "
    "(or pip install \"dask[distributed]\")."
)


def _check_chunk_size(chunk_size):
    if (
        not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
    return int(chunk_size)


def _check_input_shape(shape):
    if len(shape) < 2:
        raise ValueError(
            "X must hold windows along its first axis: (n_windows, n_timestamps, "
            f"n_channels), (n_windows, n_timestamps) or images; got shape {tuple(shape)}."
        )


def _transform_block(protector, block):
    """``protector.transform`` of one chunk, as an array with one row per window."""
    out = np.asarray(protector.transform(block))
    if out.shape[0] != block.shape[0]:
        raise ValueError(
            f"The protector returned {out.shape[0]} rows for a chunk of {block.shape[0]} "
            "windows: chunked transforms need one output per input window."
        )
    return out


def _release_rows(array, start, stop):
    """Unmap rows ``[start, stop)`` of a memory-mapped array from this process.

    Pages of a memory map that were read or written stay in the process's resident memory
    until unmapped, so streaming a large ``.npy`` file through a memory map would grow it
    to the file's size. Written pages are flushed to the file first; the data stay in the
    file (and the page cache). Anything but a C-contiguous ``numpy.memmap`` that owns its
    mapping is left alone.
    """
    mapping = getattr(array, "base", None)
    if (
        not isinstance(mapping, mmap.mmap) or stop <= start
        or not hasattr(mmap, "MADV_DONTNEED") or not array.flags.c_contiguous
    ):
        return
    origin = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    first = array[start:stop].ctypes.data - origin
    end = first + (stop - start) * array[0].nbytes
    first -= first % mmap.PAGESIZE
    try:
        if array.flags.writeable:
            mapping.flush(first, end - first)
        mapping.madvise(mmap.MADV_DONTNEED, first, end - first)
    except (OSError, ValueError):  # pragma: no cover - platform without these calls
        pass


def _probe(protector, X):
    """Shape (after the first axis) and dtype of the protector's output on ``X``'s windows."""
    sample = np.asarray(X[:1]) if X.shape[0] else np.zeros((1, *X.shape[1:]), dtype=X.dtype)
    out = _transform_block(protector, sample)
    return out.shape[1:], out.dtype


def chunked_transform(protector, X, output=None, *, chunk_size=4096, verbose=False):
    """Transform ``X`` chunk by chunk with a fitted protector, in bounded memory.

    Only one chunk of ``X`` and of the output is in memory at a time when ``X`` is
    memory-mapped (``np.load(path, mmap_mode="r")``) and ``output`` is a path: the pages
    of both files are unmapped from the process once their chunk is done, so its resident
    memory does not grow with the size of the files.

    Parameters
    ----------
    protector : fitted estimator
        Anything with ``transform``: a fitted protector, a pipeline of them, or one
        loaded with :func:`~sklearn_privacy.persistence.load_protector`.
    X : ndarray or numpy.memmap of shape (n_windows, ...)
        Windows ``(n_windows, n_timestamps, n_channels)``, ``(n_windows, n_timestamps)``
        or images, chunked along the first axis.
    output : str or path-like, default=None
        A ``.npy`` file to write the result to (created or overwritten, through
        :func:`numpy.lib.format.open_memmap`). ``None`` returns the result as an array in
        memory.
    chunk_size : int, default=4096
        Windows per chunk. Memory use grows with it; the protector's own batching
        (``batch_size``) still applies inside a chunk.
    verbose : bool, default=False
        Show a progress bar over the windows.

    Returns
    -------
    X_protected : ndarray or numpy.memmap of shape (n_windows, ...)
        The protected windows; a read-only memory map of ``output`` when it is given.
        Its shape after the first axis and its dtype are those of the protector's
        output.

    Raises
    ------
    ValueError
        If ``X`` has fewer than 2 dimensions, ``chunk_size`` is not a positive integer,
        or the protector does not return one row per window.

    See Also
    --------
    dask_transform : The same on a Dask array, for a cluster.

    Notes
    -----
    The output equals ``protector.transform(X)`` when the protector protects each window
    on its own, which every motion protector does, except that
    :class:`~sklearn_privacy.motion.GaussianNoise` draws its noise per chunk (keep its
    ``noise_random_state=None`` so that chunks do not repeat the same noise).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import SSASmoother
    >>> from sklearn_privacy.utils import chunked_transform
    >>> X = np.random.RandomState(0).randn(10, 32, 3).astype(np.float32)
    >>> smoother = SSASmoother().fit(X)
    >>> out = chunked_transform(smoother, X, chunk_size=4)
    >>> np.array_equal(out, smoother.transform(X))
    True
    """
    from ._torch import progress_bar

    chunk_size = _check_chunk_size(chunk_size)
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    _check_input_shape(X.shape)
    n = X.shape[0]
    tail, dtype = _probe(protector, X)
    shape = (n, *tail)
    if output is None:
        result = np.empty(shape, dtype=dtype)
    else:
        result = np.lib.format.open_memmap(Path(output), mode="w+", dtype=dtype, shape=shape)
    with progress_bar(n, desc="protect", verbose=verbose, unit="window") as bar:
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            out = _transform_block(protector, np.asarray(X[start:stop]))
            if out.shape[1:] != tail:
                raise ValueError(
                    f"The protector returned windows of shape {out.shape[1:]} for one chunk "
                    f"and {tail} for another."
                )
            result[start:stop] = out
            _release_rows(X, start, stop)
            _release_rows(result, start, stop)
            bar.update(stop - start)
    if output is None:
        return result
    result.flush()
    del result
    return np.load(Path(output), mmap_mode="r")


def dask_transform(protector, X):
    """Transform a Dask array of windows lazily with a fitted protector.

    Each chunk of windows goes through ``protector.transform`` as one task
    (:func:`dask.array.map_blocks`), so the work runs on the threads, processes or
    cluster of whatever Dask scheduler computes the result, with bounded memory per
    task. The protector is sent to each worker with the tasks (it pickles, torch
    weights included).

    Parameters
    ----------
    protector : fitted estimator
        Anything with ``transform``: a fitted protector or a pipeline of them.
    X : dask.array.Array of shape (n_windows, ...)
        Windows (or images) chunked along the first axis. Chunks along the other axes
        are merged first (a window must be whole to be protected).

    Returns
    -------
    X_protected : dask.array.Array of shape (n_windows, ...)
        Lazy; with the chunks of ``X`` along the first axis and the protector's output
        shape and dtype (found by transforming one window now).

    Raises
    ------
    ImportError
        If Dask is not installed (``pip install "sklearn-privacy[distributed]"``).
    TypeError
        If ``X`` is not a Dask array.
    ValueError
        If ``X`` has fewer than 2 dimensions.

    See Also
    --------
    chunked_transform : The same on a numpy array or a ``.npy`` memory map.

    Notes
    -----
    As for :func:`chunked_transform`, :class:`~sklearn_privacy.motion.GaussianNoise`
    draws its noise per chunk: keep its ``noise_random_state=None``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from sklearn_privacy.motion import Downsampler
    >>> from sklearn_privacy.utils import dask_transform
    >>> X = np.random.RandomState(0).randn(10, 50, 3).astype(np.float32)
    >>> protector = Downsampler(target_rate=10).fit(X)
    >>> lazy = dask_transform(protector, da.from_array(X, chunks=(4, 50, 3)))
    >>> lazy.chunks[0]
    (4, 4, 2)
    >>> np.array_equal(lazy.compute(), protector.transform(X))
    True
    """
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(_DASK_MISSING) from exc
    if not isinstance(X, da.Array):
        raise TypeError(
            f"dask_transform takes a dask.array.Array; got {type(X).__name__}. Use "
            "chunked_transform for numpy arrays and memory maps, or "
            "dask.array.from_array(X, chunks=...) first."
        )
    _check_input_shape(X.shape)
    if any(n > 1 for n in X.numblocks[1:]):
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    sample = np.zeros((1, *X.shape[1:]), dtype=X.dtype)
    tail, dtype = _probe(protector, sample)

    def protect(block):
        if block.shape[0] == 0:
            return np.empty((0, *tail), dtype=dtype)
        return _transform_block(protector, block)

    return da.map_blocks(
        protect, X, dtype=dtype, chunks=(X.chunks[0], *((s,) for s in tail)),
        meta=np.empty((0,) * (1 + len(tail)), dtype=dtype), token="protect",
    )


def transform_image_folder(protector, input_dir, output_dir, *, chunk_size=32,
                           suffixes=IMAGE_SUFFIXES, verbose=False):
    """Protect the image files of a folder, a chunk at a time, into PNG files.

    The images of ``input_dir`` (its files whose suffix is in ``suffixes``, in name
    order; subfolders are not read) are read as 8-bit RGB, ``chunk_size`` at a time,
    given to ``protector.transform`` as a list of ``(H, W, 3)`` uint8 arrays (so they may
    differ in size), and each protected image is written losslessly to
    ``output_dir/<name>.png``. Only one chunk of images is in memory at a time.

    Parameters
    ----------
    protector : fitted estimator
        Anything whose ``transform`` takes a list of uint8 ``(H, W, 3)`` images and
        returns one uint8 image per input (every image protector does), e.g. one loaded
        with :func:`~sklearn_privacy.persistence.load_protector`.
    input_dir : str or path-like
        Folder of image files.
    output_dir : str or path-like
        Folder for the PNG files; created when missing, existing files of the same name
        are overwritten. Must differ from ``input_dir``.
    chunk_size : int, default=32
        Images read, protected and written at a time.
    suffixes : tuple of str, default=IMAGE_SUFFIXES
        Suffixes (lower case, with the dot) of the files to read.
    verbose : bool, default=False
        Show a progress bar over the images.

    Returns
    -------
    paths : list of Path
        The PNG files written, in the order of the input files.

    Raises
    ------
    ValueError
        If ``input_dir`` holds no image file, two inputs share a name stem (they would
        write the same PNG), the folders are the same, or the protector does not return
        one ``(H, W, 3)`` image per input.
    FileNotFoundError
        If ``input_dir`` is not a folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_privacy.utils import transform_image_folder
    >>> class Invert:
    ...     def transform(self, images):
    ...         return [255 - image for image in images]
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(folder / "black.png")
    >>> [path.name for path in transform_image_folder(Invert(), folder, folder / "out")]
    ['black.png']
    >>> int(np.asarray(Image.open(folder / "out" / "black.png")).min())
    255
    >>> import shutil
    >>> shutil.rmtree(folder)
    """
    from PIL import Image

    from ._torch import progress_bar

    chunk_size = _check_chunk_size(chunk_size)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"No folder at {input_dir}.")
    if output_dir.exists() and output_dir.resolve() == input_dir.resolve():
        raise ValueError("output_dir must differ from input_dir: the PNG files written "
                         "would replace the inputs.")
    suffixes = tuple(suffix.lower() for suffix in suffixes)
    files = sorted(path for path in input_dir.iterdir()
                   if path.is_file() and path.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"{input_dir} holds no image file (suffixes {list(suffixes)}).")
    stems = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(f"{stems[path.stem].name} and {path.name} would both be "
                             f"written to {path.stem}.png; rename one of them.")
        stems[path.stem] = path
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with progress_bar(len(files), desc="protect", verbose=verbose, unit="image") as bar:
        for start in range(0, len(files), chunk_size):
            batch = files[start:start + chunk_size]
            images = []
            for path in batch:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            protected = protector.transform(images)
            if len(protected) != len(images):
                raise ValueError(f"The protector returned {len(protected)} images for "
                                 f"{len(images)}.")
            for path, image in zip(batch, protected):
                image = np.asarray(image)
                if image.ndim != 3 or image.shape[2] != 3:
                    raise ValueError(f"The protector returned an image of shape "
                                     f"{image.shape} for {path.name}; expected (H, W, 3).")
                if image.dtype != np.uint8:
                    raise ValueError(f"The protector returned {image.dtype} pixels for "
                                     f"{path.name}; expected uint8 (give it uint8 images).")
                target = output_dir / f"{path.stem}.png"
                Image.fromarray(image).save(target)
                written.append(target)
            bar.update(len(batch))
    return written
