"""Helpers shared by the data set loaders: data home, checksums, downloads, bunches."""

import hashlib
import io
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["get_data_home"]

ATTRIBUTE_COLUMNS = ["age", "height", "weight", "gender"]

# pandas' C parser rounds decimal strings to the nearest float64 only with
# ``float_precision="round_trip"`` before 3.1 (its default "high" is up to 1 ulp off on
# a large share of values); from 3.1 on the default is exact and the option is deprecated.
_EXACT_FLOATS = (
    {} if tuple(int(p) for p in re.findall(r"\d+", pd.__version__)[:2]) >= (3, 1)
    else {"float_precision": "round_trip"}
)


def get_data_home(data_home=None):
    """Return the folder where sklearn-privacy keeps downloaded data and caches.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. When None, ``$SKLEARN_PRIVACY_DATA`` if set, else
        ``~/sklearn_privacy_data``. ``~`` is expanded. The folder is not created here;
        the loaders create it when they first write to it.

    Returns
    -------
    data_home : pathlib.Path
    """
    if data_home is None:
        data_home = os.environ.get("SKLEARN_PRIVACY_DATA", Path("~") / "sklearn_privacy_data")
    return Path(data_home).expanduser()


def sha256_of(path, chunk_size=1 << 20):
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(sha256):
    """Validate a SHA-256 hex digest argument; return it lower-cased."""
    if not isinstance(sha256, str) or len(sha256) != 64 or not all(
        c in "0123456789abcdef" for c in sha256.lower()
    ):
        raise ValueError(f"sha256 must be a 64-character hexadecimal string, got {sha256!r}")
    return sha256.lower()


def download(url, dest, sha256, *, timeout=60):
    """Download ``url`` to ``dest`` with urllib, verifying its SHA-256 before keeping it.

    The body is streamed to ``dest`` + ``.part`` and renamed only once its digest matches,
    so an interrupted or corrupted download never leaves a file at ``dest``.

    Raises
    ------
    OSError
        If the checksum does not match (the message gives both digests), or on any
        network error.
    """
    sha256 = check_sha256(sha256)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.URLError as exc:
            raise OSError(f"downloading {url} failed: {exc}") from exc
        if digest.hexdigest() != sha256:
            raise OSError(
                f"checksum mismatch for {url}: expected SHA-256 {sha256}, "
                f"got {digest.hexdigest()}; the download was discarded"
            )
        shutil.move(part, dest)
    finally:
        if part.exists():
            part.unlink()
    return dest


def attributes_frame(subjects, rows=None):
    """Subject attribute table indexed by subject id.

    Parameters
    ----------
    subjects : array-like of int
        Subject ids, the index of the frame.
    rows : dict of int to dict, default=None
        Known attributes per subject; missing subjects or columns are NaN.

    Returns
    -------
    attributes : DataFrame of shape (n_subjects, 4)
        Float columns ``age`` (years), ``height`` (cm), ``weight`` (kg), ``gender``
        (1 = male, 0 = female), index named ``subject``.
    """
    subjects = np.unique(np.asarray(subjects, dtype=np.int64))
    rows = rows or {}
    data = [[rows.get(int(s), {}).get(col, np.nan) for col in ATTRIBUTE_COLUMNS] for s in subjects]
    frame = pd.DataFrame(
        np.asarray(data, dtype=np.float64).reshape(len(subjects), len(ATTRIBUTE_COLUMNS)),
        index=pd.Index(subjects, name="subject"),
        columns=ATTRIBUTE_COLUMNS,
    )
    return frame


def make_bunch(
    recordings,
    activity,
    subject,
    recording,
    *,
    attributes,
    channels,
    activity_names,
    sampling_rate,
    descr,
    **extra,
):
    """Assemble and sanity-check the loaders' common :class:`~sklearn.utils.Bunch`."""
    subject = np.asarray(subject, dtype=np.int64)
    recording = np.asarray(recording, dtype=np.int64)
    if not (len(recordings) == len(activity) == len(subject) == len(recording)):
        raise ValueError("internal error: per-recording fields have different lengths")
    if len(np.unique(recording)) != len(recording):
        raise ValueError("internal error: recording ids are not unique")
    for data, labels in zip(recordings, activity):
        if data.ndim != 2 or data.shape[1] != len(channels) or len(labels) != len(data):
            raise ValueError("internal error: recording and activity shapes disagree")
    return Bunch(
        recordings=list(recordings),
        activity=list(activity),
        subject=subject,
        recording=recording,
        attributes=attributes,
        channels=list(channels),
        activity_names=dict(activity_names),
        sampling_rate=float(sampling_rate),
        DESCR=descr,
        **extra,
    )


