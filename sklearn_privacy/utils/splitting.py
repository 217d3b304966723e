"""Group-aware cross-validation splitters, shared by the scorers and the searches.

- :class:`RecordingDisjointSplit`: *same people, other recordings*. An identity or
  attribute attacker is tested on recordings it never saw of people it did see.
- :class:`SubjectDisjointSplit`: *other people*. The app's utility is measured on people
  it never saw.

Both are scikit-learn cross-validators: they take ``groups`` in ``split`` and request it
through metadata routing, so they work in :func:`~sklearn.model_selection.cross_validate`
and :class:`~sklearn.model_selection.GridSearchCV` with routing on or off.

They live here, below :mod:`sklearn_privacy.metrics` (whose privacy scorer splits the
scored fold by recording) and :mod:`sklearn_privacy.model_selection` (which exports
them), so that no import points upwards. Import them from
:mod:`sklearn_privacy.model_selection`.
"""

import numbers
import warnings

import numpy as np
from sklearn.model_selection import BaseCrossValidator, GroupKFold
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import _num_samples

from .validation import _group_codes, check_window_groups

__all__ = ["RecordingDisjointSplit", "SubjectDisjointSplit"]


class _GroupSplitter(BaseCrossValidator):
    # Request ``groups`` by default, like scikit-learn's GroupsConsumerMixin.
    __metadata_request__split = {"groups": True}

    def __init__(self, n_splits, *, shuffle=False, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool) or n_splits < 2:
            raise ValueError(f"n_splits must be an integer of at least 2, got {n_splits!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        validate_parameter_constraints(
            {"random_state": ["random_state"]},
            {"random_state": random_state},
            caller_name=type(self).__name__,
        )
        if not shuffle and random_state is not None:
            raise ValueError(
                "Setting a random_state has no effect since shuffle is False; leave "
                "random_state to its default (None) or set shuffle=True."
            )
        self.n_splits = int(n_splits)
        self.shuffle = bool(shuffle)
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splits (``n_splits``).

        Parameters
        ----------
        X, y, groups : object
            Ignored, present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits


