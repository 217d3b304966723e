"""Score-based attack figures, imputation gain, mean-probability pooling, attack_metrics."""

import numpy as np
import pytest

from sklearn_privacy.metrics import (
    attack_metrics,
    attack_roc_auc,
    attribute_inference_gain,
    pool_by_recording,
    tpr_at_fpr,
)


# -- pooling ------------------------------------------------------------------------
def test_mean_proba_pooling_differs_from_summed_log_probabilities():
    # Two mildly sure windows for "a" against one near-certain window for "b".
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.001, 0.999]])
    classes = np.array(["a", "b"])
    _, mean, _ = pool_by_recording(["a"] * 3, proba, [5, 5, 5], method="mean_proba",
                                   classes=classes)
    _, logp, _ = pool_by_recording(["a"] * 3, np.log(proba), [5, 5, 5], classes=classes)
    assert mean.tolist() == ["a"]  # means 0.600 vs 0.400
    assert logp.tolist() == ["b"]  # log sums -7.12 vs -4.61
    with pytest.raises(ValueError, match="probabilities in"):
        pool_by_recording(["a"] * 3, np.log(proba), [5, 5, 5], method="mean_proba")


def test_mean_proba_pools_each_recording_separately():
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    yt, yp, recs = pool_by_recording([0, 0, 1, 1], proba, [0, 0, 1, 1],
                                     method="mean_proba")
    # recording 0: mean (0.4, 0.6) -> 1; recording 1: mean (0.4, 0.6) -> 1
    assert yt.tolist() == [0, 1] and yp.tolist() == [1, 1] and recs.tolist() == [0, 1]


# -- ROC AUC ------------------------------------------------------------------------
def test_roc_auc_hand_example_and_transform_invariance():
    y = [0, 0, 1, 1]
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    # Column 0: positives 0.9, 0.4 vs negatives 0.6, 0.2 -> 3 of 4 pairs ordered.
    assert attack_roc_auc(y, proba) == pytest.approx(0.75)
    assert attack_roc_auc(y, np.log(proba)) == pytest.approx(0.75)
    assert attack_roc_auc(y, proba[:, 1]) == pytest.approx(0.75)  # binary 1-D


def test_roc_auc_aligns_columns_and_ignores_absent_classes():
    y = np.array(["b", "b", "c", "c"])
    # Columns for a, b, c, d: only b and c are scored.
    scores = np.array([
        [0.9, 0.5, 0.1, 0.0],
        [0.9, 0.3, 0.2, 0.0],
        [0.0, 0.4, 0.6, 1.0],
        [0.0, 0.1, 0.7, 1.0],
    ])
    classes = np.array(["a", "b", "c", "d"])
    # b: positives 0.5, 0.3 vs 0.4, 0.1 -> 3/4; c: 0.6, 0.7 vs 0.1, 0.2 -> 1.
    assert attack_roc_auc(y, scores, classes=classes) == pytest.approx(0.875)
    # Columns permuted with their labels: same figure.
    perm = [3, 1, 0, 2]
    assert attack_roc_auc(y, scores[:, perm], classes=classes[perm]) == pytest.approx(0.875)
    # A true class without a column counts as an uninformative 0.5.
    assert attack_roc_auc(y, scores[:, :2], classes=classes[:2]) == pytest.approx(
        (0.75 + 0.5) / 2)


