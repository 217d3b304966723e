"""MotionSense (A_DeviceMotion_data): 24 people, 6 activities, iPhone device motion."""

import io
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._base import _EXACT_FLOATS, attributes_frame, make_bunch, parse_numeric_table

__all__ = ["load_motionsense"]

#: Activity id -> (code, trial codes), in the order of the original ``ACT_LABELS``.
ACTIVITIES = {
    1: ("dws", (1, 2, 11)),
    2: ("ups", (3, 4, 12)),
    3: ("wlk", (7, 8, 15)),
    4: ("jog", (9, 16)),
    5: ("std", (6, 14)),
    6: ("sit", (5, 13)),
}
_CODE_TO_ID = {code: i for i, (code, _) in ACTIVITIES.items()}
RAW_COLUMNS = [
    "attitude.roll",
    "attitude.pitch",
    "attitude.yaw",
    "gravity.x",
    "gravity.y",
    "gravity.z",
    "rotationRate.x",
    "rotationRate.y",
    "rotationRate.z",
    "userAcceleration.x",
    "userAcceleration.y",
    "userAcceleration.z",
]
IMU_CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
SUBJECT_INFO = "data_subjects_info.csv"
ARCHIVE = "A_DeviceMotion_data.zip"
SAMPLING_RATE = 50.0

# Case-insensitive: ``Sub_1.CSV`` (as some tools rename files) is ``sub_1.csv``.
_MEMBER = re.compile(r"(?:^|/)([a-z]{3})_(\d+)/sub_(\d+)\.csv$", flags=re.IGNORECASE)
_TRIAL_FOLDER = re.compile(r"(?:^|/)[a-z]{3}_\d+/[^/]+$", flags=re.IGNORECASE)
_LAYOUT = "A_DeviceMotion_data/<act>_<trial>/sub_<k>.csv"

DESCR = """\
MotionSense, device-motion data (A_DeviceMotion_data)
-----------------------------------------------------

24 participants (14 male, 10 female) carried an iPhone 6s in the front trouser pocket and
performed 6 activities in 15 trials: 1 dws downstairs (trials 1, 2, 11), 2 ups upstairs
(3, 4, 12), 3 wlk walking (7, 8, 15), 4 jog jogging (9, 16), 5 std standing (6, 14),
6 sit sitting (5, 13). One recording per (trial, participant). Sampling rate 50 Hz.

Channels (channels="imu", the default): acc_x, acc_y, acc_z = gravity + userAcceleration
(acceleration including gravity, in g), gyro_x, gyro_y, gyro_z = rotationRate (rad/s).
channels="raw" gives the 12 columns of the files: attitude.roll/pitch/yaw (rad),
gravity.x/y/z (g), rotationRate.x/y/z (rad/s), userAcceleration.x/y/z (g, gravity
excluded); channels="all" gives the 6 IMU channels followed by the 12 raw ones.
Attributes (data_subjects_info.csv): age (years), height (cm), weight (kg), gender
(1 = male, 0 = female).

Licence: MIT (github.com/mmalekzadeh/motion-sense). Citation:
M. Malekzadeh, R. G. Clegg, A. Cavallaro, H. Haddadi. Mobile Sensor Data Anonymization.
ACM/IEEE IoTDI 2019. doi:10.1145/3302505.3310068
"""


def _read_subject_info(path):
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", **_EXACT_FLOATS)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read the MotionSense subject table ({exc})") from exc
    expected = ["code", "weight", "height", "age", "gender"]
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: subject table lacks columns {missing} (expected {expected})")
    values = table[expected].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1).to_numpy()
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2  # header is line 1
        raise ValueError(f"{path}, line {line}: non-numeric or missing value in the subject table")
    if values["code"].duplicated().any():
        raise ValueError(f"{path}: duplicated subject codes")
    return {
        int(row.code): dict(age=row.age, height=row.height, weight=row.weight, gender=row.gender)
        for row in values.itertuples()
    }


