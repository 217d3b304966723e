"""Choosing a point on the privacy-utility trade-off from a search's ``cv_results_``.

:class:`~sklearn.model_selection.GridSearchCV` with a scoring dict such as
``{"utility": utility_scorer(), "privacy": PrivacyScorer()}`` records both figures for
every candidate. :func:`pareto_front` keeps the candidates no other candidate beats on
both; the ``refit`` callables pick one under a floor on the other figure.
"""

import numbers
import warnings

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..utils.cv_results import check_cv_results, cv_results_column

__all__ = [
    "best_privacy_with_utility_floor",
    "best_utility_with_privacy_floor",
    "pareto_front",
]


def pareto_front(cv_results, x="mean_test_utility", y="mean_test_privacy"):
    """Rows of ``cv_results`` that no other row beats on both ``x`` and ``y``.

    Both figures are maximised. A row is dominated when another row is at least as good
    on both and strictly better on one; rows with NaN in either figure (failed fits)
    are left out.

    Parameters
    ----------
    cv_results : dict or DataFrame
        A search's ``cv_results_`` (or any table of candidates).
    x : str, default="mean_test_utility"
        Column of the first figure; a scorer name such as ``"utility"`` means
        ``"mean_test_utility"``.
    y : str, default="mean_test_privacy"
        Column of the second figure, likewise.

    Returns
    -------
    front : DataFrame
        The non-dominated rows, sorted by increasing ``x`` (hence decreasing ``y``).
        The index is the row's position in ``cv_results``, i.e. the candidate index a
        ``refit`` callable returns.

    Examples
    --------
    >>> from sklearn_privacy.model_selection import pareto_front
    >>> results = {"mean_test_utility": [0.9, 0.8, 0.7, 0.6],
    ...            "mean_test_privacy": [0.1, 0.5, 0.4, 0.9]}
    >>> pareto_front(results).index.tolist()  # row 2 is beaten by row 1
    [3, 1, 0]
    """
    frame = check_cv_results(cv_results)
    xcol, ycol = cv_results_column(frame, x), cv_results_column(frame, y)
    xs = frame[xcol].to_numpy(dtype=np.float64)
    ys = frame[ycol].to_numpy(dtype=np.float64)
    valid = np.isfinite(xs) & np.isfinite(ys)
    xv, yv = xs[valid], ys[valid]
    # dominated[i]: some j is >= on both and > on one (pairwise; candidate counts are small).
    ge = (xv[None, :] >= xv[:, None]) & (yv[None, :] >= yv[:, None])
    gt = (xv[None, :] > xv[:, None]) | (yv[None, :] > yv[:, None])
    dominated = np.any(ge & gt, axis=1)
    keep = np.flatnonzero(valid)[~dominated]
    front = frame.iloc[keep]
    order = np.lexsort(
        (-front[ycol].to_numpy(dtype=np.float64), front[xcol].to_numpy(dtype=np.float64))
    )
    return front.iloc[order]


def _select(cv_results, *, maximise, floor_on, floor, on_infeasible, what):
    frame = check_cv_results(cv_results)
    target = frame[cv_results_column(frame, maximise)].to_numpy(dtype=np.float64)
    constrained = frame[cv_results_column(frame, floor_on)].to_numpy(dtype=np.float64)
    valid = np.isfinite(target) & np.isfinite(constrained)
    if not valid.any():
        raise ValueError(
            f"Every candidate has a NaN {maximise!r} or {floor_on!r} score (all fits or "
            "scorings failed); see the warnings of the search. A common cause is metadata "
            "routing being off, so the privacy scorer received no sensitive_features."
        )
    feasible = valid & (constrained >= floor)
    if feasible.any():
        candidates = np.flatnonzero(feasible)
        primary, secondary = target, constrained
    else:
        best = np.nanmax(np.where(valid, constrained, np.nan))
        message = (
            f"No candidate reaches {floor_on} >= {floor} (the best reaches {best:.4g}); "
            f"{what}"
        )
        if on_infeasible == "raise":
            raise ValueError(message)
        warnings.warn(
            message + f" Falling back to the candidate with the highest {floor_on}.",
            UserWarning,
            stacklevel=4,
        )
        candidates = np.flatnonzero(valid)
        primary, secondary = constrained, target
    # Highest primary figure; ties go to the highest secondary, then the first index.
    order = np.lexsort((candidates, -secondary[candidates], -primary[candidates]))
    return int(candidates[order[0]])


class _FloorRefit:
    """Picklable ``refit`` callable (a closure would make the fitted search unpicklable)."""

    def __init__(self, name, *, maximise, floor_on, floor, on_infeasible, hint):
        self.name = name
        self.maximise = maximise
        self.floor_on = floor_on
        self.floor = floor
        self.on_infeasible = on_infeasible
        self.hint = hint

    def __call__(self, cv_results):
        """Index of the chosen candidate in ``cv_results``."""
        return _select(
            cv_results, maximise=self.maximise, floor_on=self.floor_on, floor=self.floor,
            on_infeasible=self.on_infeasible, what=self.hint,
        )

    def __repr__(self):
        return (
            f"{self.name}({self.floor!r}, maximise={self.maximise!r}, "
            f"floor_on={self.floor_on!r})"
        )


