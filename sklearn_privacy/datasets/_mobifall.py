"""MobiFall v2.0: activities of daily living of 9 people, with their attributes."""

import re
import warnings
from pathlib import Path

import numpy as np

from ._base import attributes_frame, make_bunch, parse_numeric_table

__all__ = ["load_mobifall"]

STANDARD_GRAVITY = 9.80665  # m/s^2 per g

#: ADL id -> (code, name, nominal duration in seconds), from DataDescribe.txt.
ACTIVITIES = {
    1: ("STD", "Standing", 300.0),
    2: ("WAL", "Walking", 300.0),
    3: ("JOG", "Jogging", 30.0),
    4: ("JUM", "Jumping", 30.0),
    5: ("STU", "Stairs up", 10.0),
    6: ("STN", "Stairs down", 10.0),
    7: ("SCH", "Sit chair", 6.0),
    8: ("CSI", "Car-step in", 6.0),
    9: ("CSO", "Car-step out", 6.0),
}
_CODE_TO_ID = {code: i for i, (code, _, _) in ACTIVITIES.items()}

#: Subjects with ADL data (DataDescribe.txt): age (years), height (cm), weight (kg),
#: gender (1 = male, 0 = female). File headers are not used: 14 of them carry zeros.
SUBJECTS = {
    2: dict(age=26, height=169, weight=64, gender=1),
    3: dict(age=26, height=164, weight=55, gender=0),
    4: dict(age=32, height=186, weight=93, gender=1),
    5: dict(age=36, height=160, weight=50, gender=0),
    7: dict(age=25, height=189, weight=80, gender=1),
    8: dict(age=22, height=183, weight=93, gender=1),
    9: dict(age=30, height=177, weight=102, gender=1),
    10: dict(age=26, height=170, weight=90, gender=0),
    11: dict(age=26, height=168, weight=80, gender=0),
}

# Case-insensitive: ``WAL_acc_2_1.TXT`` is the same file as ``WAL_acc_2_1.txt``. The
# optional tail catches the copies file managers make: ``x (copy).txt``, ``x (2).txt``,
# ``x - Copy.txt``, ``x copy.txt``.
_FILE = re.compile(
    r"^([a-z]{3})_(acc|gyro|ori)_(\d+)_(\d+)"
    r"(\s*(?:\((?:copy(?:\s*\d+)?|\d+)\)|-\s*copy(?:\s*\(\d+\))?|copy(?:\s*\d+)?))?\.txt$",
    flags=re.IGNORECASE,
)
_SUBJECT_FOLDER = re.compile(r"^sub(\d+)$", flags=re.IGNORECASE)
_LAYOUT = "sub<N>/ADL/<CODE>/<CODE>_<acc|gyro>_<N>_<trial>.txt"

DESCR = """\
MobiFall v2.0, activities of daily living (ADL)
-----------------------------------------------

9 subjects (ids 2, 3, 4, 5, 7, 8, 9, 10, 11; 5 male, 4 female) carried a Samsung Galaxy
S3 in a trouser pocket and performed 9 ADLs, 38 trials each (342 trials):
1 STD standing (1 x 300 s), 2 WAL walking (1 x 300 s), 3 JOG jogging (3 x 30 s),
4 JUM jumping (3 x 30 s), 5 STU stairs up (6 x 10 s), 6 STN stairs down (6 x 10 s),
7 SCH sit chair (6 x 6 s), 8 CSI car-step in (6 x 6 s), 9 CSO car-step out (6 x 6 s).

The phone sampled the accelerometer irregularly (about 87 Hz) and the gyroscope at about
200 Hz on a shared device clock. Each trial's acc and gyro are linearly interpolated onto
one uniform time base (default 50 Hz) spanning the time both sensors cover; repeated
timestamps are dropped (first kept) and gaps (one of about 1 s in STU trial 2 of subject
10) are bridged by the interpolation.

Channels: acc_x, acc_y, acc_z (acceleration including gravity, in g by default, or m/s^2
with acc_unit="m/s2"), gyro_x, gyro_y, gyro_z (angular velocity, rad/s).
Attributes: age (years), height (cm), weight (kg), gender (1 = male, 0 = female), from the
data set's DataDescribe.txt.

Terms: research use, citing:
G. Vavoulas, M. Pediaditis, E. G. Spanakis, M. Tsiknakis. The MobiFall dataset: An initial
evaluation of fall detection algorithms using smartphones. IEEE BIBE 2013.
doi:10.1109/BIBE.2013.6701629
G. Vavoulas, M. Pediaditis, C. Chatzaki, E. G. Spanakis, M. Tsiknakis. The MobiFall Dataset:
Fall Detection and Classification with a Smartphone. IJMSTR 2(1), 2014.
"""


