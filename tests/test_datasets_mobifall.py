"""MobiFall v2.0 loader: synthetic files in the exact layout, and the real data."""

import re

import numpy as np
import pytest

from sklearn_privacy.datasets import load_mobifall, make_windows
from sklearn_privacy.datasets._mobifall import ACTIVITIES, SUBJECTS

HEADER = {
    "acc": ["#Acceleration force along the x y z axes (including gravity).", "#timestamp(ns),x,y,z(m/s^2)"],
    "gyro": ["#Rate of rotation around the x y z axes (Angular velocity).", "#timestamp(ns),x,y,z(rad/s)"],
}


def write_sensor_file(path, timestamps, values, sensor="acc", subject=2, code="WAL"):
    """Write one file in MobiFall's format: 13 '#' lines, 2 blank lines, @DATA, CRLF rows."""
    header = HEADER[sensor] + [
        "#Datetime: 05/08/2013 12:36:04",
        "#" * 42,
        f"#Activity: 2 - {code} - Walking normal - 300s",
        f"#Subject ID: {subject}",
        f"#First Name: sub{subject}",
        f"#Last Name: sub{subject}",
        "#Age: 0",
        "#Height(cm): 0",
        "#Weight(kg): 0",
        "#Gender: Male",
        "#" * 42,
        "",
        "",
        "@DATA",
    ]
    rows = [
        f"{t}, {x:.7g}, {y:.7E}, {float(z)!r}" for t, (x, y, z) in zip(np.asarray(timestamps, dtype=np.int64), values)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(header + rows) + "\r\n").encode("ascii"))


def trial_paths(root, subject, code, trial):
    folder = root / f"sub{subject}" / "ADL" / code
    return folder / f"{code}_acc_{subject}_{trial}.txt", folder / f"{code}_gyro_{subject}_{trial}.txt"


def linear(t_ns, slopes, offsets):
    t = (np.asarray(t_ns) - 1_000_000_000_000) / 1e9
    return offsets + np.outer(t, slopes)


@pytest.fixture
def small_mobifall(tmp_path):
    """Two subjects, three trials, signals linear in time (interpolation is then exact)."""
    rng = np.random.default_rng(0)
    t0 = 1_000_000_000_000
    trials = [(3, "JOG", 2), (3, "STD", 1), (7, "CSO", 4)]
    for subject, code, trial in trials:
        acc_path, gyro_path = trial_paths(tmp_path, subject, code, trial)
        acc_t = t0 + np.cumsum(rng.integers(9_000, 14_000, size=400)) * 1000  # irregular ~87 Hz
        gyro_t = t0 + 30_000_000 + np.arange(1200) * 5_000_000  # 200 Hz, starts 30 ms later
        gyro_t[500] = gyro_t[499]  # one repeated timestamp
        write_sensor_file(acc_path, acc_t, linear(acc_t, [1.0, -2.0, 0.5], [0.0, 9.80665, 3.0]), "acc", subject, code)
        write_sensor_file(gyro_path, gyro_t, linear(gyro_t, [0.1, 0.2, -0.3], [1.0, 2.0, 3.0]), "gyro", subject, code)
        # An orientation file that the loader must ignore.
        (acc_path.parent / f"{code}_ori_{subject}_{trial}.txt").write_text("ignored")
    return tmp_path


def test_synthetic_layout(small_mobifall):
    bunch = load_mobifall(small_mobifall)
    assert len(bunch.recordings) == 3
    # Order: subject, activity id, trial; recording ids 1..n.
    assert bunch.subject.tolist() == [3, 3, 7]
    assert [a[0] for a in bunch.activity] == [1, 3, 9]  # STD, JOG, CSO
    assert bunch.trial.tolist() == [1, 2, 4]
    assert bunch.recording.tolist() == [1, 2, 3]
    assert bunch.files[1] == ("sub3/ADL/JOG/JOG_acc_3_2.txt", "sub3/ADL/JOG/JOG_gyro_3_2.txt")
    assert bunch.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert bunch.activity_names[1] == "STD" and bunch.activity_names[9] == "CSO"
    assert bunch.sampling_rate == 50.0
    assert bunch.attributes.index.tolist() == [3, 7]
    assert bunch.attributes.loc[7].tolist() == [25, 189, 80, 1]  # from the table, not headers
    assert "Vavoulas" in bunch.DESCR


