"""MotionSense loader on generated files in the archive's exact layout."""

import re
import shutil
import zipfile

import numpy as np
import pytest

from sklearn_privacy.datasets import load_motionsense, make_windows
from sklearn_privacy.datasets._motionsense import RAW_COLUMNS

# (activity folder, trial, subject, n_samples)
TRIALS = [("dws", 1, 1, 130), ("dws", 11, 1, 90), ("jog", 16, 1, 200), ("sit", 5, 2, 150), ("wlk", 7, 24, 140)]
ACTIVITY_ID = {"dws": 1, "ups": 2, "wlk": 3, "jog": 4, "std": 5, "sit": 6}


def csv_text(seed, n):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 12))
    lines = ["," + ",".join(RAW_COLUMNS)]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(values)]
    return "\n".join(lines) + "\n", values


def write_tree(root, trials=TRIALS):
    """Write ``root/<act>_<trial>/sub_<k>.csv``; return the values per (act, trial, subject)."""
    expected = {}
    for seed, (act, trial, subject, n) in enumerate(trials):
        text, values = csv_text(seed, n)
        path = root / f"{act}_{trial}" / f"sub_{subject}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        expected[act, trial, subject] = values
    return expected


def write_zip(path, trials=TRIALS, prefix="A_DeviceMotion_data/", macosx=True):
    expected = {}
    with zipfile.ZipFile(path, "w") as zf:
        for seed, (act, trial, subject, n) in enumerate(trials):
            text, values = csv_text(seed, n)
            zf.writestr(f"{prefix}{act}_{trial}/sub_{subject}.csv", text)
            if macosx:
                zf.writestr(f"__MACOSX/{prefix}{act}_{trial}/._sub_{subject}.csv", "\x00\x05junk")
            expected[act, trial, subject] = values
    return expected


def check_bunch(bunch, expected):
    keys = sorted(expected, key=lambda k: (k[2], ACTIVITY_ID[k[0]], k[1]))
    assert len(bunch.recordings) == len(keys)
    assert bunch.subject.tolist() == [k[2] for k in keys]
    assert bunch.trial.tolist() == [k[1] for k in keys]
    assert bunch.recording.tolist() == list(range(1, len(keys) + 1))
    assert bunch.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert bunch.sampling_rate == 50.0
    for data, labels, key in zip(bunch.recordings, bunch.activity, keys):
        raw = expected[key]
        np.testing.assert_array_equal(data[:, :3], raw[:, 3:6] + raw[:, 9:12])  # gravity + userAcc
        np.testing.assert_array_equal(data[:, 3:], raw[:, 6:9])  # rotationRate
        np.testing.assert_array_equal(labels, np.full(len(raw), ACTIVITY_ID[key[0]]))


@pytest.fixture
def subject_table(shared_data_dir):
    path = shared_data_dir / "motionsense" / "data_subjects_info.csv"
    if not path.is_file():
        pytest.skip(f"MotionSense subject table not found at {path}")
    return path


def check_real_attributes(attributes):
    assert list(attributes.columns) == ["age", "height", "weight", "gender"]
    assert attributes.loc[1].tolist() == [46, 188, 102, 1]
    assert attributes.loc[2].tolist() == [28, 180, 72, 1]
    assert attributes.loc[24].notna().all()


@pytest.mark.shared_data
def test_zip(tmp_path, subject_table):
    expected = write_zip(tmp_path / "A_DeviceMotion_data.zip")
    shutil.copy(subject_table, tmp_path)
    bunch = load_motionsense(tmp_path / "A_DeviceMotion_data.zip")
    check_bunch(bunch, expected)
    check_real_attributes(bunch.attributes)
    assert bunch.attributes.index.tolist() == [1, 2, 24]
    assert bunch.files[0].endswith("A_DeviceMotion_data/dws_1/sub_1.csv")
    assert "Malekzadeh" in bunch.DESCR
    # A folder holding only the archive is read through it.
    check_bunch(load_motionsense(tmp_path), expected)


