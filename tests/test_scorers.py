"""Routed privacy scorers: metadata routing, adaptive/static attacks, pooling levels."""

import pickle
import warnings
from numbers import Real

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import Interval

from sklearn_privacy.base import BaseProtector
from sklearn_privacy.metrics import PrivacyScorer, utility_scorer
from sklearn_privacy.model_selection import SubjectDisjointSplit


# -- test fixtures ----------------------------------------------------------------
def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def _scale_identity(X, keep=1.0):
    """Scale channel 0, which carries the person (``keep=0`` removes the identity)."""
    X = np.array(X, copy=True)
    X[:, :, 0] *= keep
    return X


def _negate(X):
    return -np.asarray(X)


def flat_lr():
    return make_pipeline(FunctionTransformer(_flatten), LogisticRegression(max_iter=500))


def make_data(n_subjects=6, n_recordings=2, n_windows=10, n_timestamps=8, identity=1.0,
              noise=0.3, seed=0):
    """Windows whose channel 0 carries the person (an offset), channel 1 the activity."""
    rng = np.random.RandomState(seed)
    n = n_subjects * n_recordings * n_windows
    subject = np.repeat(np.arange(n_subjects), n_recordings * n_windows)
    recording = np.repeat(np.arange(n_subjects * n_recordings), n_windows) % n_recordings
    y = rng.randint(2, size=n)
    t = np.linspace(0, 2 * np.pi, n_timestamps)
    X = noise * rng.normal(size=(n, n_timestamps, 2))
    X[:, :, 0] += identity * subject[:, None]
    X[:, :, 1] += np.where(y[:, None] == 1, 1.0, -1.0) * np.sin(t)
    return X.astype(np.float32), y, subject, np.column_stack([subject, recording])


class SpyNoise(BaseProtector):
    """Adds Gaussian noise of scale ``sigma``; records what ``fit`` received."""

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }
    fit_calls = []  # shared by clones: the spy

    def __init__(self, sigma=0.0, random_state=0):
        self.sigma = sigma
        self.random_state = random_state

    def fit(self, X, y=None, *, sensitive_features=None):
        Xv = self._validate_motion(X, reset=True)
        s = self._check_sensitive(sensitive_features, len(Xv), required=False)
        self.rng_ = np.random.RandomState(self.random_state)
        type(self).fit_calls.append({"n": len(Xv), "sensitive_features": s})
        return self

    def transform(self, X):
        Xv = self._validate_motion(X, reset=False)
        # Fresh noise at every call: a noise pattern repeated across calls would be a
        # fingerprint of the row position.
        noise = self.rng_.normal(size=Xv.shape)
        return self._restore_motion(Xv + (self.sigma * noise).astype(Xv.dtype), X)


class SpyPrivacyScorer(PrivacyScorer):
    """PrivacyScorer that records the metadata it receives."""

    calls = []

    def __call__(self, estimator, X, y_true=None, *, sensitive_features=None, groups=None):
        type(self).calls.append({"n": len(X), "sensitive_features": sensitive_features,
                                 "groups": groups})
        return super().__call__(estimator, X, y_true, sensitive_features=sensitive_features,
                                groups=groups)


@pytest.fixture(autouse=True)
def _reset_spies():
    SpyNoise.fit_calls.clear()
    SpyPrivacyScorer.calls.clear()
    yield


def protected_pipeline(sigma=0.0):
    return Pipeline([("protector", SpyNoise(sigma=sigma)),
                     ("flatten", FunctionTransformer(_flatten)),
                     ("app", LogisticRegression(max_iter=500))])


# -- routing ------------------------------------------------------------------------
def test_requests_sensitive_features_and_groups_by_default():
    with config_context(enable_metadata_routing=True):
        routing = PrivacyScorer().get_metadata_routing()
        assert routing.consumes("score", ["sensitive_features", "groups", "other"]) == {
            "sensitive_features", "groups"}
        scorer = PrivacyScorer().set_score_request(groups=False)
        routing = scorer.get_metadata_routing()
        assert routing.consumes("score", ["sensitive_features", "groups"]) == {"sensitive_features"}
        # clone keeps the requests, like scikit-learn estimators.
        routing = clone(scorer).get_metadata_routing()
        assert routing.consumes("score", ["sensitive_features", "groups"]) == {"sensitive_features"}