def test_resampling_is_exact_on_linear_signals(small_mobifall):
    bunch = load_mobifall(small_mobifall, acc_unit="m/s2")
    acc_path, gyro_path = trial_paths(small_mobifall, 3, "JOG", 2)
    acc_t = np.loadtxt(acc_path, delimiter=",", skiprows=16, usecols=0, dtype=np.int64)
    gyro_t = np.loadtxt(gyro_path, delimiter=",", skiprows=16, usecols=0, dtype=np.int64)
    start, stop = max(acc_t[0], gyro_t[0]), min(acc_t[-1], gyro_t[-1])
    n = int((stop - start) // 20_000_000) + 1  # 50 Hz = 20 ms
    data = bunch.recordings[1]
    assert data.shape == (n, 6)
    grid = start + np.arange(n) * 20_000_000
    np.testing.assert_allclose(data[:, :3], linear(grid, [1.0, -2.0, 0.5], [0.0, 9.80665, 3.0]), atol=1e-5)
    np.testing.assert_allclose(data[:, 3:], linear(grid, [0.1, 0.2, -0.3], [1.0, 2.0, 3.0]), atol=1e-5)
    assert np.array_equal(bunch.activity[1], np.full(n, 3))


def test_acc_unit_and_rate(small_mobifall):
    in_g = load_mobifall(small_mobifall)
    in_ms2 = load_mobifall(small_mobifall, acc_unit="m/s2")
    np.testing.assert_allclose(in_g.recordings[0][:, :3] * 9.80665, in_ms2.recordings[0][:, :3])
    np.testing.assert_array_equal(in_g.recordings[0][:, 3:], in_ms2.recordings[0][:, 3:])
    at_100 = load_mobifall(small_mobifall, sampling_rate=100)
    assert at_100.sampling_rate == 100.0
    assert abs(len(at_100.recordings[0]) - 2 * len(in_g.recordings[0])) <= 2


@pytest.mark.parametrize("kwargs, match", [
    ({"acc_unit": "mg"}, "acc_unit"),
    ({"sampling_rate": 0}, "sampling_rate"),
    ({"sampling_rate": float("nan")}, "sampling_rate"),
])
def test_bad_arguments(small_mobifall, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mobifall(small_mobifall, **kwargs)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope")) + ".*sub<N>/ADL"):
        load_mobifall(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no MobiFall ADL files"):
        load_mobifall(tmp_path)


def test_missing_partner_file(small_mobifall):
    trial_paths(small_mobifall, 7, "CSO", 4)[1].unlink()
    with pytest.raises(ValueError, match=r"CSO_acc_7_4\.txt: the trial has no matching gyro file"):
        load_mobifall(small_mobifall)


def _replace_line(path, number, text):
    lines = path.read_bytes().decode().split("\r\n")
    lines[number - 1] = text
    path.write_bytes("\r\n".join(lines).encode())


@pytest.mark.parametrize("line, text, match", [
    (20, "1000000200000000, 0.1, abc, 0.3", r"line 20: field 3 \('abc'\) is not a number"),
    (25, "1000000300000000, 0.1, 0.2", r"line 25: expected 4"),
    (30, "1000000400000000, 0.1, 0.2, NaN", r"line 30: field 4 \('NaN'\) is not finite"),
    (18, "17.5, 0.1, 0.2, 0.3", r"line 18: field 1 \('17.5'\) is not an integer"),
    (40, "1000000000000, 0.1, 0.2, 0.3", r"line 40: timestamp .* goes back in time"),
])
def test_malformed_line_names_file_and_line(small_mobifall, line, text, match):
    acc_path = trial_paths(small_mobifall, 3, "JOG", 2)[0]
    _replace_line(acc_path, line, text)
    with pytest.raises(ValueError, match=re.escape(str(acc_path)) + ", " + match):
        load_mobifall(small_mobifall)


def test_malformed_header(small_mobifall):
    gyro_path = trial_paths(small_mobifall, 3, "STD", 1)[1]
    _replace_line(gyro_path, 4, "not a comment")
    with pytest.raises(ValueError, match=re.escape(str(gyro_path)) + ", line 4: header"):
        load_mobifall(small_mobifall)
    _replace_line(gyro_path, 16, "DATA")
    with pytest.raises(ValueError, match=re.escape(str(gyro_path)) + ": no '@DATA' line"):
        load_mobifall(small_mobifall)


def test_no_data_and_no_overlap(tmp_path):
    acc_path, gyro_path = trial_paths(tmp_path, 2, "WAL", 1)
    write_sensor_file(acc_path, [10**12, 10**12 + 10**7], np.zeros((2, 3)))
    write_sensor_file(gyro_path, [], np.zeros((0, 3)), "gyro")
    with pytest.raises(ValueError, match=re.escape(str(gyro_path)) + ": no data lines"):
        load_mobifall(tmp_path)
    write_sensor_file(gyro_path, [2 * 10**12, 2 * 10**12 + 10**7], np.zeros((2, 3)), "gyro")
    with pytest.raises(ValueError, match="do not overlap"):
        load_mobifall(tmp_path)


def test_file_name_must_match_folder(small_mobifall):
    acc_path, gyro_path = trial_paths(small_mobifall, 3, "STD", 1)
    acc_path.rename(acc_path.parent.parent / "JOG" / "STD_acc_3_1.txt")
    with pytest.raises(ValueError, match="does not match its folder"):
        load_mobifall(small_mobifall)


def test_upper_case_names_are_loaded(small_mobifall):
    # *.TXT files were silently dropped (the trial disappeared from the data).
    for path in trial_paths(small_mobifall, 7, "CSO", 4):
        path.rename(path.with_suffix(".TXT"))
    bunch = load_mobifall(small_mobifall)
    assert bunch.subject.tolist() == [3, 3, 7]
    assert bunch.files[2] == ("sub7/ADL/CSO/CSO_acc_7_4.TXT", "sub7/ADL/CSO/CSO_gyro_7_4.TXT")


def test_copies_are_never_silent(small_mobifall):
    reference = load_mobifall(small_mobifall)
    acc_path, gyro_path = trial_paths(small_mobifall, 3, "JOG", 2)
    copy = acc_path.with_name("JOG_acc_3_2 (copy).txt")
    copy.write_bytes(acc_path.read_bytes())
    (acc_path.parent / "._JOG_acc_3_2.txt").write_bytes(b"\x00\x05\x16\x07")  # macOS fork: ignored
    # An identical copy is skipped, with a warning naming it.
    with pytest.warns(UserWarning, match=re.escape("JOG_acc_3_2 (copy).txt")):
        bunch = load_mobifall(small_mobifall)
    assert bunch.files == reference.files
    for got, want in zip(bunch.recordings, reference.recordings):
        np.testing.assert_array_equal(got, want)
    # A differing copy: which file holds the trial is unknowable, so it is an error.
    stamp = copy.read_bytes().decode().split("\r\n")[29].split(",")[0]
    _replace_line(copy, 30, f"{stamp}, 0.1, 0.2, 0.3")  # same time, other values
    with pytest.raises(ValueError, match=re.escape(str(copy)) + ".*two different acc files"):
        load_mobifall(small_mobifall)
    # A copy without its original is the trial's only acc file: loaded, with a warning.
    acc_path.unlink()
    with pytest.warns(UserWarning, match=re.escape(str(copy)) + ".*only acc file"):
        bunch = load_mobifall(small_mobifall)
    assert bunch.files[1] == ("sub3/ADL/JOG/JOG_acc_3_2 (copy).txt", "sub3/ADL/JOG/JOG_gyro_3_2.txt")


def test_unknown_subject_and_stray_files_warn(small_mobifall):
    for path in trial_paths(small_mobifall, 3, "STD", 1):
        target = small_mobifall / "sub12" / "ADL" / "STD" / path.name.replace("_3_", "_12_")
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    (small_mobifall / "sub7" / "ADL" / "CSO" / "notes.txt").write_text("not data")
    with pytest.warns(UserWarning) as record:
        bunch = load_mobifall(small_mobifall)
    messages = [str(w.message) for w in record]
    assert any("[12]" in m and "STD_acc_12_1.txt" in m and "NaN" in m for m in messages), messages
    assert any("notes.txt" in m for m in messages), messages
    assert bunch.subject.tolist() == [3, 7, 12]
    assert bunch.attributes.loc[12].isna().all() and bunch.attributes.loc[7].notna().all()


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="session")
def mobifall(shared_data_dir):
    path = shared_data_dir / "mobifall"
    if not path.is_dir():
        pytest.skip(f"MobiFall not found at {path}")
    return load_mobifall(path)


TRIALS_PER_ACTIVITY = {1: 1, 2: 1, 3: 3, 4: 3, 5: 6, 6: 6, 7: 6, 8: 6, 9: 6}


@pytest.mark.shared_data
def test_real_mobifall_structure(mobifall):
    assert np.unique(mobifall.subject).tolist() == [2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert len(mobifall.recordings) == 342
    assert mobifall.recording.tolist() == list(range(1, 343))
    activity = np.array([a[0] for a in mobifall.activity])
    for subject in np.unique(mobifall.subject):
        mine = activity[mobifall.subject == subject]
        assert dict(zip(*np.unique(mine, return_counts=True))) == TRIALS_PER_ACTIVITY
    for labels in mobifall.activity:
        assert np.all(labels == labels[0])
    assert mobifall.sampling_rate == 50.0


@pytest.mark.shared_data
def test_real_mobifall_attributes(mobifall, shared_data_dir):
    attributes = mobifall.attributes
    assert attributes.index.tolist() == [2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert attributes.loc[9].tolist() == [30, 177, 102, 1]
    assert attributes.loc[5].tolist() == [36, 160, 50, 0]
    assert int(attributes["gender"].sum()) == 5
    # The hard-coded table equals DataDescribe.txt.
    text = (shared_data_dir / "mobifall" / "DataDescribe.txt").read_text(errors="replace")
    for subject, row in SUBJECTS.items():
        match = re.search(rf"^\| {subject}\s+\|[^|]+\|[^|]+\| (\d+)\s+\| (\d+)\s+\| (\d+)\s+\| ([MF])", text, re.M)
        assert match, subject
        age, height, weight, gender = match.groups()
        assert (int(age), int(height), int(weight), int(gender == "M")) == (
            row["age"], row["height"], row["weight"], row["gender"]
        )


@pytest.mark.shared_data
def test_real_mobifall_signals_and_durations(mobifall):
    nominal = {i: duration for i, (_, _, duration) in ACTIVITIES.items()}
    for data, labels in zip(mobifall.recordings, mobifall.activity):
        assert data.shape[1] == 6 and np.isfinite(data).all()
        duration = (len(data) - 1) / 50
        # README: measured lengths from 0.72 (STU) to 1.0 of nominal; acc/gyro overlap trims a little.
        assert 0.7 * nominal[labels[0]] <= duration <= nominal[labels[0]] + 0.02
    data = np.concatenate(mobifall.recordings)
    assert 0.95 < np.median(np.linalg.norm(data[:, :3], axis=1)) < 1.1  # g
    assert np.median(np.linalg.norm(data[:, 3:], axis=1)) < 3  # rad/s


@pytest.mark.shared_data
def test_real_mobifall_windows(mobifall):
    windows = make_windows(mobifall, length=128, step=64, magnitude="only")
    assert windows.X.shape[1:] == (128, 2)
    assert set(np.unique(windows.y).tolist()) == set(range(1, 10))
    assert windows.attributes.loc[windows.subject].shape == (len(windows.y), 4)