@pytest.mark.shared_data
def test_folder(tmp_path, subject_table):
    expected = write_tree(tmp_path / "A_DeviceMotion_data")
    bunch = load_motionsense(tmp_path / "A_DeviceMotion_data", subject_info=subject_table)
    check_bunch(bunch, expected)
    check_real_attributes(bunch.attributes)


@pytest.mark.shared_data
def test_doubly_nested_folder(tmp_path, subject_table):
    expected = write_tree(tmp_path / "A_DeviceMotion_data" / "A_DeviceMotion_data")
    shutil.copy(subject_table, tmp_path)  # next to the outer folder
    bunch = load_motionsense(tmp_path / "A_DeviceMotion_data")
    check_bunch(bunch, expected)
    check_real_attributes(bunch.attributes)


@pytest.mark.shared_data
def test_real_subject_table_all_24(tmp_path, subject_table):
    trials = [("std", 6, k, 20) for k in range(1, 25)]
    write_tree(tmp_path / "data", trials)
    bunch = load_motionsense(tmp_path / "data", subject_info=subject_table)
    assert bunch.attributes.shape == (24, 4) and bunch.attributes.notna().all().all()
    assert int(bunch.attributes["gender"].sum()) == 14


def test_channels_options(tmp_path):
    expected = write_tree(tmp_path)
    with pytest.warns(UserWarning, match="data_subjects_info.csv not found"):
        raw = load_motionsense(tmp_path, channels="raw")
    assert raw.channels == RAW_COLUMNS
    np.testing.assert_array_equal(raw.recordings[0], expected["dws", 1, 1])
    with pytest.warns(UserWarning):
        both = load_motionsense(tmp_path, channels="all")
    assert both.channels[6:] == RAW_COLUMNS and both.recordings[0].shape[1] == 18
    assert raw.attributes.isna().all().all()
    with pytest.raises(ValueError, match="channels"):
        load_motionsense(tmp_path, channels="acc")


def test_subject_missing_from_table(tmp_path):
    write_tree(tmp_path / "data")
    table = tmp_path / "info.csv"
    table.write_text("\ufeffcode,weight,height,age,gender\n1,70,170,30,0\n")
    with pytest.warns(UserWarning, match=r"subjects \[2, 24\] are not in"):
        bunch = load_motionsense(tmp_path / "data", subject_info=table)
    assert bunch.attributes.loc[1].tolist() == [30, 170, 70, 0]
    assert bunch.attributes.loc[24].isna().all()


def test_windows_of_motionsense(tmp_path):
    write_tree(tmp_path)
    with pytest.warns(UserWarning):
        bunch = load_motionsense(tmp_path)
    windows = make_windows(bunch, length=64, step=32, magnitude="only")
    # Recordings of 130, 90, 200, 150, 140 samples: (n - 64) // 32 + 1 windows each.
    assert len(windows.y) == sum((n - 64) // 32 + 1 for *_, n in TRIALS)


# --------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "x.zip")) + ".*A_DeviceMotion_data"):
        load_motionsense(tmp_path / "x.zip")
    with pytest.raises(FileNotFoundError, match="no MotionSense CSV files"):
        load_motionsense(tmp_path)
    write_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="subject table not found"):
        load_motionsense(tmp_path, subject_info=tmp_path / "none.csv")


def test_not_a_zip(tmp_path):
    (tmp_path / "A_DeviceMotion_data.zip").write_text("nope")
    with pytest.raises(ValueError, match="not a zip"):
        load_motionsense(tmp_path / "A_DeviceMotion_data.zip")