def _parse_csv(text, source):
    """Parse one sub_<k>.csv (header line + indexed rows) into an (n, 12) array."""
    first, _, body = text.partition("\n")
    header = [h.strip() for h in first.lstrip("\ufeff").strip().split(",")]
    if header[1:] != RAW_COLUMNS:
        raise ValueError(
            f"{source}, line 1: unexpected header {header}; expected an unnamed index column "
            f"then {RAW_COLUMNS}"
        )
    values, index = parse_numeric_table(
        body, source=source, first_line=2, n_columns=13, delimiter=",", int_columns=(0,)
    )
    steps = np.diff(index[:, 0])
    if np.any(steps <= 0):
        line = int(np.flatnonzero(steps <= 0)[0]) + 3
        raise ValueError(f"{source}, line {line}: the index column is not increasing")
    return values


def _collect(members, where):
    """Map (activity id, trial, subject) -> member name; reject unknown or duplicate trials."""
    found, strays = {}, []
    for member in members:
        parts = member.rstrip("/").split("/")
        # Hidden entries: __MACOSX/, macOS ._* forks, .ipynb_checkpoints/ and the like.
        if any(p.startswith("__MACOSX") or p.startswith(".") for p in parts):
            continue
        match = _MEMBER.search(member)
        if match is None:
            if member.lower().endswith(".csv") and _TRIAL_FOLDER.search(member):
                strays.append(member)
            continue
        code, trial, subject = match.group(1).lower(), int(match.group(2)), int(match.group(3))
        if code not in _CODE_TO_ID or trial not in ACTIVITIES[_CODE_TO_ID[code]][1]:
            raise ValueError(
                f"{where}: unexpected trial folder '{code}_{trial}' in {member}; valid are "
                + ", ".join(f"{c}_{t}" for c, ts in ACTIVITIES.values() for t in ts)
            )
        key = (_CODE_TO_ID[code], trial, subject)
        if key in found:
            raise ValueError(
                f"{where}: two files for {code}_{trial}/sub_{subject}: {found[key]} and {member}"
            )
        found[key] = member
    if not found:
        raise FileNotFoundError(f"no MotionSense CSV files in {where} (expected {_LAYOUT})")
    if strays:
        warnings.warn(
            f"MotionSense: ignored {len(strays)} CSV file(s) in {where} whose names are not "
            f"sub_<k>.csv: {', '.join(strays[:3])}{', ...' if len(strays) > 3 else ''}",
            UserWarning,
            stacklevel=3,
        )
    return found


def _csv_files(folder):
    """Relative POSIX paths of the ``*.csv`` files (any case) under ``folder``."""
    return [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() == ".csv" and p.is_file()
    ]