def split_concatenated(data, lengths):
    """Split a concatenated ``(sum(lengths), ...)`` array into per-recording arrays."""
    return np.split(data, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _locate_bad_line(text, *, source, first_line, n_columns, delimiter, int_columns):
    """Return a message naming the first line of ``text`` that is not ``n_columns`` numbers."""
    what = "whitespace" if delimiter is None else repr(delimiter)
    for offset, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = line.split(delimiter)
        problem = None
        if len(fields) != n_columns:
            problem = f"expected {n_columns} {what}-separated numbers, found {len(fields)} fields"
        else:
            for position, field in enumerate(fields):
                try:
                    value = int(field) if position in int_columns else float(field)
                except ValueError:
                    kind = "an integer" if position in int_columns else "a number"
                    problem = f"field {position + 1} ({field.strip()!r}) is not {kind}"
                    break
                if not np.isfinite(value):
                    problem = f"field {position + 1} ({field.strip()!r}) is not finite"
                    break
        if problem is not None:
            return f"{source}, line {first_line + offset}: {problem}: {line.strip()[:80]!r}"
    return None


def parse_numeric_table(text, *, source, first_line=1, n_columns, delimiter=None, int_columns=()):
    """Parse lines of delimited numbers into a float64 array, fast, with precise errors.

    The fast path is pandas' C parser. If it fails, or yields NaN, or the wrong number of
    columns, the text is scanned line by line to name the first offending line.

    Parameters
    ----------
    text : str
        The data lines (blank lines are skipped).
    source : str
        The file name used in error messages.
    first_line : int, default=1
        1-based line number, in ``source``, of the first line of ``text``.
    n_columns : int
        Expected number of fields per line.
    delimiter : str or None, default=None
        Field separator; None splits on runs of whitespace.
    int_columns : tuple of int, default=()
        Columns that must hold integers (parsed as int64 and returned separately).

    Returns
    -------
    values : ndarray of shape (n_lines, n_columns - len(int_columns)), dtype float64
    ints : ndarray of shape (n_lines, len(int_columns)), dtype int64
        Only returned when ``int_columns`` is not empty.

    Raises
    ------
    ValueError
        Naming ``source`` and the line number of the first malformed line, or saying
        that there are no data lines.
    """
    int_columns = tuple(int_columns)
    dtype = {i: (np.int64 if i in int_columns else np.float64) for i in range(n_columns)}
    frame = None
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=r"\s+" if delimiter is None else delimiter,
            header=None,
            dtype=dtype,
            engine="c",
            skip_blank_lines=True,
            skipinitialspace=True,
            na_filter=True,
            **_EXACT_FLOATS,
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        frame = None
    columns = None
    if frame is not None and frame.shape[1] == n_columns and len(frame) > 0:
        columns = [frame[i].to_numpy() for i in range(n_columns)]
        if not all(np.isfinite(column).all() for column in columns):
            columns = None
    if columns is None:
        if not text.strip():
            raise ValueError(f"{source}: no data lines (expected {n_columns} numbers per line)")
        message = _locate_bad_line(
            text,
            source=source,
            first_line=first_line,
            n_columns=n_columns,
            delimiter=delimiter,
            int_columns=int_columns,
        )
        raise ValueError(message or f"{source}: could not parse the data as {n_columns} numbers per line")
    values = np.column_stack(
        [column for i, column in enumerate(columns) if i not in int_columns]
    ).astype(np.float64, copy=False)
    if int_columns:
        return values, np.column_stack([columns[i] for i in int_columns]).astype(np.int64, copy=False)
    return values
