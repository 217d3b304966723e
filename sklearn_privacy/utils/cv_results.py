"""Reading a search's ``cv_results_``: shared by the search helpers and the plot."""

import pandas as pd

__all__ = ["check_cv_results", "cv_results_column"]


def check_cv_results(cv_results):
    """``cv_results`` (a search's ``cv_results_`` dict or a DataFrame) as a DataFrame."""
    if isinstance(cv_results, pd.DataFrame):
        return cv_results
    if isinstance(cv_results, dict):
        return pd.DataFrame(cv_results)
    raise TypeError(
        "cv_results must be a search's cv_results_ dict or a DataFrame; got "
        f"{type(cv_results).__name__}."
    )


def cv_results_column(frame, name):
    """Column ``name``, or ``mean_test_<name>`` when given a bare scorer name."""
    if name in frame.columns:
        return name
    if f"mean_test_{name}" in frame.columns:
        return f"mean_test_{name}"
    available = sorted(c for c in frame.columns if c.startswith("mean_test_"))
    raise KeyError(
        f"cv_results has no column {name!r} (nor 'mean_test_{name}'). Scores available: "
        f"{available}. Name the scorers with a scoring dict, e.g. "
        "scoring={'utility': ..., 'privacy': ...}."
    )