def test_set_score_request_needs_routing_and_known_params():
    with config_context(enable_metadata_routing=False):
        with pytest.raises(RuntimeError, match="enable_metadata_routing"):
            PrivacyScorer().set_score_request(groups=False)
    with config_context(enable_metadata_routing=True):
        with pytest.raises(TypeError, match="Unexpected"):
            PrivacyScorer().set_score_request(sample_weight=True)


def test_routed_scorer_receives_labels_and_plain_function_does_not():
    X, y, subject, groups = make_data()
    plain_calls = []

    def plain_scorer(estimator, X, y, sensitive_features=None, groups=None):
        plain_calls.append(sensitive_features)
        return 0.0

    scoring = {
        "utility": utility_scorer(),
        "privacy": SpyPrivacyScorer(attacker=flat_lr()),
        "plain": plain_scorer,
    }
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(protected_pipeline(), {"protector__sigma": [0.0, 3.0]},
                              scoring=scoring, refit="utility",
                              cv=SubjectDisjointSplit(n_splits=2))
        search.fit(X, y, sensitive_features=subject, groups=groups)

    # The plain function never gets the labels; ours gets the scored fold's.
    assert plain_calls and all(s is None for s in plain_calls)
    assert len(SpyPrivacyScorer.calls) == 4  # 2 candidates x 2 folds
    for call in SpyPrivacyScorer.calls:
        s, g = np.asarray(call["sensitive_features"]), np.asarray(call["groups"])
        assert s.shape == (call["n"],) and g.shape == (call["n"], 2)
        np.testing.assert_array_equal(s, g[:, 0])  # the labels of the scored windows
        assert len(np.unique(s)) == 3  # one subject-disjoint fold: 3 of the 6 people
    # The protector's fit got the training fold's labels through the Pipeline.
    assert all(c["sensitive_features"] is not None for c in SpyNoise.fit_calls)
    # Noise protects: more privacy at sigma=3 than with no protection.
    privacy = search.cv_results_["mean_test_privacy"]
    assert privacy[1] > privacy[0] + 0.2
    assert np.all((privacy >= 0) & (privacy <= 1))


def test_cross_validate_routes_to_scorer_with_alias():
    X, y, subject, groups = make_data()
    person = subject + 100  # the aliased labels differ from sensitive_features
    with config_context(enable_metadata_routing=True):
        scorer = SpyPrivacyScorer(attacker=flat_lr()).set_score_request(sensitive_features="person")
        result = cross_validate(
            protected_pipeline(), X, y, cv=SubjectDisjointSplit(n_splits=2),
            scoring={"privacy": scorer},
            params={"person": person, "groups": groups, "sensitive_features": subject},
        )
    assert len(result["test_privacy"]) == 2
    assert len(SpyPrivacyScorer.calls) == 2
    for call in SpyPrivacyScorer.calls:
        # The scored fold's values of the alias, not of sensitive_features.
        np.testing.assert_array_equal(call["sensitive_features"],
                                      np.asarray(call["groups"])[:, 0] + 100)
    # The protector's fit still received sensitive_features (3 people per fold).
    for call in SpyNoise.fit_calls:
        assert len(np.unique(call["sensitive_features"])) == 3
        assert call["sensitive_features"].max() < 100
    assert len(SpyNoise.fit_calls) == 2


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_without_routing_search_fails_clearly():
    X, y, subject, groups = make_data()
    with config_context(enable_metadata_routing=False):
        search = GridSearchCV(protected_pipeline(), {"protector__sigma": [0.0]},
                              scoring={"privacy": PrivacyScorer(attacker=flat_lr())},
                              refit=False, cv=SubjectDisjointSplit(n_splits=2), error_score="raise")
        message = "received no sensitive_features.*enable_metadata_routing"
        with pytest.raises(ValueError, match=message):
            search.fit(X, y, groups=groups, protector__sensitive_features=subject)

        # With the default error_score, the failure is a loud warning and NaN, not a score.
        search.set_params(error_score=np.nan)
        with pytest.warns(UserWarning, match="received no sensitive_features"):
            search.fit(X, y, groups=groups, protector__sensitive_features=subject)
        assert np.all(np.isnan(search.cv_results_["mean_test_privacy"]))


def test_direct_call_works_without_routing():
    X, y, subject, groups = make_data()
    pipe = protected_pipeline().fit(X, y)
    with config_context(enable_metadata_routing=False):
        privacy = PrivacyScorer(attacker=flat_lr())(pipe, X, y, sensitive_features=subject,
                                                    groups=groups)
    assert 0.0 <= privacy < 0.2  # the offsets identify everyone


