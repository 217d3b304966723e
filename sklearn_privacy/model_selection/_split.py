"""Cross-validation splitters for the two threat-model questions.

- :class:`RecordingDisjointSplit`: *same people, other recordings*. An identity or
  attribute attacker is tested on recordings it never saw of people it did see.
- :class:`SubjectDisjointSplit`: *other people*. The app's utility is measured on people
  it never saw.

Both are scikit-learn cross-validators: they take ``groups`` in ``split`` and request it
through metadata routing, so they work in :func:`~sklearn.model_selection.cross_validate`
and :class:`~sklearn.model_selection.GridSearchCV` with routing on or off.
"""

from collections.abc import Mapping

import numpy as np

# The splitters are defined below the metrics (whose PrivacyScorer splits by recording)
# and exported here, where users look for them.
from ..utils.splitting import RecordingDisjointSplit, SubjectDisjointSplit

__all__ = ["RecordingDisjointSplit", "SubjectDisjointSplit", "window_groups"]


def window_groups(windows):
    """Groups array of windows: ``(subject, recording[, segment])`` per window.

    The ``groups`` that the splitters, :class:`~sklearn_privacy.metrics.PrivacyScorer`,
    :func:`privacy_utility_report` and the attackers' early stopping understand (see
    :func:`~sklearn_privacy.utils.validation.check_window_groups`).

    Parameters
    ----------
    windows : :class:`~sklearn.utils.Bunch` or mapping
        As returned by :func:`~sklearn_privacy.datasets.make_windows` (needs
        ``subject`` and ``recording``; ``segment`` is used when present).

    Returns
    -------
    groups : ndarray of shape (n_windows, 3) or (n_windows, 2)
        Column 0 the subject id, column 1 the recording id and, when ``windows`` has
        ``segment``, column 2 the id of the run of one activity in one recording that
        each window lies in. The splitters and recording pooling use the first two
        columns and ignore the segment; an attacker's early stopping holds out whole
        segments, so that with a single training recording per person it still
        validates on every person (holding out whole recordings would hold out whole
        people) while overlapping windows never sit on both sides.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.datasets import make_windows
    >>> from sklearn_privacy.model_selection import window_groups
    >>> bunch = {"recordings": [np.zeros((300, 3))], "activity": [np.repeat([1, 2], 150)],
    ...          "subject": [4], "recording": [1]}
    >>> window_groups(make_windows(bunch, length=100, step=50)).tolist()
    [[4, 1, 0], [4, 1, 0], [4, 1, 1], [4, 1, 1]]
    """
    if not isinstance(windows, Mapping) or "subject" not in windows or "recording" not in windows:
        raise ValueError("window_groups needs a make_windows Bunch with 'subject' and 'recording'")
    columns = [np.asarray(windows["subject"]), np.asarray(windows["recording"])]
    names = ["subject", "recording"]
    if windows.get("segment") is not None:
        columns.append(np.asarray(windows["segment"]))
        names.append("segment")
    if columns[0].ndim != 1 or any(c.shape != columns[0].shape for c in columns):
        shapes = ", ".join(f"{n} {c.shape}" for n, c in zip(names, columns))
        raise ValueError(f"{', '.join(names)} must be 1-D of equal length; got {shapes}")
    return np.column_stack(columns)
