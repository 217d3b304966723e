"""RecordingDisjointSplit, SubjectDisjointSplit and window_groups."""

import warnings

import numpy as np
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_privacy.datasets import make_windows
from sklearn_privacy.model_selection._split import (
    RecordingDisjointSplit,
    SubjectDisjointSplit,
    window_groups,
)
from sklearn_privacy.utils.validation import WindowGroups, check_window_groups


def make_groups(recordings_per_subject, windows_per_recording=3, seed=0):
    """(subject, recording) per sample, recordings numbered globally, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows, recording = [], 0
    for subject, n_recordings in enumerate(recordings_per_subject, start=1):
        for _ in range(n_recordings):
            recording += 1
            rows += [(subject * 10, recording)] * int(rng.integers(1, windows_per_recording + 1))
    groups = np.array(rows)
    return groups[rng.permutation(len(groups))]


def check_recording_split(groups, n_splits, splits):
    subject, pair = groups[:, 0], [tuple(g) for g in groups]
    n_recordings = {s: len({p for p in pair if p[0] == s}) for s in set(subject.tolist())}
    tested = np.zeros(len(groups), dtype=int)
    for train, test in splits:
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == len(groups)
        train_pairs = {pair[i] for i in train}
        test_pairs = {pair[i] for i in test}
        assert not train_pairs & test_pairs  # no recording on both sides
        for s, n in n_recordings.items():
            if n >= n_splits:  # same people on both sides of every fold
                assert s in subject[train] and s in subject[test]
            else:  # too few recordings: always training
                assert s not in subject[test]
        tested[test] += 1
    eligible = np.isin(subject, [s for s, n in n_recordings.items() if n >= n_splits])
    np.testing.assert_array_equal(tested, eligible.astype(int))  # each sample tested once


@settings(max_examples=60, deadline=None)
@given(
    recordings=st.lists(st.integers(1, 7), min_size=1, max_size=8),
    n_splits=st.integers(2, 5),
    shuffle=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_recording_split_properties(recordings, n_splits, shuffle, seed):
    groups = make_groups(recordings, seed=seed)
    cv = RecordingDisjointSplit(n_splits, shuffle=shuffle, random_state=seed if shuffle else None)
    if max(recordings) < n_splits:
        with pytest.raises(ValueError, match="no subject has"):
            list(cv.split(np.zeros(len(groups)), groups=groups))
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = list(cv.split(np.zeros((len(groups), 4, 2)), groups=groups))
    assert len(splits) == cv.get_n_splits() == n_splits
    assert any("fewer than" in str(w.message) for w in caught) == (min(recordings) < n_splits)
    check_recording_split(groups, n_splits, splits)


def test_recording_split_balances_folds():
    groups = np.array([(s, 100 * s + r) for s in range(6) for r in range(3)])
    sizes = [len(test) for _, test in RecordingDisjointSplit(3).split(groups, groups=groups)]
    assert sizes == [6, 6, 6]
    sizes = [len(test) for _, test in RecordingDisjointSplit(2).split(groups, groups=groups)]
    assert sizes == [9, 9]


def test_recording_split_shuffle_is_reproducible():
    groups = make_groups([6, 6, 6], seed=1)
    X = np.zeros(len(groups))

    def folds(**kwargs):
        return [test.tolist() for _, test in RecordingDisjointSplit(3, **kwargs).split(X, groups=groups)]

    assert folds(shuffle=True, random_state=0) == folds(shuffle=True, random_state=0)
    assert any(folds(shuffle=True, random_state=s) != folds() for s in range(5))


def test_recording_split_one_dimensional_groups_use_y():
    groups = make_groups([3, 4, 2], seed=2)
    splits_2d = list(RecordingDisjointSplit(2).split(groups, groups=groups))
    splits_1d = list(RecordingDisjointSplit(2).split(groups, groups[:, 0], groups[:, 1]))
    for (a, b), (c, d) in zip(splits_2d, splits_1d):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    with pytest.raises(ValueError, match="subjects are read from y"):
        list(RecordingDisjointSplit(2).split(groups, None, groups[:, 1]))
    y = np.arange(len(groups)) % 2  # not the subject: recordings would span several y
    with pytest.raises(ValueError, match="several subjects"):
        list(RecordingDisjointSplit(2).split(groups, y, groups[:, 1]))


def test_recording_ids_unique_per_subject_only():
    groups = np.array([(1, 1), (1, 2), (2, 1), (2, 2)])  # recording 1 of subject 1 != of subject 2
    for train, test in RecordingDisjointSplit(2).split(groups, groups=groups):
        assert len(test) == 2 and sorted(groups[test, 0].tolist()) == [1, 2]


def test_string_ids():
    groups = np.array([["ann", "r1"], ["ann", "r2"], ["bob", "r3"], ["bob", "r4"]])
    splits = list(RecordingDisjointSplit(2).split(groups, groups=groups))
    assert [sorted(test.tolist()) for _, test in splits] == [[0, 2], [1, 3]]
    assert len(list(SubjectDisjointSplit(2).split(groups, groups=groups))) == 2


@settings(max_examples=40, deadline=None)
@given(recordings=st.lists(st.integers(1, 4), min_size=2, max_size=9), n_splits=st.integers(2, 5),
       seed=st.integers(0, 100))
def test_subject_split_properties(recordings, n_splits, seed):
    groups = make_groups(recordings, seed=seed)
    cv = SubjectDisjointSplit(n_splits, shuffle=True, random_state=seed)
    if len(recordings) < n_splits:
        with pytest.raises(ValueError, match="only"):
            list(cv.split(groups, groups=groups))
        return
    tested = np.zeros(len(groups), dtype=int)
    for train, test in cv.split(groups, groups=groups):
        assert not set(groups[train, 0]) & set(groups[test, 0])
        tested[test] += 1
    assert np.all(tested == 1)
    one_d = [t.tolist() for _, t in cv.split(groups, groups=groups[:, 0])]
    assert one_d == [t.tolist() for _, t in cv.split(groups, groups=groups)]


@pytest.mark.parametrize("cv", [RecordingDisjointSplit(2), SubjectDisjointSplit(2)])
@pytest.mark.parametrize("groups, match", [
    (None, "should not be None"),
    (np.ones((6, 4)), r"\(n_samples, 3\).*got shape \(6, 4\)"),
    (np.ones((6, 1)), r"got shape \(6, 1\)"),
    (np.ones((6, 2, 1)), r"\(n_samples, 2\).*got shape \(6, 2, 1\)"),
    (np.ones((5, 2)), "5 rows but there are 6 samples"),
    (np.ones((5, 3)), "5 rows but there are 6 samples"),
    (np.array([[1, np.nan]] * 6), "NaN"),
    (np.array([[1, 2, None]] * 6, dtype=object), "segment column.*NaN or None"),
])
def test_bad_groups(cv, groups, match):
    with pytest.raises(ValueError, match=match):
        list(cv.split(np.zeros(6), np.zeros(6), groups))


@pytest.mark.parametrize("Splitter", [RecordingDisjointSplit, SubjectDisjointSplit])
def test_bad_parameters(Splitter):
    with pytest.raises(ValueError, match="n_splits"):
        Splitter(1)
    with pytest.raises(ValueError, match="n_splits"):
        Splitter(2.0)
    with pytest.raises(ValueError, match="random_state"):
        Splitter(2, random_state=0)
    with pytest.raises(TypeError, match="shuffle"):
        Splitter(2, shuffle="yes")
    assert "n_splits=3" in repr(Splitter(3))
    assert Splitter(3).get_n_splits() == 3


def test_empty_input():
    with pytest.raises(ValueError, match="empty"):
        list(RecordingDisjointSplit(2).split(np.zeros((0, 2)), groups=np.zeros((0, 2))))


def test_window_groups():
    rng = np.random.default_rng(0)
    bunch = {
        "recordings": [rng.normal(size=(n, 6)) for n in (50, 70, 40, 60)],
        "activity": [np.ones(n, int) for n in (50, 70, 40, 60)],
        "subject": np.array([1, 1, 2, 2]),
        "recording": np.array([11, 12, 21, 22]),
    }
    bunch["activity"][1][35:] = 2  # two runs (segments) in recording 12
    windows = make_windows(bunch, length=20, step=10)
    groups = window_groups(windows)
    assert groups.shape == (len(windows.y), 3)
    np.testing.assert_array_equal(groups[:, 0], windows.subject)
    np.testing.assert_array_equal(groups[:, 1], windows.recording)
    np.testing.assert_array_equal(groups[:, 2], windows.segment)
    assert len(np.unique(groups[:, 2])) == 5  # one run per recording, two in recording 12
    # Splits by recording ignore the segment: same folds as with the pairs.
    pairs = window_groups({"subject": windows.subject, "recording": windows.recording})
    assert pairs.shape == (len(windows.y), 2)
    for (train, test), (train2, test2) in zip(
        RecordingDisjointSplit(2).split(windows.X, windows.y, groups),
        RecordingDisjointSplit(2).split(windows.X, windows.y, pairs),
    ):
        assert set(groups[test, 0]) == {1, 2}
        np.testing.assert_array_equal(test, test2)
    for (_, test), (_, test2) in zip(SubjectDisjointSplit(2).split(windows.X, groups=groups),
                                     SubjectDisjointSplit(2).split(windows.X, groups=pairs)):
        np.testing.assert_array_equal(test, test2)
    with pytest.raises(ValueError, match="subject"):
        window_groups({"subject": [1]})
    with pytest.raises(ValueError, match="equal length"):
        window_groups({"subject": [1, 2], "recording": [1]})
    with pytest.raises(ValueError, match="equal length"):
        window_groups({"subject": [1, 2], "recording": [1, 2], "segment": [0]})


# -------------------------------------------------------------------- check_window_groups
def test_check_window_groups_forms():
    rows = np.array([[7, 2, 5], [7, 2, 5], [7, 2, 6], [7, 1, 0], [3, 2, 5], [3, 2, 5]])
    codes = check_window_groups(rows, 6)
    assert isinstance(codes, WindowGroups)
    assert codes.subject.tolist() == [1, 1, 1, 1, 0, 0]
    # A recording is the (subject, recording) pair: recording 2 of subjects 3 and 7 differ.
    assert codes.recording.tolist() == [2, 2, 2, 1, 0, 0]
    # A segment is the triple: segment 5 of subjects 3 and 7 differ too.
    assert codes.segment.tolist() == [2, 2, 3, 1, 0, 0]
    pairs = check_window_groups(rows[:, :2], 6)
    assert pairs.segment is None
    np.testing.assert_array_equal(pairs.subject, codes.subject)
    np.testing.assert_array_equal(pairs.recording, codes.recording)
    one_d = check_window_groups(["b", "a", "b"], 3)
    assert one_d.subject is None and one_d.segment is None
    assert one_d.recording.tolist() == [1, 0, 1]
    named = check_window_groups(np.array([["ann", "r1"], ["bob", "r1"]]), 2)
    assert named.recording.tolist() == [0, 1]
    for codes in (check_window_groups(rows, 6), one_d):
        assert all(c is None or c.dtype == np.int64 for c in codes)


def test_check_window_groups_errors():
    with pytest.raises(ValueError, match="'groups' parameter should not be None"):
        check_window_groups(None, 3)
    with pytest.raises(ValueError, match=r"subject, recording.*got shape \(3,\)"):
        check_window_groups([1, 2, 3], 3, allow_1d=False)
    with pytest.raises(ValueError, match=r"^recording has 2 rows but there are 3 samples"):
        check_window_groups([1, 2], 3, name="recording")
    with pytest.raises(ValueError, match="recording ids.*NaN"):
        check_window_groups([1.0, np.nan, 2.0], 3)
    with pytest.raises(ValueError, match="recording column.*NaN"):
        check_window_groups([[1, 1.0], [1, np.nan]], 2)
    with pytest.raises(ValueError, match="sortable"):
        check_window_groups(np.array([1, "a", None], dtype=object)[:2], 2)
    with pytest.raises(ValueError, match="got shape"):
        check_window_groups(np.zeros((2, 2, 2)), 2)


# --------------------------------------------------------------------------- integration
def _identity_problem(seed=0):
    """Features that identify the subject; 4 subjects x 4 recordings x 5 windows."""
    rng = np.random.default_rng(seed)
    groups = np.array([(s, 10 * s + r) for s in range(4) for r in range(4) for _ in range(5)])
    X = rng.normal(scale=0.2, size=(len(groups), 4))
    X[np.arange(len(groups)), groups[:, 0]] += 3.0  # one-hot of the subject
    return X, groups[:, 0], groups


@pytest.mark.parametrize("routing", [False, True])
def test_cross_validate_and_grid_search(routing):
    X, y, groups = _identity_problem()
    with sklearn.config_context(enable_metadata_routing=routing):
        params = {"params": {"groups": groups}} if routing else {"groups": groups}
        result = cross_validate(LogisticRegression(), X, y, cv=RecordingDisjointSplit(4), **params)
        assert len(result["test_score"]) == 4 and result["test_score"].mean() > 0.9

        search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=RecordingDisjointSplit(2))
        search.fit(X, y, groups=groups)
        assert search.best_score_ > 0.9

        # Utility-style split: an identity model scores 0 on unseen subjects.
        search = GridSearchCV(DummyClassifier(), {"strategy": ["most_frequent", "prior"]},
                              cv=SubjectDisjointSplit(4))
        search.fit(X, y, groups=groups)
        assert search.best_score_ == 0.0
        result = cross_validate(LogisticRegression(), X, y, cv=SubjectDisjointSplit(2), **params)
        assert np.all(result["test_score"] == 0.0)


def test_groups_are_requested_for_routing():
    for cv in (RecordingDisjointSplit(), SubjectDisjointSplit()):
        assert cv.get_metadata_routing().split.requests["groups"] is True