def test_roc_auc_ties_count_half_and_validation():
    assert attack_roc_auc([0, 1, 0, 1], np.full((4, 2), 0.5)) == 0.5
    with pytest.raises(ValueError, match="at least two classes"):
        attack_roc_auc([1, 1], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="columns"):
        attack_roc_auc([0, 1], [[0.5, 0.5], [0.5, 0.5]], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        attack_roc_auc([0, 1], [[np.nan, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="1-D scores"):
        attack_roc_auc([0, 1, 2], [0.1, 0.2, 0.3])


# -- TPR at low FPR -----------------------------------------------------------------
def test_tpr_at_fpr_pooled_hand_example():
    y = [0, 0, 1, 1]
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    # Positive pairs: 0.9, 0.4, 0.7, 0.8; negative pairs: 0.1, 0.6, 0.3, 0.2.
    assert tpr_at_fpr(y, scores, fpr=0.0) == 0.75  # above 0.6: 0.9, 0.7, 0.8
    assert tpr_at_fpr(y, scores, fpr=0.24) == 0.75  # floor(0.96) = 0 false positives
    assert tpr_at_fpr(y, scores, fpr=0.25) == 1.0  # one allowed: above 0.3
    assert tpr_at_fpr(y, scores, fpr=1.0) == 1.0


def test_tpr_at_fpr_macro_and_ties():
    y = [0, 0, 1, 1]
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    # Class 0: positives 0.9, 0.4 vs 0.3, 0.2 -> 1; class 1: 0.7, 0.8 vs 0.1, 0.6 -> 1.
    assert tpr_at_fpr(y, scores, fpr=0.0, average="macro") == 1.0
    # A tie between a positive and the highest negative is not accepted at FPR 0.
    tied = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert tpr_at_fpr(y, tied, fpr=0.0) == 0.0
    # 200 negative pairs at 1 %: two false positives allowed.
    rng = np.random.RandomState(0)
    n = 100
    y = np.tile([0, 1], n)
    s = rng.uniform(size=(2 * n, 2))
    pos = s[np.arange(2 * n), y]
    neg = s[np.arange(2 * n), 1 - y]
    third = np.sort(neg)[::-1][2]
    assert tpr_at_fpr(y, s) == pytest.approx(np.mean(pos > third))


def test_tpr_at_fpr_uninformative_scores_stay_near_fpr():
    rng = np.random.RandomState(1)
    y = rng.randint(10, size=2000)
    scores = rng.dirichlet(np.ones(10), size=2000)
    assert tpr_at_fpr(y, scores, fpr=0.05) == pytest.approx(0.05, abs=0.02)
    assert tpr_at_fpr(y, scores, fpr=0.05, average="macro") == pytest.approx(0.05, abs=0.03)
    with pytest.raises(ValueError, match="average"):
        tpr_at_fpr(y, scores, average="micro")


# -- imputation gain ----------------------------------------------------------------
def test_attribute_gain_classification_uses_the_training_majority():
    y_true = [0, 0, 0, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 2, 0]  # 5 of 6
    # Training majority is 2 -> baseline 2/6 on the test data.
    r = attribute_inference_gain(y_true, y_pred, y_train=[2, 2, 2, 0])
    assert r["metric"] == "accuracy" and r["kind"] == "classification"
    assert r["baseline"] == pytest.approx(2 / 6)
    assert r["gain"] == pytest.approx(5 / 6 - 2 / 6)
    assert r["relative_gain"] == pytest.approx((3 / 6) / (4 / 6))
    # Without y_train: the majority of y_true (class 0, 3/6).
    assert attribute_inference_gain(y_true, y_pred)["baseline"] == pytest.approx(0.5)


def test_attribute_gain_balanced_accuracy_baseline_is_one_over_classes():
    r = attribute_inference_gain([0, 0, 0, 1], [0, 0, 0, 0], y_train=[0, 0, 1])
    assert r["metric"] == "balanced_accuracy"
    assert r["score"] == 0.5 and r["baseline"] == 0.5 and r["gain"] == 0.0


def test_attribute_gain_regression_against_the_training_mean():
    y_true = np.array([20.5, 30.0, 40.0, 50.0])
    y_pred = np.array([25.0, 30.0, 35.0, 50.0])
    r = attribute_inference_gain(y_true, y_pred, y_train=[30.0, 40.0])
    assert r["kind"] == "regression" and r["metric"] == "mae"
    assert r["score"] == pytest.approx((4.5 + 0 + 5 + 0) / 4)
    assert r["baseline"] == pytest.approx((14.5 + 5 + 5 + 15) / 4)
    assert r["gain"] == pytest.approx(r["baseline"] - r["score"])
    assert r["relative_gain"] == pytest.approx(1 - 9.5 / 39.5)
    # Worse than the mean: negative gain.
    bad = attribute_inference_gain(y_true, y_true[::-1], y_train=[35.0])
    assert bad["gain"] < 0 and bad["relative_gain"] < 0
    # Integer ages read as classes unless told.
    assert attribute_inference_gain([20, 30], [20, 31], kind="regression")["score"] == 0.5
    with pytest.raises(ValueError, match="same|samples"):
        attribute_inference_gain([1.5, 2.5], [1.5])


# -- attack_metrics -----------------------------------------------------------------
def _table(rows):
    return {(r["level"], r["pooling"], r["metric"]): (r["value"], r["chance"]) for r in rows}


def test_attack_metrics_window_figures_multiclass():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([
        [0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1],
        [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3],
    ])
    rows = attack_metrics(y, proba=proba)
    assert {r["level"] for r in rows} == {"window"}  # no recording given
    t = _table(rows)
    assert t[("window", None, "accuracy")] == (pytest.approx(4 / 6), pytest.approx(1 / 3))
    assert t[("window", None, "advantage")][0] == pytest.approx((4 / 6 - 1 / 3) / (2 / 3))
    assert t[("window", None, "balanced_accuracy")] == (pytest.approx(4 / 6),
                                                         pytest.approx(1 / 3))
    assert t[("window", None, "roc_auc_ovr")] == (
        pytest.approx(attack_roc_auc(y, proba)), 0.5)
    assert t[("window", None, "tpr_at_1pct_fpr")] == (
        pytest.approx(tpr_at_fpr(y, proba)), 0.01)
    # Same figures from log-probabilities, and 5 % gives another name.
    rows_log = attack_metrics(y, log_proba=np.log(proba), fpr=0.05)
    assert _table(rows_log)[("window", None, "tpr_at_5pct_fpr")][1] == 0.05


def test_attack_metrics_worst_pooling_is_the_strongest_rule():
    # Recording r0 (class 0): two windows mildly for 0, one near-certain for 1.
    # Recording r1 (class 1): windows clearly for 1.
    # Recording r2 (class 0): windows 1, 1 mildly wrong, one very sure right.
    proba = np.array([
        [0.9, 0.1], [0.9, 0.1], [0.001, 0.999],
        [0.2, 0.8], [0.3, 0.7], [0.1, 0.9],
        [0.4, 0.6], [0.4, 0.6], [0.999, 0.001],
    ])
    y = np.repeat([0, 1, 0], 3)
    rec = np.repeat([0, 1, 2], 3)
    rows = attack_metrics(y, proba=proba, recording=rec)
    t = _table(rows)
    # vote: r0 -> 0, r1 -> 1, r2 -> 1: 2 of 3 (balanced accuracy 0.75).
    # mean_proba: r0 -> 0 (0.600), r1 -> 1, r2 -> 0 (0.600): all right.
    # log_proba: r0 -> 1, r1 -> 1, r2 -> 0: 2 of 3 (balanced accuracy 0.75).
    assert t[("recording", "vote", "balanced_accuracy")][0] == pytest.approx(0.75)
    assert t[("recording", "mean_proba", "advantage")][0] == 1.0
    assert t[("recording", "log_proba", "balanced_accuracy")][0] == pytest.approx(0.75)
    worst = [r for r in rows if r["pooling"] == "worst"]
    assert {r["selected_pooling"] for r in worst} == {"mean_proba"}
    assert _table(worst)[("recording", "worst", "advantage")][0] == 1.0
    # Vote shares are the recording-level scores of the vote rule.
    assert t[("recording", "vote", "roc_auc_ovr")][0] == pytest.approx(
        attack_roc_auc([0, 1, 0], [[2 / 3, 1 / 3], [0, 1], [1 / 3, 2 / 3]]))


def test_attack_metrics_without_probabilities_only_votes():
    y = np.repeat([0, 1, 2, 0, 1, 2], 2)
    y_pred = np.array([0, 0, 1, 2, 2, 2, 0, 1, 1, 1, 2, 2])
    rec = np.repeat(np.arange(6), 2)
    rows = attack_metrics(y, y_pred, recording=rec)
    assert {r["pooling"] for r in rows} == {None, "vote", "worst"}
    assert {r["metric"] for r in rows} == {"accuracy", "advantage", "balanced_accuracy"}
    with pytest.raises(ValueError, match="need probabilities"):
        attack_metrics(y, y_pred, recording=rec, poolings=("log_proba",))


def test_attack_metrics_validation():
    with pytest.raises(ValueError, match="needs y_pred"):
        attack_metrics([0, 1])
    with pytest.raises(ValueError, match="not both"):
        attack_metrics([0, 1], proba=[[1, 0], [0, 1]], log_proba=[[0, -1], [-1, 0]])
    with pytest.raises(ValueError, match="recording="):
        attack_metrics([0, 1], [0, 1], levels=("recording",))
    with pytest.raises(ValueError, match="poolings"):
        attack_metrics([0, 1], [0, 1], recording=[0, 1], poolings=("median",))
    with pytest.raises(ValueError, match="classes"):
        attack_metrics([0, 1], proba=[[1, 0], [0, 1]], classes=[0, 1, 2])


def test_recording_scores_of_summed_log_probabilities_compare_across_lengths():
    # Recording 0 (class 0): one window; recording 1 (class 1): three windows.
    proba = np.array([[0.6, 0.4], [0.3, 0.7], [0.3, 0.7], [0.3, 0.7]])
    rows = attack_metrics([0, 1, 1, 1], proba=proba, recording=[0, 1, 1, 1],
                          poolings=("log_proba",), fpr=0.0)
    t = _table(rows)
    # Raw sums: positives -0.51 and -1.07 against negatives -0.92 and -3.61 would accept
    # only one positive at FPR 0. Posteriors: recording 1 is (0.073, 0.927), so both
    # positives (0.6 and 0.927) beat both negatives (0.4 and 0.073).
    assert t[("recording", "log_proba", "tpr_at_0pct_fpr")][0] == 1.0
    assert t[("recording", "log_proba", "roc_auc_ovr")][0] == 1.0


def test_recording_log_odds_do_not_saturate():
    # 400 windows each: posteriors round to exactly 1 for both recordings, yet the
    # wrong recording (class 1 named 0 at 0.7 per window) is less sure than the right
    # one (0.9 per window), and the verification ranks them so.
    proba = np.vstack([np.tile([0.9, 0.1], (400, 1)), np.tile([0.7, 0.3], (400, 1)),
                       np.tile([0.1, 0.9], (400, 1))])
    y = np.repeat([0, 1, 1], 400)
    rec = np.repeat([0, 1, 2], 400)
    rows = attack_metrics(y, proba=proba, recording=rec, poolings=("log_proba",), fpr=0.0)
    # Positive pairs: r0 for 0 (+879), r1 for 1 (-339), r2 for 1 (+879); negatives:
    # r0 for 1 (-879), r1 for 0 (+339), r2 for 0 (-879). Above +339: two of three.
    tpr = _table(rows)[("recording", "log_proba", "tpr_at_0pct_fpr")][0]
    assert tpr == pytest.approx(2 / 3)