# -- attack protocol ----------------------------------------------------------------
def test_static_attacker_overstates_privacy_of_an_invertible_transform():
    # Negating the signal hides nothing from an attacker retrained on it, but fools
    # one trained on raw data: adaptive privacy is low, static privacy high.
    X, y, subject, groups = make_data()
    pipe = make_pipeline(FunctionTransformer(_negate), FunctionTransformer(_flatten),
                         LogisticRegression(max_iter=500)).fit(X, y)
    kw = dict(sensitive_features=subject, groups=groups)
    adaptive = PrivacyScorer(flat_lr(), mode="adaptive")(pipe, X, y, **kw)
    static = PrivacyScorer(flat_lr(), mode="static")(pipe, X, y, **kw)
    assert adaptive < 0.2
    assert static > adaptive + 0.5


def test_static_with_fitted_attacker_needs_no_groups():
    X, y, subject, groups = make_data()
    raw_pipe = flat_lr().fit(X, y)  # no protector: the scored data are raw
    attacker = flat_lr().fit(X, subject)
    scorer = PrivacyScorer(mode="static", static_attacker=attacker)
    assert scorer(raw_pipe, X, y, sensitive_features=subject) < 0.1
    with pytest.raises(ValueError, match="groups"):
        PrivacyScorer(mode="static", static_attacker=attacker, level="recording")(
            raw_pipe, X, y, sensitive_features=subject)


def test_recording_level_pools_weak_window_evidence():
    X, y, subject, groups = make_data(identity=0.2, noise=1.0, n_windows=30)
    pipe = flat_lr().fit(X, y)
    scorer = PrivacyScorer(flat_lr(), random_state=0)
    summary = scorer.evaluate(pipe, X, y, sensitive_features=subject, groups=groups)
    assert set(summary) == {"window", "recording"}
    assert summary["window"]["privacy"] > 0.3  # single windows leak little
    assert summary["recording"]["privacy"] < summary["window"]["privacy"] - 0.2
    assert summary["window"]["metric"] == "accuracy"
    assert summary["window"]["chance"] == pytest.approx(1 / 6)
    assert summary["recording"]["n_splits"] == 2
    # __call__ reports the configured level of the same attack.
    assert scorer.set_params(level="recording")(
        pipe, X, y, sensitive_features=subject, groups=groups) == pytest.approx(
        summary["recording"]["privacy"])


def test_binary_attribute_uses_balanced_accuracy():
    X, y, subject, groups = make_data(identity=0.0)
    gender = (subject % 2).astype(int)
    X[:, :, 0] += gender[:, None]
    pipe = flat_lr().fit(X, y)
    summary = PrivacyScorer(flat_lr()).evaluate(pipe, X, y, sensitive_features=gender,
                                                groups=groups, levels=("window",))
    assert summary["window"]["metric"] == "balanced_accuracy"
    assert summary["window"]["chance"] == 0.5
    assert summary["window"]["privacy"] < 0.2


def test_two_column_sensitive_features_need_a_column():
    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    both = np.column_stack([subject % 2, subject])
    with pytest.raises(ValueError, match="sensitive_column"):
        PrivacyScorer(flat_lr())(pipe, X, y, sensitive_features=both, groups=groups)
    chosen = PrivacyScorer(flat_lr(), sensitive_column=1)(pipe, X, y, sensitive_features=both,
                                                          groups=groups)
    direct = PrivacyScorer(flat_lr())(pipe, X, y, sensitive_features=subject, groups=groups)
    assert chosen == pytest.approx(direct)


def test_one_dimensional_groups_are_recording_ids():
    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    recording_ids = groups[:, 0] * 10 + groups[:, 1]
    privacy = PrivacyScorer(flat_lr(), random_state=0)(
        pipe, X, y, sensitive_features=subject, groups=recording_ids)
    assert 0.0 <= privacy < 0.2


