"""The evaluation layer: the report (several apps, worst-case attacker), the records,
the privacy-utility plot and the step progress of the jobs."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from sklearn_privacy.base import BaseProtector  # noqa: E402
from sklearn_privacy.evaluation import (  # noqa: E402
    RECORD_KEYS,
    PrivacyUtilityDisplay,
    environment_record,
    make_record,
    privacy_utility_report,
    write_benchmark_records,
)
from sklearn_privacy.metrics import PrivacyScorer  # noqa: E402
from sklearn_privacy.model_selection import (  # noqa: E402
    RecordingDisjointSplit,
    SubjectDisjointSplit,
    best_utility_with_privacy_floor,
)
from sklearn_privacy.utils._progress import StepProgress  # noqa: E402


from _synthetic import RESULTS, SpyNoise, flat_lr, make_data  # noqa: E402


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _reset_spy():
    SpyNoise.fit_calls.clear()
    yield
    plt.close("all")




# -- display ------------------------------------------------------------------------------
def test_display_from_cv_results_draws_points_errors_and_frontier():
    display = PrivacyUtilityDisplay.from_cv_results(RESULTS)
    assert display.ax_.get_xlabel() == "activity macro-F1"
    assert display.ax_.get_ylabel() == "privacy (1 - attacker advantage)"
    assert display.figure_ is display.ax_.figure
    # All 7 points with x and y error bars.
    data_line, caplines, barcols = display.errorbar_.lines
    assert len(data_line.get_xdata()) == 7
    assert len(barcols) == 2
    # Frontier: the 4 non-dominated points, as a step line through them.
    assert display.frontier_.tolist() == [3, 1, 4, 0]
    xs = display.line_.get_xdata()
    assert list(xs) == [0.6, 0.8, 0.8, 0.9]
    assert display.line_.get_drawstyle() == "steps-pre"
    labels = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert sorted(labels) == ["Pareto frontier", "candidates"]
    # Frontier points are annotated with their parameters.
    assert [a.get_text() for a in display.annotations_][0] == "sigma=1.0"
    assert len(display.annotations_) == 4


def test_display_on_given_axes_without_annotations():
    _, ax = plt.subplots()
    display = PrivacyUtilityDisplay(utility=[0.5, 0.9], privacy=[0.9, 0.5],
                                    labels=["a", "b"]).plot(ax=ax, annotate=False)
    assert display.ax_ is ax
    assert display.annotations_ == []
    assert display.errorbar_.lines[2] == ()  # no error bars without stds
    with pytest.raises(ValueError, match="equal length"):
        PrivacyUtilityDisplay(utility=[0.5], privacy=[0.9, 0.5]).plot()


def test_display_from_estimator_scores_each_pipeline():
    X, y, subject, groups = make_data()
    pipes = {
        f"sigma={s}": Pipeline([("protector", SpyNoise(sigma=s)), ("app", flat_lr())]).fit(X, y)
        for s in (0.0, 4.0)
    }
    display = PrivacyUtilityDisplay.from_estimator(
        pipes, X, y, sensitive_features=subject, groups=groups,
        privacy_scoring=PrivacyScorer(attacker=flat_lr()),
    )
    utility = display.errorbar_.lines[0].get_xdata()
    privacy = display.errorbar_.lines[0].get_ydata()
    assert len(privacy) == 2 and privacy[1] > privacy[0] + 0.3  # noise hides people
    # The frontier holds the points no other beats on both, each annotated by its name.
    dominated = [
        (utility[1 - i] >= utility[i] and privacy[1 - i] >= privacy[i])
        and (utility[1 - i] > utility[i] or privacy[1 - i] > privacy[i])
        for i in range(2)
    ]
    assert sorted(display.frontier_.tolist()) == [i for i in range(2) if not dominated[i]]
    assert [a.get_text() for a in display.annotations_] == [
        list(pipes)[i] for i in display.frontier_]


# -- report -------------------------------------------------------------------------------
def test_privacy_utility_report_records():
    X, y, subject, groups = make_data()
    report = privacy_utility_report(
        {"raw": "raw", "noise": SpyNoise(sigma=4.0)}, X, y, subject, groups=groups,
        app=flat_lr(), attackers={"lr": flat_lr()}, utility_cv=2, privacy_cv=2,
        dataset="synthetic",
    )
    assert list(report.columns) == RECORD_KEYS
    assert set(report["dataset"]) == {"synthetic"}
    per_protector = {
        "fit_seconds", "activity_macro_f1", "activity_macro_f1_raw_app", "mse", "snr_db",
    } | {f"identity_{m}" for m in (
        "accuracy", "advantage", "balanced_accuracy", "roc_auc_ovr", "tpr_at_1pct_fpr")}
    for name in ("raw", "noise"):
        assert set(report.loc[report.protector == name, "metric"]) == per_protector
    levels = {"window", "recording", "recording:vote", "recording:mean_proba",
              "recording:log_proba"}
    attack = report[(report.metric == "identity_accuracy") & (report.attacker == "lr")]
    # protector x mode x level, for the attacker and again for the worst case
    assert len(attack) == 2 * 2 * len(levels)
    assert len(report[report.metric == "identity_accuracy"]) == 2 * 2 * len(levels) * 2
    assert set(attack["mode"]) == {"adaptive", "static"}
    assert set(attack["level"]) == levels
    # The recording level repeats the pooling rule with the highest mean advantage.
    for (protector, mode), cell in report[
        (report.metric == "identity_advantage") & (report.attacker == "lr")
    ].groupby(["protector", "mode"]):
        rules = cell[cell.level.str.startswith("recording:")]
        headline = cell.loc[cell.level == "recording", "value"].item()
        assert headline == rules["value"].max()
    assert (attack["n_folds"] == 2).all()
    assert np.allclose(attack["chance"], 1 / 6)
    assert report.loc[report.metric == "identity_advantage", "chance"].isna().all()

    def value(protector, metric, mode=None, level=None):
        rows = report[(report.protector == protector) & (report.metric == metric)]
        if metric.startswith("activity"):
            rows = rows[rows["attacker"] == "app"]  # app= is reported as "app"
        elif metric.startswith("identity"):
            rows = rows[rows["attacker"] == "lr"]
        else:
            assert rows["attacker"].isna().all()
        if mode is not None:
            rows = rows[(rows["mode"] == mode) & (rows["level"] == level)]
        assert len(rows) == 1
        return rows["value"].iloc[0]

    assert value("raw", "identity_accuracy", "adaptive", "window") > 0.9
    assert value("noise", "identity_accuracy", "adaptive", "window") < 0.7
    assert value("raw", "mse") == 0.0 and value("noise", "mse") > 10
    assert value("raw", "activity_macro_f1") == value("raw", "activity_macro_f1_raw_app")
    # The protector never saw a test recording: every fit saw the training side only.
    rows = {X[i].tobytes(): i for i in range(len(X))}
    utility_tests = [test for _, test in SubjectDisjointSplit(2).split(X, y, groups)]
    privacy_tests = [test for _, test in RecordingDisjointSplit(2).split(X, subject, groups)]
    seen = [np.array([rows[w.tobytes()] for w in call["X"]]) for call in SpyNoise.fit_calls]
    assert len(seen) == 4
    for fitted, test in zip(seen, utility_tests + privacy_tests):
        assert len(np.intersect1d(fitted, test)) == 0
        assert len(fitted) == len(X) - len(test)
    assert all(call["sensitive_features"] is not None for call in SpyNoise.fit_calls)


class Negate(BaseProtector):
    """Negates the windows: invertible, so it hides nothing from a retrained model."""

    _parameter_constraints: dict = {}

    def fit(self, X, y=None, *, sensitive_features=None):
        self._validate_motion(X, reset=True)
        return self

    def transform(self, X):
        Xv = self._validate_motion(X, reset=False)
        return self._restore_motion(-Xv, X)


def test_report_trains_each_model_on_the_data_of_its_threat_model():
    # Negation keeps every piece of information but fools models trained on raw data
    # (logistic regressions are not sign-invariant): the identity offset and the
    # activity's sine both change sign. So the figures tell which data each model was
    # trained and tested on.
    X, y, subject, groups = make_data()
    report = privacy_utility_report(
        {"negate": Negate()}, X, y, subject, groups=groups, app=flat_lr(),
        attackers={"lr": flat_lr()}, utility_cv=2, privacy_cv=2, distortion=False,
    )
    figures = {
        (metric, mode, level): value
        for metric, mode, level, value in report[["metric", "mode", "level", "value"]]
        .itertuples(index=False)
    }
    for level in ("window", "recording"):
        # Adaptive: retrained on negated recordings, it re-identifies everyone...
        assert figures[("identity_accuracy", "adaptive", level)] > 0.95
        assert figures[("identity_advantage", "adaptive", level)] > 0.9
        # ...while the static attacker, trained on raw recordings, is fooled.
        assert figures[("identity_accuracy", "static", level)] < 0.35
    # The app retrained on negated windows works; the raw app, fed negated test
    # windows, predicts the opposite activity.
    utility = report[report.attacker == "best"].set_index("metric")["value"]
    assert utility["activity_macro_f1"] > 0.9
    assert utility["activity_macro_f1_raw_app"] < 0.1


class _GroupsSpy(ClassifierMixin, BaseEstimator):
    """Logistic regression on flattened windows whose ``fit`` records its groups."""

    calls = []

    def fit(self, X, y, groups=None):
        type(self).calls.append(np.asarray(groups))
        self.model_ = flat_lr().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_report_with_segment_rows():
    X, y, subject, groups = make_data()
    rows = np.column_stack([groups, np.arange(len(X)) // 5])  # two segments per recording
    kwargs = dict(app=_GroupsSpy(), attackers={"spy": _GroupsSpy()}, utility_cv=2,
                  privacy_cv=2, modes=("static",))
    _GroupsSpy.calls.clear()
    with_rows = privacy_utility_report({"raw": "raw"}, X, y, subject, groups=rows, **kwargs)
    calls = list(_GroupsSpy.calls)
    # 2 utility folds x 1 raw app (without protection it is also the app retrained on
    # protected data), 2 privacy folds x 1 static attacker.
    assert len(calls) == 4 and all(g.ndim == 2 and g.shape[1] == 3 for g in calls)
    # Privacy folds split by recording (the segment is ignored): every person trains.
    for g in calls[-2:]:
        assert len(np.unique(g[:, 0])) == 6 and len(np.unique(g[:, :2], axis=0)) == 6
    _GroupsSpy.calls.clear()
    with_pairs = privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups, **kwargs)
    assert all(g.shape[1] == 2 for g in _GroupsSpy.calls)
    figures = with_rows.metric != "fit_seconds"
    pd.testing.assert_frame_equal(with_rows[figures], with_pairs[figures])


def test_report_validation():
    X, y, subject, groups = make_data()
    for n_jobs in (0, 1.5, "2", True):
        with pytest.raises(ValueError, match="n_jobs must be None or a non-zero int"):
            privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups,
                                   app=flat_lr(), attackers={"lr": flat_lr()}, n_jobs=n_jobs)
    with pytest.raises(ValueError, match="subject, recording"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=subject,
                               app=flat_lr(), attackers={"lr": flat_lr()})
    with pytest.raises(ValueError, match=r"got shape \(120, 4\)"):
        privacy_utility_report({"raw": "raw"}, X, y, subject,
                               groups=np.column_stack([groups, groups]),
                               app=flat_lr(), attackers={"lr": flat_lr()})
    with pytest.raises(ValueError, match="modes"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups,
                               app=flat_lr(), attackers={"lr": flat_lr()}, modes=("oracle",))
    with pytest.raises(ValueError, match="protectors"):
        privacy_utility_report([], X, y, subject, groups=groups)


def test_write_benchmark_records(tmp_path):
    records = [
        dict(dataset="hapt", protector="raw", metric="identity_accuracy", attacker="cnn",
             mode="adaptive", level="window", value=np.float64(0.91), std=0.02, n_folds=2,
             chance=1 / 30),
        dict(dataset="hapt", protector="raw", metric="snr_db", attacker=None, mode=None,
             level=None, value=np.inf, std=np.nan, n_folds=np.int64(2), chance=None),
    ]
    written = write_benchmark_records(pd.DataFrame(records), tmp_path / "out" / "bench.json")
    loaded = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert loaded == written
    assert len(loaded) == 3 and loaded[-1]["metric"] == "environment"
    assert loaded[0]["value"] == 0.91 and loaded[1]["value"] is None
    assert loaded[1]["n_folds"] == 2
    markdown = (tmp_path / "out" / "bench.md").read_text()
    assert "| " + " | ".join(RECORD_KEYS) + " |" in markdown
    row = "| hapt | raw | identity_accuracy | cnn | adaptive | window | 0.91 | 0.02 | 2 | 0.03333 |"
    assert row in markdown
    assert "Environment:" in markdown and "sklearn" in markdown
    # An environment record already there is not duplicated.
    again = write_benchmark_records(loaded, tmp_path / "b.json", tmp_path / "b.md")
    assert sum(r["metric"] == "environment" for r in again) == 1
    with pytest.raises(ValueError, match="lacks the keys"):
        write_benchmark_records([{"metric": "mse"}], tmp_path / "c.json")


def test_environment_record():
    record = environment_record("hapt")
    assert record["metric"] == "environment" and record["dataset"] == "hapt"
    assert set(RECORD_KEYS) <= set(record)
    for key in ("python", "numpy", "torch", "sklearn", "skorch", "cpu", "gpu", "date"):
        assert key in record
    assert record["sklearn"].count(".") >= 1
    json.dumps(record)




# -- several apps, worst-case attacker ------------------------------------------------------
class ConstantClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the first class seen, with certainty: a useless app or attacker."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def predict_proba(self, X):
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, 0] = 1.0
        return proba


def test_report_with_several_apps_reports_each_and_the_best():
    X, y, subject, groups = make_data()
    report = privacy_utility_report(
        {"raw": "raw", "noise": SpyNoise(sigma=1.0)}, X, y, subject, groups=groups,
        apps={"lr": flat_lr(), "constant": ConstantClassifier()},
        attackers={"lr": flat_lr()}, utility_cv=2, privacy_cv=2, modes=("adaptive",),
    )
    for metric in ("activity_macro_f1", "activity_macro_f1_raw_app"):
        rows = report[report.metric == metric].set_index(["protector", "attacker"])["value"]
        assert set(rows.index.get_level_values("attacker")) == {"lr", "constant", "best"}
        for protector in ("raw", "noise"):
            # The constant app predicts one activity of two: macro-F1 at most 1/2 * 2/3.
            assert rows[(protector, "constant")] < 0.4 < rows[(protector, "lr")]
            # "best" repeats the strongest app's row.
            assert rows[(protector, "best")] == rows[(protector, "lr")]
    best = report[report.attacker == "best"]
    lr = report[(report.attacker == "lr") & report.metric.str.startswith("activity")]
    np.testing.assert_array_equal(best["std"], lr["std"])
    # Protector-level figures have no app.
    assert report.loc[report.metric.isin(["mse", "fit_seconds"]), "attacker"].isna().all()


def test_report_worst_case_rows_are_the_strongest_attacker_on_the_means():
    X, y, subject, groups = make_data()
    report = privacy_utility_report(
        {"raw": "raw", "noise": SpyNoise(sigma=4.0)}, X, y, subject, groups=groups,
        app=flat_lr(), attackers={"constant": ConstantClassifier(), "lr": flat_lr()},
        utility_cv=2, privacy_cv=2,
    )
    privacy = report[report.metric.str.startswith("identity")]
    assert set(privacy["attacker"]) == {"constant", "lr", "worst"}
    keys = ["protector", "metric", "mode", "level"]
    table = privacy.pivot_table(index=keys, columns="attacker", values="value")
    # One worst row per protector x figure x mode x level (window, recording, and the
    # recording level of each pooling rule); ConstantClassifier has probabilities, so
    # every figure and rule exists for both attackers.
    assert len(table) == 2 * 5 * 2 * 5 and table["worst"].notna().all()
    advantage = table.xs("identity_advantage", level="metric")
    assert (advantage["constant"] <= 0.0 + 1e-12).all()  # a constant guess has no edge
    raw = advantage.xs("raw", level="protector")
    assert (raw["lr"] > 0.5).all()
    # The worst case is whichever attacker has the higher mean advantage, and its score
    # row comes from the same attacker.
    for (protector, mode, level), row in advantage.iterrows():
        winner = "lr" if row["lr"] > row["constant"] else "constant"
        assert row["worst"] == row[winner]
        score = table.loc[(protector, "identity_accuracy", mode, level)]
        assert score["worst"] == score[winner]
    worst = privacy[privacy.attacker == "worst"]
    assert list(worst.columns) == RECORD_KEYS and (worst["n_folds"] == 2).all()


def test_report_reserved_names_and_app_or_apps():
    X, y, subject, groups = make_data()
    kwargs = dict(utility_cv=2, privacy_cv=2)
    with pytest.raises(ValueError, match="'worst' is reserved"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups, app=flat_lr(),
                               attackers={"worst": flat_lr()}, **kwargs)
    with pytest.raises(ValueError, match="'best' is reserved"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups,
                               apps={"best": flat_lr()}, attackers={"lr": flat_lr()}, **kwargs)
    with pytest.raises(ValueError, match="app or apps, not both"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups, app=flat_lr(),
                               apps={"lr": flat_lr()}, attackers={"lr": flat_lr()}, **kwargs)
    with pytest.raises(ValueError, match="apps must be a non-empty dict"):
        privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups, apps={},
                               attackers={"lr": flat_lr()}, **kwargs)


def test_report_verbose_prints_steps_with_elapsed_and_eta(capsys):
    X, y, subject, groups = make_data()
    privacy_utility_report({"raw": "raw"}, X, y, subject, groups=groups, app=flat_lr(),
                           attackers={"lr": flat_lr()}, utility_cv=2, privacy_cv=2,
                           modes=("static",), verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    # Shared models (2 utility folds + 2 privacy folds), then 2 + 2 (fold, protector)
    # tasks, each printed when it finishes, then the end.
    assert len(lines) == 9
    assert lines[0].startswith(
        "[privacy_utility_report] 1/8 00:00 elapsed, 00:00 left: utility fold 0: raw-data apps"
    )
    assert "privacy fold 1: static attackers" in lines[3]
    assert "5/8" in lines[4] and "utility fold 0: raw" in lines[4]
    assert "8/8" in lines[7] and "privacy fold 1: raw" in lines[7]
    assert lines[8].endswith("00:00 left: done")


# -- records --------------------------------------------------------------------------------
def test_make_record_is_the_record_format():
    record = make_record("hapt", "raw", "identity_accuracy", np.float32(0.5), attacker="cnn",
                         mode="adaptive", level="window", std=np.float64(0.1),
                         n_folds=np.int64(2), chance=1 / 30, profile="best")
    assert list(record)[:len(RECORD_KEYS)] == RECORD_KEYS and record["profile"] == "best"
    assert type(record["value"]) is float and type(record["n_folds"]) is int
    json.dumps(record)
    assert make_record("hapt", "raw", "mse", None)["value"] is None
    with pytest.raises(ValueError, match="value must be a number"):
        make_record("hapt", "raw", "mse", "high")
    with pytest.raises(ValueError, match="metric"):
        make_record("hapt", "raw", "", 1.0)


# -- progress -------------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_step_progress_eta_from_the_steps_done_with_a_fake_clock(capsys):
    clock = FakeClock()
    progress = StepProgress(4, desc="job", clock=clock)
    assert progress.eta() is None
    progress.step("first")
    clock.now += 30  # the first step took 30 s
    progress.step("second", weight=2)
    clock.now += 60  # 3 units in 90 s: 30 s a unit, 1 left
    assert progress.eta() == pytest.approx(30.0)
    progress.step("last")
    clock.now += 45
    progress.finish()
    assert progress.lines == [
        "[job] 0/4 00:00 elapsed, ? left: first",
        "[job] 1/4 00:30 elapsed, 01:30 left: second",
        "[job] 3/4 01:30 elapsed, 00:30 left: last",
        "[job] 4/4 02:15 elapsed, 00:00 left: done",
    ]
    assert capsys.readouterr().out.splitlines() == progress.lines
    quiet = StepProgress(2, desc="job", verbose=False, clock=clock)
    quiet.step("x")
    assert capsys.readouterr().out == "" and len(quiet.lines) == 1
    with pytest.raises(ValueError, match="total must be positive"):
        StepProgress(0, desc="job")
    # Parallel steps are reported when they finish: counted first, then printed.
    done = StepProgress(2, desc="job", verbose=False, clock=clock)
    clock.now += 10
    done.complete("a")
    assert done.lines == ["[job] 1/2 00:10 elapsed, 00:10 left: a"]


# -- the plot of a report --------------------------------------------------------------------
def _report_records():
    """A hand-built report: three protectors, two attackers (and the worst case)."""
    rows = []
    figures = {  # protector: (F1, advantage of a, of b) at window; recording is + 0.1
        "raw": (0.90, 0.80, 0.60),
        "noise": (0.70, 0.20, 0.30),
        "ssa": (0.80, 0.40, 0.10),
    }
    for protector, (f1, adv_a, adv_b) in figures.items():
        for app in ("cnn", "best"):
            rows.append(make_record("hapt", protector, "activity_macro_f1", f1, attacker=app,
                                    std=0.01, n_folds=2))
        for level, shift in (("window", 0.0), ("recording", 0.1)):
            worst = max(adv_a, adv_b) + shift
            for attacker, adv in (("a", adv_a + shift), ("b", adv_b + shift),
                                  ("worst", worst)):
                rows.append(make_record("hapt", protector, "identity_advantage", adv,
                                        attacker=attacker, mode="adaptive", level=level,
                                        std=0.02, n_folds=2))
    return pd.DataFrame(rows)


def test_display_from_report_worst_case_labels_chance_line_and_chosen_point():
    report = _report_records()
    display = PrivacyUtilityDisplay.from_report(report, chosen="ssa")
    utility = display.errorbar_.lines[0].get_xdata()
    privacy = display.errorbar_.lines[0].get_ydata()
    np.testing.assert_allclose(utility, [0.9, 0.7, 0.8])
    # Worst case by default: 1 - max advantage over the attackers.
    np.testing.assert_allclose(privacy, [0.2, 0.7, 0.6])
    # Every point is labelled, not only the frontier ones.
    assert [a.get_text() for a in display.annotations_] == ["raw", "noise", "ssa"]
    assert [a.xy for a in display.annotations_] == list(zip(utility, privacy))
    # The chance line: an attacker at chance leaves privacy 1.
    assert display.chance_line_ in display.ax_.lines
    assert list(display.chance_line_.get_ydata()) == [1.0, 1.0]
    assert display.chance_line_.get_linestyle() == "--"
    # The chosen point is marked on the chosen protector.
    assert list(display.chosen_.get_xdata()) == [0.8]
    assert list(display.chosen_.get_ydata()) == pytest.approx([0.6])
    legend = {t.get_text() for t in display.ax_.get_legend().get_texts()}
    assert {"attacker at chance", "chosen", "Pareto frontier"} <= legend
    assert "worst" in display.ax_.get_ylabel()


def test_display_from_report_panels_per_attacker_and_level_with_a_refit_rule():
    report = _report_records()
    rule = best_utility_with_privacy_floor(0.65)
    display = PrivacyUtilityDisplay.from_report(
        report, attacker=["a", "b"], level=("window", "recording"), chosen=rule,
    )
    assert display.axes_.shape == (2, 2) and len(display.panels_) == 4
    assert display.panels_[0] is display
    expected = {  # (attacker, level) -> privacy of raw, noise, ssa
        ("a", "window"): [0.2, 0.8, 0.6], ("a", "recording"): [0.1, 0.7, 0.5],
        ("b", "window"): [0.4, 0.7, 0.9], ("b", "recording"): [0.3, 0.6, 0.8],
    }
    for panel, (key, privacy) in zip(display.panels_, expected.items()):
        np.testing.assert_allclose(panel.errorbar_.lines[0].get_ydata(), privacy)
        assert f"{key[0]}, {key[1]}" in panel.ax_.get_ylabel()
        # The rule picks, in each panel, the most useful protector with privacy >= 0.65.
        feasible = [i for i, p in enumerate(privacy) if p >= 0.65]
        best = max(feasible, key=lambda i: [0.9, 0.7, 0.8][i])
        assert panel.chosen_.get_xdata()[0] == [0.9, 0.7, 0.8][best]
    with pytest.raises(ValueError, match="not a protector"):
        PrivacyUtilityDisplay.from_report(report, chosen="nothing")
    with pytest.raises(ValueError, match="ax must hold 2 axes"):
        _, ax = plt.subplots()
        PrivacyUtilityDisplay.from_report(report, level=("window", "recording"), ax=ax)
    with pytest.raises(ValueError, match="no protector"):
        PrivacyUtilityDisplay.from_report(report, attacker="c")


def test_write_outputs_plots_the_worst_case_at_both_levels(tmp_path, monkeypatch):
    from sklearn_privacy.evaluation import write_outputs

    drawn = []
    original = PrivacyUtilityDisplay.from_report.__func__

    def spy(cls, *args, **kwargs):
        drawn.append(original(cls, *args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(PrivacyUtilityDisplay, "from_report", classmethod(spy))
    paths = write_outputs(_report_records(), tmp_path)
    assert all(path.exists() and path.stat().st_size > 0 for path in paths.values())
    assert plt.get_fignums() == []  # closed after saving
    (display,) = drawn
    labels = [panel.ax_.get_ylabel() for panel in display.panels_]
    assert labels == ["privacy (1 - advantage), adaptive worst, window",
                      "privacy (1 - advantage), adaptive worst, recording"]
    assert all(panel.chance_line_ is not None for panel in display.panels_)


# -- jobs: attackers built lazily -------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [("rocket", "RocketClassifier"),
                                       ("dtw", "DTWNeighborsClassifier")])
def test_job_builds_rocket_and_dtw_attackers_lazily(name, cls):
    import sklearn_privacy.adversaries as adversaries
    from sklearn_privacy.evaluation import ATTACKERS, make_attackers

    assert name in ATTACKERS
    if not hasattr(adversaries, cls):
        pytest.skip(f"sklearn_privacy.adversaries has no {cls} yet")
    attacker = make_attackers([name], random_state=3)[ATTACKERS[name][0]]
    assert type(attacker).__name__ == cls and attacker.random_state == 3


# -- layering -------------------------------------------------------------------------------
def test_lower_layers_do_not_import_evaluation():
    import ast
    from pathlib import Path

    import sklearn_privacy

    root = Path(sklearn_privacy.__file__).parent
    offenders = []
    for sub in ("utils", "datasets", "adversaries", "motion", "image", "metrics",
                "model_selection"):
        for path in sorted((root / sub).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] + [alias.name for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                if any("evaluation" in name.split(".") or name == "cli" for name in names):
                    offenders.append(f"{sub}/{path.name}:{node.lineno}")
    assert offenders == []


def test_evaluation_uses_no_private_name_of_another_subpackage():
    import ast
    from pathlib import Path

    import sklearn_privacy.evaluation

    offenders = []
    for path in sorted(Path(sklearn_privacy.evaluation.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level < 2:
                continue
            module = (node.module or "").split(".")
            # utils' private modules are the shared plumbing (torch, progress).
            if module[0] == "utils":
                continue
            if any(part.startswith("_") for part in module + [a.name for a in node.names]):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_choose_protector_first_and_private_with_a_utility_floor():
    from sklearn_privacy.evaluation import choose_protector

    def rows(protector, f1, window, recording):
        return [
            make_record("d", protector, "activity_macro_f1", f1, attacker="best"),
            make_record("d", protector, "identity_advantage", window, attacker="worst",
                        mode="adaptive", level="window"),
            make_record("d", protector, "identity_advantage", recording, attacker="worst",
                        mode="adaptive", level="recording"),
            # a static row more private than any adaptive one must not count
            make_record("d", protector, "identity_advantage", 0.0, attacker="worst",
                        mode="static", level="window"),
        ]

    report = pd.DataFrame(rows("raw", 0.9, 0.5, 0.9) + rows("weak", 0.85, 0.4, 0.8)
                          + rows("strong", 0.5, 0.05, 0.1) + rows("mid", 0.8, 0.3, 0.2))
    assert choose_protector(report) == "weak"
    assert choose_protector(report, "private") == "strong"
    # Above a floor of 0.6, the worse of the two levels counts: 0.3 for "mid" against
    # 0.8 for "weak".
    assert choose_protector(report, "private", utility_floor=0.6) == "mid"
    with pytest.raises(ValueError, match="no protector reaches the utility floor 0.95"):
        choose_protector(report, "private", utility_floor=0.95)
    with pytest.raises(ValueError, match="no protector other than 'raw'"):
        choose_protector(report[report.protector == "raw"])
    with pytest.raises(ValueError, match="rule must be one of"):
        choose_protector(report, "best")