def _check_scorer_names(utility, privacy):
    for name, value in (("utility", utility), ("privacy", privacy)):
        if not value:
            raise ValueError(f"{name} must name a scorer or a cv_results_ column; got ''.")
    if utility == privacy:
        raise ValueError(
            f"utility and privacy must name two different scorers; both are {utility!r}."
        )


@validate_params(
    {
        # Privacy is 1 - advantage, in [0, 1]: a floor outside it cannot be meant.
        "min_privacy": [Interval(numbers.Real, 0, 1, closed="both")],
        "utility": [str],
        "privacy": [str],
        "on_infeasible": [StrOptions({"warn", "raise"})],
    },
    prefer_skip_nested_validation=True,
)
def best_utility_with_privacy_floor(
    min_privacy, utility="utility", privacy="privacy", *, on_infeasible="warn"
):
    """``refit`` callable: the most useful candidate whose privacy reaches a floor.

    Parameters
    ----------
    min_privacy : float in [0, 1]
        Lowest acceptable mean privacy score (e.g. 0.8 = attacker advantage at most 0.2).
        Privacy scores (``1 - advantage``) lie in [0, 1], so a floor outside it raises
        a ``ValueError``.
    utility : str, default="utility"
        Name of the utility scorer in the scoring dict (or a ``cv_results_`` column).
    privacy : str, default="privacy"
        Name of the privacy scorer (or a column), other than ``utility``.
    on_infeasible : {"warn", "raise"}, default="warn"
        What to do when no candidate reaches the floor. ``"warn"`` (default) warns and
        returns the *most private* candidate (ties: most useful), so that an expensive
        search is not lost: scikit-learn sets ``cv_results_`` only after ``refit`` has
        chosen. ``"raise"`` raises a ``ValueError``.

    Returns
    -------
    refit : callable
        ``refit(cv_results) -> int``, for ``GridSearchCV(refit=...)``. Ties in utility
        go to the more private candidate, then to the lower index.

    Examples
    --------
    >>> from sklearn_privacy.model_selection import best_utility_with_privacy_floor
    >>> results = {"mean_test_utility": [0.9, 0.8, 0.7],
    ...            "mean_test_privacy": [0.2, 0.6, 0.9]}
    >>> best_utility_with_privacy_floor(0.5)(results)
    1
    """
    _check_scorer_names(utility, privacy)
    return _FloorRefit(
        "best_utility_with_privacy_floor", maximise=utility, floor_on=privacy,
        floor=min_privacy, on_infeasible=on_infeasible,
        hint="protect more (stronger protector parameters) or lower min_privacy.",
    )


@validate_params(
    {
        "min_utility": [Interval(numbers.Real, None, None, closed="neither")],
        "utility": [str],
        "privacy": [str],
        "on_infeasible": [StrOptions({"warn", "raise"})],
    },
    prefer_skip_nested_validation=True,
)
def best_privacy_with_utility_floor(
    min_utility, utility="utility", privacy="privacy", *, on_infeasible="warn"
):
    """``refit`` callable: the most private candidate whose utility reaches a floor.

    Parameters
    ----------
    min_utility : float
        Lowest acceptable mean utility score (e.g. a macro-F1 of 0.85), a finite
        number on the scale of the utility scorer (macro-F1 and accuracy lie in
        [0, 1]); NaN and infinity raise a ``ValueError``.
    utility : str, default="utility"
        Name of the utility scorer in the scoring dict (or a ``cv_results_`` column).
    privacy : str, default="privacy"
        Name of the privacy scorer (or a column), other than ``utility``.
    on_infeasible : {"warn", "raise"}, default="warn"
        When no candidate reaches the floor: ``"warn"`` warns and returns the *most
        useful* candidate (ties: most private); ``"raise"`` raises a ``ValueError``.

    Returns
    -------
    refit : callable
        ``refit(cv_results) -> int``. Ties in privacy go to the more useful candidate,
        then to the lower index.

    Examples
    --------
    >>> from sklearn_privacy.model_selection import best_privacy_with_utility_floor
    >>> results = {"mean_test_utility": [0.9, 0.8, 0.7],
    ...            "mean_test_privacy": [0.2, 0.6, 0.9]}
    >>> best_privacy_with_utility_floor(0.75)(results)
    1
    """
    _check_scorer_names(utility, privacy)
    return _FloorRefit(
        "best_privacy_with_utility_floor", maximise=privacy, floor_on=utility,
        floor=min_utility, on_infeasible=on_infeasible,
        hint="protect less (weaker protector parameters) or lower min_utility.",
    )