class RecordingDisjointSplit(_GroupSplitter):
    """Same people, other recordings: K folds that never split a recording.

    For identity and attribute attackers: each subject's recordings are dealt across the
    folds in turn, so a subject with at least ``n_splits`` recordings has recordings in
    the training *and* the test side of every fold, while every recording (all its
    windows) lies entirely on one side. Dealing starts at a rotating fold per subject so
    that the folds hold about the same number of recordings.

    A subject with fewer than ``n_splits`` recordings cannot be tested in every fold
    without leaving it untrained in some; its recordings always stay on the training
    side (a warning names such subjects).

    Parameters
    ----------
    n_splits : int, default=2
        Number of folds, at least 2.
    shuffle : bool, default=False
        Shuffle each subject's recordings (and where dealing starts) before dealing.
        Otherwise they are dealt in sorted order of recording id.
    random_state : int, RandomState instance or None, default=None
        Controls the shuffling; only with ``shuffle=True``.

    See Also
    --------
    SubjectDisjointSplit : Other people (for utility).
    sklearn_privacy.model_selection.window_groups : Groups of windows.

    Notes
    -----
    ``groups`` passed to :meth:`split` is either a 2-column array of (subject, recording)
    pairs per sample (a recording is the pair, so recording ids need only be unique per
    subject), a 3-column array of (subject, recording, segment) rows as
    :func:`~sklearn_privacy.model_selection.window_groups` returns (the segment column is
    ignored here), or 1-D recording ids, in which case the subject is read from ``y``
    (for an identity attacker whose target is the subject). An attribute attacker must
    use a 2- or 3-column form.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.model_selection import RecordingDisjointSplit
    >>> groups = np.array([[1, 10], [1, 10], [1, 11], [2, 20], [2, 21], [2, 21]])
    >>> X = np.zeros((6, 1))
    >>> for train, test in RecordingDisjointSplit(n_splits=2).split(X, groups=groups):
    ...     print(train, test)
    [2 4 5] [0 1 3]
    [0 1 3] [2 4 5]
    """

    def __init__(self, n_splits=2, *, shuffle=False, random_state=None):
        super().__init__(n_splits, shuffle=shuffle, random_state=random_state)

    def split(self, X, y=None, groups=None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training data; only its length is used.
        y : array-like of shape (n_samples,), default=None
            The subject of each sample; only used (and then required) with 1-D groups.
        groups : array-like of shape (n_samples, 2), (n_samples, 3) or (n_samples,)
            (subject, recording) pairs, (subject, recording, segment) rows (the segment
            is ignored), or recording ids (see
            :func:`~sklearn_privacy.utils.validation.check_window_groups`).

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.
        """
        fold = self._fold_of_samples(X, y, groups)
        indices = np.arange(len(fold))
        for k in range(self.n_splits):
            test = fold == k
            yield indices[~test], indices[test]

    def _fold_of_samples(self, X, y, groups):
        n_samples = _num_samples(X)
        codes = check_window_groups(groups, n_samples)
        if n_samples == 0:
            raise ValueError("cannot split an empty data set")
        groups = np.asarray(groups)
        if codes.subject is not None:
            subject = groups[:, 0]
            unit, unit_subject = codes.recording, None
        else:
            if y is None:
                raise ValueError(
                    "With 1-D groups (recording ids) the subjects are read from y, which is "
                    "None; pass groups as (subject, recording) pairs instead (see window_groups)"
                )
            subject = np.asarray(y)
            if subject.ndim != 1 or len(subject) != n_samples:
                raise ValueError(
                    f"y must be 1-D subject ids of the same length as groups; got shape {subject.shape}"
                )
            subject_code = _group_codes(subject, "y (subject ids)")
            pairs, unit = np.unique(
                np.column_stack([subject_code, codes.recording]), axis=0, return_inverse=True
            )
            unit = unit.ravel()
            if len(np.unique(pairs[:, 1])) != len(pairs):
                raise ValueError(
                    "a recording id has several subjects in y: with 1-D groups, y must be the "
                    "subject; pass (subject, recording) pairs for other targets"
                )
            unit_subject = pairs[:, 0]
        n_pairs = int(unit.max()) + 1
        if unit_subject is None:
            # Recording codes are sorted by (subject, recording): subjects never decrease.
            unit_subject = np.empty(n_pairs, dtype=np.int64)
            unit_subject[unit] = codes.subject

        rng = check_random_state(self.random_state) if self.shuffle else None
        unit_fold = np.full(n_pairs, -1)
        n_units = np.bincount(unit_subject)
        eligible = n_units >= self.n_splits
        if not eligible.any():
            raise ValueError(
                f"Cannot deal recordings into n_splits={self.n_splits} folds: no subject has "
                f"{self.n_splits} or more recordings (at most {n_units.max()})"
            )
        if not eligible.all():
            few = np.unique(subject)[~eligible]
            warnings.warn(
                f"{len(few)} subject(s) have fewer than n_splits={self.n_splits} recordings "
                f"and always stay in the training side: {few.tolist()[:20]}",
                UserWarning,
                stacklevel=3,
            )
        # Units are sorted by (subject, recording); deal each eligible subject's in turn.
        first_unit = np.concatenate([[0], np.cumsum(n_units)[:-1]])
        rank = np.arange(n_pairs) - first_unit[unit_subject]
        if rng is not None:
            order = np.lexsort((rng.random_sample(n_pairs), unit_subject))
            rank[order] = np.arange(n_pairs) - first_unit[unit_subject[order]]
            start = rng.randint(self.n_splits, size=len(n_units))
        else:
            start = (np.cumsum(n_units * eligible) - n_units * eligible) % self.n_splits
        dealt = (rank + start[unit_subject]) % self.n_splits
        unit_fold[eligible[unit_subject]] = dealt[eligible[unit_subject]]
        return unit_fold[unit]


class SubjectDisjointSplit(_GroupSplitter):
    """Other people: K folds with each subject entirely on one side (GroupKFold).

    For the app's utility: it is tested on people it never saw. Folds follow
    :class:`~sklearn.model_selection.GroupKFold` on subject ids.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2 and at most the number of subjects.
    shuffle : bool, default=False
        Shuffle the subjects before forming folds.
    random_state : int, RandomState instance or None, default=None
        Controls the shuffling; only with ``shuffle=True``.

    See Also
    --------
    RecordingDisjointSplit : Same people, other recordings (for attackers).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.model_selection import SubjectDisjointSplit
    >>> groups = np.array([1, 1, 2, 2, 3])
    >>> cv = SubjectDisjointSplit(n_splits=3)
    >>> [np.unique(groups[test]).tolist() for _, test in cv.split(np.zeros(5), groups=groups)]
    [[2], [1], [3]]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        super().__init__(n_splits, shuffle=shuffle, random_state=random_state)

    def split(self, X, y=None, groups=None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training data; only its length is used.
        y : array-like of shape (n_samples,), default=None
            Ignored.
        groups : array-like of shape (n_samples,), (n_samples, 2) or (n_samples, 3)
            Subject ids, or (subject, recording[, segment]) rows (only the subject
            column is used).

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.
        """
        n_samples = _num_samples(X)
        checked = check_window_groups(groups, n_samples)
        if n_samples == 0:
            raise ValueError("cannot split an empty data set")
        # 1-D groups are subject ids here.
        codes = checked.subject if checked.subject is not None else checked.recording
        n_subjects = codes.max() + 1
        if n_subjects < self.n_splits:
            raise ValueError(
                f"Cannot have n_splits={self.n_splits} subject-disjoint folds with only "
                f"{n_subjects} subjects"
            )
        cv = GroupKFold(self.n_splits, shuffle=self.shuffle, random_state=self.random_state)
        indices = np.arange(len(codes))
        yield from cv.split(indices, groups=codes)