def load_motionsense(path, *, subject_info=None, channels="imu"):
    """Load MotionSense's device-motion data (``A_DeviceMotion_data``).

    Parameters
    ----------
    path : str or path-like
        The archive ``A_DeviceMotion_data.zip``, or a folder holding it extracted (also
        the doubly nested ``A_DeviceMotion_data/A_DeviceMotion_data/<act>_<trial>/``
        that some unzip tools produce), or a folder holding the archive. CSV files are
        found at any depth as ``<act>_<trial>/sub_<k>.csv`` (names in any case, e.g.
        ``Sub_1.CSV``); hidden entries (``__MACOSX``, ``.*``, macOS ``._*``) are ignored,
        and other CSV files in a trial folder are ignored with a warning naming them.
    subject_info : str or path-like, default=None
        The subject table ``data_subjects_info.csv`` (columns ``code, weight, height,
        age, gender``). None: looked for next to the archive, inside the folder or in
        its two parents; if not found, the attributes are NaN and a warning is issued.
    channels : {"imu", "raw", "all"}, default="imu"
        ``"imu"``: ``acc_x, acc_y, acc_z`` (gravity + userAcceleration, g) and
        ``gyro_x, gyro_y, gyro_z`` (rotationRate, rad/s), like HAPT and MobiFall.
        ``"raw"``: the 12 columns of the files under their own names.
        ``"all"``: the 6 IMU channels followed by the 12 raw ones.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        recordings : list of ndarray of shape (n_samples_i, n_channels), dtype float64
            One per (trial, participant), 50 Hz.
        activity : list of ndarray of shape (n_samples_i,), dtype int64
            The trial's activity id (1 dws, 2 ups, 3 wlk, 4 jog, 5 std, 6 sit).
        subject : ndarray of shape (n_recordings,), dtype int64
            Participant code (1 to 24).
        recording : ndarray of shape (n_recordings,), dtype int64
            Recording id, 1 to n_recordings, in the order (subject, activity, trial).
        trial : ndarray of shape (n_recordings,), dtype int64
            MotionSense trial code (1 to 16).
        attributes : DataFrame of shape (n_subjects, 4)
            ``age`` (years), ``height`` (cm), ``weight`` (kg), ``gender`` (1 = male,
            0 = female), indexed by participant code.
        channels : list of str
            Names of the channels, in column order.
        activity_names : dict of int to str
            Name of each activity code.
        sampling_rate : float
            50.0 (Hz).
        files : list of str
            The CSV file (or archive member) of each recording.
        DESCR : str
            Description, units and citation.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or ``subject_info``) does not exist or holds no MotionSense files.
    ValueError
        On a malformed file (naming it and the line), an unknown trial folder, a
        duplicated recording or an invalid argument.
    """
    if channels not in ("imu", "raw", "all"):
        raise ValueError(f"channels must be 'imu', 'raw' or 'all', got {channels!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"MotionSense data not found: {path} (expected {ARCHIVE} or a folder with {_LAYOUT})"
        )
    members = _csv_files(path) if path.is_dir() else None
    no_csv = members is not None and not any(_MEMBER.search(m) for m in members)
    if no_csv and (path / ARCHIVE).is_file():
        path, members = path / ARCHIVE, None

    if path.is_dir():
        files = {k: path / m for k, m in _collect(members, path).items()}

        def read(key):
            return files[key].read_text(encoding="utf-8", errors="replace"), str(files[key])

        search = [path, path.parent, path.parent.parent]
        archive = None
    else:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a zip archive nor a folder ({exc})") from exc
        files = _collect(archive.namelist(), path)

        def read(key):
            text = io.TextIOWrapper(archive.open(files[key]), encoding="utf-8", errors="replace").read()
            return text, f"{path}:{files[key]}"

        search = [path.parent]

    if subject_info is None:
        subject_info = next((d / SUBJECT_INFO for d in search if (d / SUBJECT_INFO).is_file()), None)
    elif not Path(subject_info).is_file():
        raise FileNotFoundError(
            f"MotionSense subject table not found: {subject_info} (expected {SUBJECT_INFO})"
        )
    rows = _read_subject_info(subject_info) if subject_info is not None else {}

    try:
        recordings, activity, subjects, trials, names = [], [], [], [], []
        for act, trial, subject in sorted(files, key=lambda k: (k[2], k[0], k[1])):
            text, source = read((act, trial, subject))
            raw = _parse_csv(text, source)
            imu = np.hstack([raw[:, 3:6] + raw[:, 9:12], raw[:, 6:9]])
            data = {"imu": imu, "raw": raw, "all": np.hstack([imu, raw])}[channels]
            recordings.append(np.ascontiguousarray(data))
            activity.append(np.full(len(data), act, dtype=np.int64))
            subjects.append(subject)
            trials.append(trial)
            names.append(source)
    finally:
        if archive is not None:
            archive.close()

    unknown = sorted(set(subjects) - set(rows))
    if subject_info is None:
        warnings.warn(
            f"{SUBJECT_INFO} not found next to {path}; attributes are NaN (pass subject_info=...)",
            UserWarning,
            stacklevel=2,
        )
    elif unknown:
        warnings.warn(
            f"subjects {unknown} are not in {subject_info}; their attributes are NaN",
            UserWarning,
            stacklevel=2,
        )

    names_of_channels = {"imu": IMU_CHANNELS, "raw": RAW_COLUMNS, "all": IMU_CHANNELS + RAW_COLUMNS}
    return make_bunch(
        recordings,
        activity,
        subjects,
        np.arange(1, len(recordings) + 1),
        attributes=attributes_frame(subjects, rows),
        channels=names_of_channels[channels],
        activity_names={i: code for i, (code, _) in ACTIVITIES.items()},
        sampling_rate=SAMPLING_RATE,
        descr=DESCR,
        trial=np.asarray(trials, dtype=np.int64),
        files=names,
    )