def _read_sensor_file(path):
    """Parse one MobiFall text file; return int64 timestamps (ns) and (n, 3) values."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise OSError(f"cannot read MobiFall file {path}: {exc}") from exc
    marker = re.search(r"^@DATA[ \t]*\r?$", text, flags=re.MULTILINE)
    if marker is None:
        raise ValueError(f"{path}: no '@DATA' line (expected '#' header lines, then '@DATA')")
    header = text[: marker.start()]
    for number, line in enumerate(header.splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            raise ValueError(
                f"{path}, line {number}: header lines before '@DATA' must start with '#', "
                f"got {line.strip()[:80]!r}"
            )
    data_first_line = header.count("\n") + 2
    body = text[marker.end() :].removeprefix("\n")
    values, ints = parse_numeric_table(
        body,
        source=str(path),
        first_line=data_first_line,
        n_columns=4,
        delimiter=",",
        int_columns=(0,),
    )
    timestamps = ints[:, 0]
    steps = np.diff(timestamps)
    if np.any(steps < 0):
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        line = data_first_line + _line_offset(body, row)
        raise ValueError(f"{path}, line {line}: timestamp {timestamps[row]} goes back in time")
    keep = np.concatenate([[True], steps > 0])  # drop repeated timestamps, keep the first
    return timestamps[keep], values[keep]


def _line_offset(text, row):
    """0-based line offset in ``text`` of its ``row``-th non-blank line."""
    nonblank = [i for i, line in enumerate(text.splitlines()) if line.strip()]
    return nonblank[row]


def _resample(acc_t, acc, gyro_t, gyro, rate, files):
    """Interpolate both sensors onto a shared uniform grid over their common span."""
    start, stop = max(acc_t[0], gyro_t[0]), min(acc_t[-1], gyro_t[-1])
    if stop <= start:
        raise ValueError(f"{files[0]} and {files[1]} do not overlap in time")
    period_ns = 1e9 / rate
    n = int(np.floor((stop - start) / period_ns + 1e-9)) + 1
    grid = np.arange(n) * period_ns  # ns after ``start``
    out = np.empty((n, 6))
    for offset, (t, v) in enumerate(((acc_t, acc), (gyro_t, gyro))):
        t = (t - start).astype(np.float64)
        for j in range(3):
            out[:, 3 * offset + j] = np.interp(grid, t, v[:, j])
    return out


def _is_hidden(name):
    return name.startswith(".") or name == "__MACOSX"


def _find_trials(root):
    """Map (subject, activity id, trial) -> {"acc": path, "gyro": path}.

    Names are matched case-insensitively; hidden entries and ``*_ori_*`` files are
    ignored; other ``.txt`` files and duplicates are reported (warning) or refused.
    """
    found, copies, strays = {}, [], []
    for file in sorted(root.glob("*/*/*/*")):
        parts = file.relative_to(root).parts
        if any(_is_hidden(p) for p in parts) or file.suffix.lower() != ".txt":
            continue
        if _SUBJECT_FOLDER.match(parts[0]) is None or parts[1].upper() != "ADL":
            continue
        match = _FILE.match(file.name)
        if match is None or match.group(1).upper() not in _CODE_TO_ID:
            strays.append(file)
            continue
        code, sensor = match.group(1).upper(), match.group(2).lower()
        subject, trial = int(match.group(3)), int(match.group(4))
        if sensor == "ori":
            continue
        if (
            parts[2].upper() != code
            or int(_SUBJECT_FOLDER.match(parts[0]).group(1)) != subject
        ):
            raise ValueError(f"{file}: file name does not match its folder (expected {_LAYOUT})")
        if not file.is_file():
            raise ValueError(
                f"{file} is not a readable file (a folder, a broken link or a link loop)"
            )
        key = (subject, _CODE_TO_ID[code], trial, sensor)
        if match.group(5) is None and key not in found:
            found[key] = file
        else:
            copies.append((key, file))
    # A second file for a trial's sensor (a "(copy)", or the same name in other case) is
    # skipped if it is byte-identical to the first; otherwise which one holds the data
    # is unknowable, and the loader refuses to guess.
    duplicates = []
    for key, file in copies:
        if key not in found:
            found[key] = file
            warnings.warn(f"MobiFall: loading {file} (named as a copy) as the only {key[3]} file "
                          f"of its trial", UserWarning, stacklevel=3)
        elif found[key].read_bytes() == file.read_bytes():
            duplicates.append(file)
        else:
            raise ValueError(
                f"{file} and {found[key]} are two different {key[3]} files for the same trial "
                f"(subject {key[0]}, {ACTIVITIES[key[1]][0]}, trial {key[2]}); remove one"
            )
    if duplicates:
        warnings.warn(
            f"MobiFall: skipped {len(duplicates)} duplicate file(s) identical to a loaded one: "
            + ", ".join(str(f.relative_to(root)) for f in duplicates[:3])
            + (", ..." if len(duplicates) > 3 else ""),
            UserWarning,
            stacklevel=3,
        )
    if strays:
        warnings.warn(
            f"MobiFall: ignored {len(strays)} file(s) whose names are not "
            f"<CODE>_<acc|gyro>_<N>_<trial>.txt with a known ADL code: "
            + ", ".join(str(f.relative_to(root)) for f in strays[:3])
            + (", ..." if len(strays) > 3 else ""),
            UserWarning,
            stacklevel=3,
        )
    trials = {}
    for (subject, act, trial, sensor), file in found.items():
        trials.setdefault((subject, act, trial), {})[sensor] = file
    return trials


def load_mobifall(path, *, sampling_rate=50.0, acc_unit="g"):
    """Load the activities of daily living of MobiFall v2.0, resampled to a uniform rate.

    One recording per trial (its accelerometer and gyroscope files together): 342 trials
    of 9 subjects with their age, height, weight and gender.

    Parameters
    ----------
    path : str or path-like
        The MobiFall folder holding ``sub<N>/ADL/<CODE>/<CODE>_<acc|gyro>_<N>_<trial>.txt``
        (for example ``path/to/mobifall``). ``*_ori_*`` files, falls and hidden
        entries (``.*``, macOS ``._*``) are ignored. Names are matched case-insensitively
        (``WAL_acc_2_1.TXT`` is loaded).
    sampling_rate : float, default=50.0
        Rate (Hz) of the shared uniform time base onto which each trial's accelerometer
        and gyroscope are linearly interpolated. The base starts when both sensors have
        started and ends when the first one stops; repeated timestamps are dropped
        (first kept).
    acc_unit : {"g", "m/s2"}, default="g"
        Unit of the acceleration channels. The files hold m/s^2; ``"g"`` divides by
        9.80665 so that the data match HAPT and MotionSense.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        recordings : list of 342 ndarray of shape (n_samples_i, 6), dtype float64
            Channels ``acc_x, acc_y, acc_z`` (gravity included, ``acc_unit``) and
            ``gyro_x, gyro_y, gyro_z`` (rad/s), at ``sampling_rate``.
        activity : list of 342 ndarray of shape (n_samples_i,), dtype int64
            The trial's activity id (1 to 9) repeated for each sample.
        subject : ndarray of shape (342,), dtype int64
            Subject id (2, 3, 4, 5, 7, 8, 9, 10, 11).
        recording : ndarray of shape (342,), dtype int64
            Recording id, 1 to 342, in the order (subject, activity, trial).
        trial : ndarray of shape (342,), dtype int64
            Trial number within the subject's activity (1 to 6).
        attributes : DataFrame of shape (9, 4)
            ``age`` (years), ``height`` (cm), ``weight`` (kg), ``gender`` (1 = male,
            0 = female), indexed by subject, from ``DataDescribe.txt``.
        channels : list of str
            Names of the channels, in column order.
        activity_names : dict of int to str
            Activity id to code (``{1: "STD", 2: "WAL", ...}``).
        sampling_rate : float
            Samples per second (Hz).
        files : list of tuple of str
            ``(acc_file, gyro_file)`` of each recording, relative to ``path``.
        DESCR : str
            Description, units and citation.

    Raises
    ------
    FileNotFoundError
        If ``path`` is missing or holds no MobiFall ADL files.
    ValueError
        If a file is malformed (naming the file and line), a trial lacks its acc or gyro
        file or has two different ones (e.g. ``WAL_acc_2_1 (copy).txt`` differing from
        ``WAL_acc_2_1.txt``), the sensors do not overlap in time, or an argument is
        invalid.

    Warns
    -----
    UserWarning
        Naming the files: when a copy identical to a loaded file is skipped, when a
        copy is the only file of its trial and is loaded, when ``.txt`` files in the ADL
        folders do not have MobiFall names, and when a subject is not one of the
        documented ADL subjects (its attributes are then NaN).
    """
    if acc_unit not in ("g", "m/s2"):
        raise ValueError(f"acc_unit must be 'g' or 'm/s2', got {acc_unit!r}")
    if not (np.isfinite(sampling_rate) and sampling_rate > 0):
        raise ValueError(f"sampling_rate must be a positive number of Hz, got {sampling_rate!r}")
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"MobiFall folder not found: {root} (expected a folder with {_LAYOUT})")

    trials = _find_trials(root)
    if not trials:
        raise FileNotFoundError(f"no MobiFall ADL files under {root} (expected {_LAYOUT})")

    recordings, activity, subjects, trial_ids, files = [], [], [], [], []
    for (subject, act, trial), pair in sorted(trials.items()):
        for sensor in ("acc", "gyro"):
            if sensor not in pair:
                other = next(iter(pair.values()))
                raise ValueError(f"{other}: the trial has no matching {sensor} file")
        acc_t, acc = _read_sensor_file(pair["acc"])
        gyro_t, gyro = _read_sensor_file(pair["gyro"])
        if acc_unit == "g":
            acc = acc / STANDARD_GRAVITY
        data = _resample(acc_t, acc, gyro_t, gyro, sampling_rate, (pair["acc"], pair["gyro"]))
        recordings.append(data)
        activity.append(np.full(len(data), act, dtype=np.int64))
        subjects.append(subject)
        trial_ids.append(trial)
        files.append(tuple(str(pair[s].relative_to(root)) for s in ("acc", "gyro")))

    unknown = sorted(set(subjects) - set(SUBJECTS))
    if unknown:
        first = {}
        for subject, pair in zip(subjects, files):
            first.setdefault(subject, pair[0])
        warnings.warn(
            f"MobiFall subject(s) {unknown} (e.g. {', '.join(first[s] for s in unknown[:3])} "
            f"under {root}) are not among the documented ADL subjects {sorted(SUBJECTS)}; "
            "their attributes are NaN",
            UserWarning,
            stacklevel=2,
        )
    return make_bunch(
        recordings,
        activity,
        subjects,
        np.arange(1, len(recordings) + 1),
        attributes=attributes_frame(subjects, SUBJECTS),
        channels=["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
        activity_names={i: code for i, (code, _, _) in ACTIVITIES.items()},
        sampling_rate=sampling_rate,
        descr=DESCR,
        trial=np.asarray(trial_ids, dtype=np.int64),
        files=files,
    )