@pytest.mark.parametrize("line, text, match", [
    (1, "," + ",".join(RAW_COLUMNS[:-1]), r"line 1: unexpected header"),
    (5, "3,1,2,3", r"line 5: expected 13"),
    (7, "5," + ",".join(["0.5"] * 11) + ",oops", r"line 7: field 13 \('oops'\) is not a number"),
    (9, "7," + ",".join(["nan"] * 12), r"line 9: field 2 \('nan'\) is not finite"),
    (10, "3," + ",".join(["0"] * 12), r"line 10: the index column is not increasing"),
])
def test_malformed_csv_names_file_and_line(tmp_path, line, text, match):
    write_tree(tmp_path)
    path = tmp_path / "jog_16" / "sub_1.csv"
    lines = path.read_text().split("\n")
    lines[line - 1] = text
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ", " + match):
        load_motionsense(tmp_path, subject_info=None)


def test_malformed_csv_in_zip(tmp_path):
    path = tmp_path / "A.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("A_DeviceMotion_data/std_6/sub_3.csv", "," + ",".join(RAW_COLUMNS) + "\n0," + "1," * 11 + "x\n")
    with pytest.raises(ValueError, match=r"A\.zip:A_DeviceMotion_data/std_6/sub_3\.csv, line 2"):
        load_motionsense(path)


def test_empty_csv(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "sit_5" / "sub_2.csv").write_text("," + ",".join(RAW_COLUMNS) + "\n")
    with pytest.raises(ValueError, match=r"sit_5/sub_2\.csv: no data lines"):
        load_motionsense(tmp_path)


def test_unknown_trial_and_duplicates(tmp_path):
    write_tree(tmp_path / "a", [("dws", 5, 1, 10)])
    with pytest.raises(ValueError, match="unexpected trial folder 'dws_5'"):
        load_motionsense(tmp_path / "a")
    write_tree(tmp_path / "b" / "x", [("std", 6, 1, 10)])
    write_tree(tmp_path / "b" / "y", [("std", 6, 1, 10)])
    with pytest.raises(ValueError, match="two files for std_6/sub_1"):
        load_motionsense(tmp_path / "b")


def test_names_in_any_case_hidden_entries_and_strays(tmp_path):
    # Sub_1.CSV was silently dropped: its recording vanished from the data.
    expected = write_tree(tmp_path)
    (tmp_path / "jog_16" / "sub_1.csv").rename(tmp_path / "jog_16" / "Sub_1.CSV")
    (tmp_path / "wlk_7").rename(tmp_path / "WLK_7")
    # Hidden copies would otherwise be duplicates; a checkpoint is not a recording.
    shutil.copytree(tmp_path / "dws_1", tmp_path / ".backup" / "dws_1")
    (tmp_path / "sit_5" / "._sub_2.csv").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "sit_5" / "sub_2 (copy).csv").write_text("stray")
    with pytest.warns(UserWarning) as record:
        bunch = load_motionsense(tmp_path)
    check_bunch(bunch, expected)
    assert any("sit_5/sub_2 (copy).csv" in str(w.message) for w in record)
    with zipfile.ZipFile(tmp_path / "A.zip", "w") as zf:
        for file in sorted(tmp_path.rglob("*.*")):
            if file.is_file() and file.suffix != ".zip":
                zf.write(file, "A_DeviceMotion_data/" + file.relative_to(tmp_path).as_posix())
    with pytest.warns(UserWarning):
        check_bunch(load_motionsense(tmp_path / "A.zip"), expected)


def test_bad_subject_table(tmp_path):
    write_tree(tmp_path / "data")
    table = tmp_path / "info.csv"
    table.write_text("code,weight,height,age\n1,70,170,30\n")
    with pytest.raises(ValueError, match=r"lacks columns \['gender'\]"):
        load_motionsense(tmp_path / "data", subject_info=table)
    table.write_text("code,weight,height,age,gender\n1,70,170,30,1\n2,x,170,30,0\n")
    with pytest.raises(ValueError, match=r"info\.csv, line 3"):
        load_motionsense(tmp_path / "data", subject_info=table)
