"""Re-identification rank: how high the true person ranks among all people by DTW."""

import numbers

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..utils.validation import check_motion_windows

__all__ = ["mean_reidentification_rank", "reidentification_rank"]


def _pairwise(Xq, Xr, metric, sakoe_chiba_radius, n_jobs):
    if metric == "euclidean":
        return cdist(Xq.reshape(len(Xq), -1), Xr.reshape(len(Xr), -1))
    from tslearn.metrics import cdist_dtw

    if sakoe_chiba_radius is None:
        return cdist_dtw(Xq, Xr, n_jobs=n_jobs)
    return cdist_dtw(
        Xq, Xr, global_constraint="sakoe_chiba", sakoe_chiba_radius=sakoe_chiba_radius,
        n_jobs=n_jobs,
    )


def _labels(y, n, name):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must be 1-D with {n} entries (one per window); got shape {y.shape}."
        )
    return y


@validate_params(
    {
        "X_query": ["array-like"],
        "query_subject": ["array-like"],
        "X_reference": ["array-like"],
        "reference_subject": ["array-like"],
        "metric": [StrOptions({"dtw", "euclidean"})],
        "sakoe_chiba_radius": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "query_recording": ["array-like", None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [numbers.Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def reidentification_rank(
    X_query,
    query_subject,
    X_reference,
    reference_subject,
    *,
    metric="dtw",
    sakoe_chiba_radius=None,
    query_recording=None,
    batch_size=256,
    n_jobs=None,
):
    """Rank of the true person when people are sorted by distance to a query.

    Each person's distance to a query window is the smallest distance between the query
    and that person's reference windows (nearest-neighbour matching). People are sorted
    by that distance; the rank of the true person is 1 when they are the closest (the
    query is re-identified) and ``(n_people + 1) / 2`` on average for a query that
    carries no identity.

    Parameters
    ----------
    X_query : array-like of shape (n_queries, n_timestamps, n_channels)
        Query windows (e.g. protected windows of held-out recordings). 2-D input is one
        channel.
    query_subject : array-like of shape (n_queries,)
        True person of each query; every one must appear in ``reference_subject``.
    X_reference : array-like of shape (n_references, n_timestamps, n_channels)
        Reference windows of known people (the attacker's data).
    reference_subject : array-like of shape (n_references,)
        Person of each reference window.
    metric : {"dtw", "euclidean"}, default="dtw"
        Dynamic time warping (tslearn's vectorised ``cdist_dtw``) or the Euclidean
        distance between flattened windows (fast, no time alignment).
    sakoe_chiba_radius : int, default=None
        Restrict DTW to a Sakoe-Chiba band of this radius (in timestamps): much faster,
        and warping by more than a fraction of a second is rarely meaningful. None
        allows any alignment.
    query_recording : array-like of shape (n_queries,), default=None
        Recording of each query. When given, a rank is computed per recording: a
        person's distance to a recording is the mean over its windows of their
        per-window distance (the attacker holds the whole recording).
    batch_size : int, default=256
        Queries per block of the distance matrix, bounding memory to
        ``batch_size * n_references`` floats.
    n_jobs : int, default=None
        Parallel jobs for DTW (joblib semantics).

    Returns
    -------
    ranks : ndarray of shape (n_queries,) or (n_recordings,)
        1-based ranks; ties between the true person and others count half (mid-rank),
        so an uninformative query ranks ``(n_people + 1) / 2`` in expectation. Per
        recording, in the order of ``np.unique(query_recording)``.

    See Also
    --------
    mean_reidentification_rank : The mean of these ranks.

    Notes
    -----
    The first DTW call of a Python process compiles tslearn's numba kernels, which
    takes seconds to tens of seconds; later calls are fast. The cost is
    ``O(n_queries * n_references * n_timestamps * band)``; use ``sakoe_chiba_radius``
    and ``n_jobs`` for large sets.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import reidentification_rank
    >>> X = np.stack([np.zeros((8, 1)), np.ones((8, 1)), 2 * np.ones((8, 1))])
    >>> reidentification_rank(X, [0, 1, 2], X, [0, 1, 2], metric="euclidean")
    array([1., 1., 1.])
    """
    Xq = check_motion_windows(X_query, dtype=np.float64)
    Xr = check_motion_windows(X_reference, dtype=np.float64)
    if Xq.shape[2] != Xr.shape[2]:
        raise ValueError(
            f"Query windows have {Xq.shape[2]} channels but reference windows have {Xr.shape[2]}."
        )
    if metric == "euclidean" and Xq.shape[1] != Xr.shape[1]:
        raise ValueError(
            "metric='euclidean' needs windows of equal length; got "
            f"{Xq.shape[1]} and {Xr.shape[1]} timestamps (use metric='dtw')."
        )
    q_subject = _labels(query_subject, len(Xq), "query_subject")
    r_subject = _labels(reference_subject, len(Xr), "reference_subject")
    people, r_codes = np.unique(r_subject, return_inverse=True)
    q_pos = np.searchsorted(people, q_subject)
    q_pos = np.clip(q_pos, 0, len(people) - 1)
    unknown = people[q_pos] != q_subject
    if np.any(unknown):
        raise ValueError(
            "Every query person must have reference windows; missing: "
            f"{np.unique(q_subject[unknown])[:10].tolist()}."
        )

    order = np.argsort(r_codes, kind="stable")
    starts = np.searchsorted(r_codes[order], np.arange(len(people)))
    Xr_sorted = Xr[order]
    # Per-person nearest distance of each query, computed in bounded-memory blocks.
    person_dist = np.empty((len(Xq), len(people)))
    for start in range(0, len(Xq), batch_size):
        block = _pairwise(Xq[start : start + batch_size], Xr_sorted, metric,
                          sakoe_chiba_radius, n_jobs)
        person_dist[start : start + batch_size] = np.minimum.reduceat(block, starts, axis=1)

    true_pos = q_pos
    if query_recording is not None:
        q_rec = _labels(query_recording, len(Xq), "query_recording")
        recordings, inverse = np.unique(q_rec, return_inverse=True)
        sums = np.zeros((len(recordings), len(people)))
        np.add.at(sums, inverse, person_dist)
        counts = np.bincount(inverse, minlength=len(recordings))
        person_dist = sums / counts[:, None]
        rec_true = np.full(len(recordings), -1)
        rec_true[inverse] = q_pos
        if np.any(rec_true[inverse] != q_pos):
            raise ValueError("query_subject must be constant within a recording.")
        true_pos = rec_true

    d_true = person_dist[np.arange(len(person_dist)), true_pos][:, None]
    closer = np.sum(person_dist < d_true, axis=1)
    ties = np.sum(person_dist == d_true, axis=1) - 1  # the true person ties with itself
    return 1.0 + closer + 0.5 * ties


def mean_reidentification_rank(
    X_query, query_subject, X_reference, reference_subject, **kwargs
):
    """Mean of :func:`reidentification_rank` (1 = everyone re-identified).

    Parameters
    ----------
    X_query, query_subject, X_reference, reference_subject, **kwargs
        See :func:`reidentification_rank`.

    Returns
    -------
    mean_rank : float
        Compare with ``(n_people + 1) / 2``, the mean rank of uninformative queries.
    """
    ranks = reidentification_rank(
        X_query, query_subject, X_reference, reference_subject, **kwargs
    )
    return float(np.mean(ranks))