class GroupsSpyAttacker(ClassifierMixin, BaseEstimator):
    """Logistic regression on flattened windows whose ``fit`` takes (and records) groups."""

    calls = []

    def fit(self, X, y, groups=None):
        type(self).calls.append(None if groups is None else np.asarray(groups))
        self.model_ = flat_lr().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_attacker_gets_segment_rows_and_splits_stay_by_recording():
    X, y, subject, groups = make_data(n_windows=10)
    segment = np.arange(len(X)) // 5  # two runs of activity per recording
    rows = np.column_stack([groups, segment])
    pipe = flat_lr().fit(X, y)
    GroupsSpyAttacker.calls.clear()
    summary = PrivacyScorer(GroupsSpyAttacker(), random_state=0).evaluate(
        pipe, X, y, sensitive_features=subject, groups=rows)
    assert len(GroupsSpyAttacker.calls) == 2  # one fit per inner split
    for g in GroupsSpyAttacker.calls:
        # The full (subject, recording, segment) rows of the training side...
        assert g.shape == (len(X) // 2, 3)
        assert {tuple(r) for r in g} <= {tuple(r) for r in rows}
        # ...which holds one recording of every person (split by recording, not segment).
        assert len(np.unique(g[:, 0])) == 6 and len(np.unique(g[:, :2], axis=0)) == 6
        assert len(np.unique(g[:, 2])) == 12
    # The segment changes nothing but what the attacker's fit receives: same splits,
    # same pooling by recording.
    GroupsSpyAttacker.calls.clear()
    pairs = PrivacyScorer(GroupsSpyAttacker(), random_state=0).evaluate(
        pipe, X, y, sensitive_features=subject, groups=groups)
    assert [g.shape[1] for g in GroupsSpyAttacker.calls] == [2, 2]
    assert pairs == summary
    assert summary["recording"]["n_splits"] == 2
    # 1-D recording ids reach the attacker as they are.
    GroupsSpyAttacker.calls.clear()
    ids = groups[:, 0] * 10 + groups[:, 1]
    PrivacyScorer(GroupsSpyAttacker(), level="recording", random_state=0)(
        pipe, X, y, sensitive_features=subject, groups=ids)
    assert len(GroupsSpyAttacker.calls) == 2
    assert all(g.ndim == 1 for g in GroupsSpyAttacker.calls)
    with pytest.raises(ValueError, match=r"got shape \(120, 4\)"):
        PrivacyScorer(GroupsSpyAttacker())(pipe, X, y, sensitive_features=subject,
                                            groups=np.column_stack([rows, segment]))


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")
def test_errors_are_clear():
    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    with pytest.raises(ValueError, match="needs groups"):
        PrivacyScorer(flat_lr())(pipe, X, y, sensitive_features=subject)
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        PrivacyScorer(flat_lr())(pipe, X, y, groups=groups)
    with pytest.raises(ValueError, match="rows but X has"):
        PrivacyScorer(flat_lr())(pipe, X, y, sensitive_features=subject[:-1], groups=groups)
    with pytest.raises(ValueError, match="both sides"):  # an ungrouped inner split leaks
        PrivacyScorer(flat_lr(), cv=KFold(2, shuffle=True, random_state=0))(
            pipe, X, y, sensitive_features=subject, groups=groups)
    hard = make_pipeline(FunctionTransformer(_flatten),
                         VotingClassifier([("knn", KNeighborsClassifier())], voting="hard"))
    assert not hasattr(hard, "predict_proba")
    with pytest.raises(ValueError, match="predict_proba"):
        PrivacyScorer(hard, level="recording", pooling="log_proba")(
            pipe, X, y, sensitive_features=subject, groups=groups)
    # Without probabilities, "auto" pooling votes.
    assert PrivacyScorer(hard, level="recording")(
        pipe, X, y, sensitive_features=subject, groups=groups) < 0.2
    with pytest.raises(ValueError, match="mode"):
        PrivacyScorer(flat_lr(), mode="bogus")(pipe, X, y, sensitive_features=subject,
                                               groups=groups)


def test_warns_when_a_person_has_a_single_recording_in_the_fold():
    X, y, subject, groups = make_data(n_recordings=1)
    pipe = flat_lr().fit(X, y)
    with pytest.warns(UserWarning, match="never appear in its training side"):
        PrivacyScorer(flat_lr())(pipe, X, y, sensitive_features=subject, groups=subject)


def test_scorer_is_clonable_picklable_and_stateless():
    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    scorer = PrivacyScorer(flat_lr(), level="recording", random_state=0)
    assert "level='recording'" in repr(scorer)
    twin = pickle.loads(pickle.dumps(clone(scorer)))
    kw = dict(sensitive_features=subject, groups=groups)
    first = scorer(pipe, X, y, **kw)
    assert twin(pipe, X, y, **kw) == pytest.approx(first)
    assert scorer(pipe, X, y, **kw) == pytest.approx(first)
    assert not hasattr(scorer, "attacker_")


class FixedPredictions(ClassifierMixin, BaseEstimator):
    """A fitted classifier that answers ``predictions`` whatever it is shown."""

    def __init__(self, predictions=None):
        self.predictions = predictions

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.asarray(self.predictions)[: len(X)]


def test_utility_scorer_is_macro_f1_not_accuracy():
    # Imbalanced activities: accuracy flatters an app that misses the rare class.
    y = np.array([0] * 8 + [1] * 2)
    X = np.zeros((10, 4, 1))
    always_majority = FixedPredictions(np.zeros(10, dtype=int)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # F1 of class 0: 2 * 0.8 * 1 / 1.8 = 8/9; of class 1: 0. Accuracy would be 0.8.
        assert utility_scorer()(always_majority, X, y) == pytest.approx(4 / 9)
        # One rare window found, one false alarm: F1 0.875 and 0.5, accuracy 0.8.
        some = FixedPredictions([0] * 7 + [1] + [1, 0]).fit(X, y)
        assert utility_scorer()(some, X, y) == pytest.approx((0.875 + 0.5) / 2)
        # Scored through the protected pipeline, as in a search.
        pipe = Pipeline([("protector", SpyNoise(sigma=0.0)),
                         ("app", FixedPredictions(np.zeros(10, dtype=int)))]).fit(X, y)
        assert utility_scorer()(pipe, X, y) == pytest.approx(4 / 9)
    assert utility_scorer("accuracy")(always_majority, X, y) == pytest.approx(0.8)


# -- layering -------------------------------------------------------------------------
def test_metrics_import_nothing_from_the_layers_above():
    # metrics sit below model_selection, the evaluation jobs and the CLI: an import
    # from there (even a lazy one inside a function) would run upwards.
    import ast
    from pathlib import Path

    import sklearn_privacy.metrics

    above = ("model_selection", "evaluation", "cli")
    offenders = []
    for path in sorted(Path(sklearn_privacy.metrics.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
                if node.level == 0 and not (node.module or "").startswith("sklearn_privacy"):
                    continue
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names
                         if alias.name.startswith("sklearn_privacy")]
            else:
                continue
            parts = {part for name in names for part in name.split(".")}
            if parts & set(above):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# -- several attackers and the worst case ---------------------------------------------
def test_worst_case_is_the_strongest_attacker():
    from sklearn.dummy import DummyClassifier

    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    attackers = {"dummy": DummyClassifier(), "lr": flat_lr()}
    scorer = PrivacyScorer(attacker=attackers, random_state=0)
    summary = scorer.evaluate(pipe, X, y, sensitive_features=subject, groups=groups)
    for level in ("window", "recording"):
        result = summary[level]
        assert set(result["attackers"]) == {"dummy", "lr"}
        assert result["attacker"] == "lr"
        assert result["attackers"]["dummy"]["advantage"] == 0.0
        assert result["advantage"] == result["attackers"]["lr"]["advantage"] > 0.5
        assert result["privacy"] == pytest.approx(1 - result["advantage"])
    # The scorer's value is the privacy against the strongest attacker alone.
    alone = PrivacyScorer(attacker=flat_lr(), random_state=0)
    assert scorer(pipe, X, y, sensitive_features=subject, groups=groups) == pytest.approx(
        alone(pipe, X, y, sensitive_features=subject, groups=groups))
    # A list is named by class.
    listed = PrivacyScorer(attacker=[flat_lr(), flat_lr(), DummyClassifier()],
                           random_state=0)
    names = listed.evaluate(pipe, X, y, sensitive_features=subject, groups=groups,
                            levels=("window",))["window"]["attackers"]
    assert list(names) == ["Pipeline", "Pipeline_2", "DummyClassifier"]


def test_worst_pooling_is_the_rule_with_the_highest_advantage():
    X, y, subject, groups = make_data(identity=0.15, noise=1.0, n_windows=12)
    pipe = flat_lr().fit(X, y)
    kw = dict(sensitive_features=subject, groups=groups, levels=("recording",))
    per_rule = {
        rule: PrivacyScorer(flat_lr(), pooling=rule, random_state=0).evaluate(pipe, X, y, **kw)
        ["recording"]["advantage"]
        for rule in ("vote", "mean_proba", "log_proba")
    }
    worst = PrivacyScorer(flat_lr(), random_state=0).evaluate(pipe, X, y, **kw)["recording"]
    assert worst["advantage"] == pytest.approx(max(per_rule.values()))
    assert per_rule[worst["pooling"]] == pytest.approx(worst["advantage"])
    # Every rule's figures are in the tidy rows, with the score-based ones.
    rows = worst["rows"]
    assert {r["pooling"] for r in rows} == {"vote", "mean_proba", "log_proba"}
    assert {r["metric"] for r in rows} == {"accuracy", "advantage", "balanced_accuracy",
                                            "roc_auc_ovr", "tpr_at_1pct_fpr"}
    for r in rows:
        if r["metric"] == "advantage":
            assert r["value"] == pytest.approx(per_rule[r["pooling"]])
    # "auto" is the summed log-probabilities of an attacker with probabilities.
    auto = PrivacyScorer(flat_lr(), pooling="auto", random_state=0).evaluate(pipe, X, y, **kw)
    assert auto["recording"]["pooling"] == "log_proba"
    assert auto["recording"]["advantage"] == pytest.approx(per_rule["log_proba"])


def test_attacker_without_probabilities_is_pooled_by_vote():
    from sklearn.svm import LinearSVC

    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    svc = make_pipeline(FunctionTransformer(_flatten), LinearSVC())
    summary = PrivacyScorer(svc, random_state=0).evaluate(
        pipe, X, y, sensitive_features=subject, groups=groups)
    assert summary["recording"]["pooling"] == "vote"
    assert {r["pooling"] for r in summary["recording"]["rows"]} == {"vote"}
    assert "roc_auc_ovr" not in {r["metric"] for r in summary["window"]["rows"]}
    with pytest.raises(ValueError, match="pooling='mean_proba' needs"):
        PrivacyScorer(svc, pooling="mean_proba", random_state=0).evaluate(
            pipe, X, y, sensitive_features=subject, groups=groups)


def test_static_attackers_dict_reports_the_worst():
    from sklearn.dummy import DummyClassifier

    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    static = {"dummy": DummyClassifier().fit(X, subject), "lr": flat_lr().fit(X, subject)}
    scorer = PrivacyScorer(mode="static", static_attacker=static)
    result = scorer.evaluate(pipe, X, y, sensitive_features=subject, groups=groups,
                             levels=("window",))["window"]
    assert result["attacker"] == "lr" and result["n_splits"] == 1
    assert result["attackers"]["dummy"]["advantage"] == 0.0


def test_bad_attacker_collections_are_refused():
    X, y, subject, groups = make_data()
    pipe = flat_lr().fit(X, y)
    kw = dict(sensitive_features=subject, groups=groups)
    with pytest.raises(ValueError, match="empty"):
        PrivacyScorer(attacker={}).evaluate(pipe, X, y, **kw)
    with pytest.raises(TypeError, match="fit and predict"):
        PrivacyScorer(attacker={"x": FunctionTransformer()}).evaluate(pipe, X, y, **kw)


def test_two_attackers_in_a_routed_grid_search():
    from sklearn.dummy import DummyClassifier

    X, y, subject, groups = make_data()
    two = PrivacyScorer(attacker={"dummy": DummyClassifier(), "lr": flat_lr()},
                        random_state=0)
    one = PrivacyScorer(attacker=flat_lr(), random_state=0)
    assert "dummy" in repr(two) and repr(one).startswith("PrivacyScorer(attacker=")
    cloned = clone(two)
    assert set(cloned.attacker) == {"dummy", "lr"}
    assert cloned.attacker["lr"] is not two.attacker["lr"]
    # A deterministic protector, so that both scorers see the same protected data.
    pipe = Pipeline([("protector", FunctionTransformer(_scale_identity)),
                     ("flatten", FunctionTransformer(_flatten)),
                     ("app", LogisticRegression(max_iter=500))])
    grid = {"protector__kw_args": [{"keep": 1.0}, {"keep": 0.0}]}
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, grid, scoring={"two": two, "one": one}, refit=False,
                              cv=SubjectDisjointSplit(n_splits=2))
        search.fit(X, y, sensitive_features=subject, groups=groups)
    # The dummy never beats the logistic regression: the worst case is the latter.
    np.testing.assert_allclose(search.cv_results_["mean_test_two"],
                               search.cv_results_["mean_test_one"])
    privacy = search.cv_results_["mean_test_two"]
    assert privacy[1] > privacy[0] + 0.2
