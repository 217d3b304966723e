"""Advantage over chance, recording pooling, re-identification rank and distortion."""

import numpy as np
import pytest

from sklearn_privacy.metrics import (
    attack_score,
    attacker_advantage,
    chance_level,
    mean_reidentification_rank,
    mse,
    pool_by_recording,
    reidentification_rank,
    snr_db,
)


# -- advantage --------------------------------------------------------------------
def test_advantage_formula_multiclass():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 0, 0]  # accuracy 4/6, majority-class chance 2/6
    assert attacker_advantage(y_true, y_pred) == pytest.approx((4 / 6 - 2 / 6) / (1 - 2 / 6))
    assert attacker_advantage(y_true, y_pred, chance=0.5) == pytest.approx((4 / 6 - 0.5) / 0.5)
    result = attack_score(y_true, y_pred)
    assert result["metric"] == "accuracy"
    assert result["score"] == pytest.approx(4 / 6)
    assert result["chance"] == pytest.approx(1 / 3)


def test_majority_chance_and_clipping():
    y_true = [0] * 6 + [1] * 2 + [2] * 2
    # Always guessing the majority class is no advantage at all.
    assert attacker_advantage(y_true, [0] * 10) == 0.0
    assert chance_level(y_true) == pytest.approx(0.6)
    # Below chance with more than two classes is clipped to 0.
    assert attacker_advantage(y_true, [1] * 10) == 0.0
    assert attacker_advantage(y_true, y_true) == 1.0


def test_binary_uses_balanced_accuracy_and_counts_flips_as_leakage():
    y_true = np.array([0] * 8 + [1] * 2)
    # Constant guess: balanced accuracy 0.5 = chance, no advantage (accuracy would be 0.8).
    assert attack_score(y_true, np.zeros(10))["metric"] == "balanced_accuracy"
    assert attacker_advantage(y_true, np.zeros(10)) == 0.0
    assert chance_level(y_true) == 0.5
    # Systematically flipped: as informative as always right.
    assert attacker_advantage(y_true, 1 - y_true) == 1.0
    # 1 of 2 positives and 6 of 8 negatives right: balanced 0.625 -> advantage 0.25;
    # the flip (0.375) gives the same |advantage|.
    y_pred = np.array([0] * 6 + [1] * 2 + [1, 0])
    assert attacker_advantage(y_true, y_pred) == pytest.approx(0.25)
    assert attacker_advantage(y_true, 1 - y_pred) == pytest.approx(0.25)
    # No flip for an attacker that answers among more labels than the two present
    # (e.g. identity in a fold holding two people): wrong is then just wrong.
    assert attacker_advantage([0, 0, 1, 1], [1, 1, 2, 2]) == 0.0
    # Plain accuracy can be asked for; chance is then the majority rate.
    assert attack_score(y_true, y_pred, metric="accuracy")["chance"] == pytest.approx(0.8)


def test_chance_level_counts_the_classes_given_in_labels():
    y_true = [0, 0, 0, 1]  # two classes present, majority rate 3/4
    # Balanced accuracy: chance is 1 / (number of classes of the attribute), which
    # labels may name beyond those present, without counting a class twice.
    assert chance_level(y_true, metric="balanced_accuracy") == 0.5
    assert chance_level(y_true, metric="balanced_accuracy", labels=[0, 1, 2, 3]) == 0.25
    assert chance_level(y_true, metric="balanced_accuracy", labels=[1, 2]) == pytest.approx(1 / 3)
    assert chance_level(y_true, metric="balanced_accuracy", labels=[0, 1]) == 0.5
    # Accuracy: the majority-class rate of y_true, whatever the labels.
    assert chance_level(y_true, metric="accuracy", labels=[0, 1, 2, 3]) == 0.75
    # "auto" resolves on the number of classes of the attribute: three or more is
    # accuracy (majority rate), two is balanced accuracy.
    assert chance_level(y_true, labels=[0, 1, 2]) == 0.75
    assert chance_level(y_true) == 0.5
    assert chance_level(["a", "a", "b"], metric="balanced_accuracy",
                        labels=["a", "b", "c", "d", "e"]) == pytest.approx(0.2)


def test_advantage_string_labels_and_validation():
    assert attacker_advantage(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    with pytest.raises(ValueError, match="at least two classes"):
        attacker_advantage([1, 1, 1], [1, 1, 0])
    with pytest.raises(ValueError, match="samples"):
        attacker_advantage([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="chance"):
        attacker_advantage([0, 1], [0, 1], chance=1.0)
    with pytest.raises(ValueError, match="metric"):
        attacker_advantage([0, 1], [0, 1], metric="f1")


# -- pooling ------------------------------------------------------------------------
def test_pool_by_recording_log_proba_hand_example():
    # Recording 5 (person "b"): two windows lean weakly to "a", one strongly to "b".
    # Recording 3 (person "a"): both windows lean to "a".
    y_true = np.array(["b", "b", "a", "b", "a"])
    recording = np.array([5, 5, 3, 5, 3])
    proba = np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1], [0.01, 0.99], [0.7, 0.3]])
    classes = np.array(["a", "b"])
    yt, yp, recs = pool_by_recording(y_true, np.log(proba), recording, classes=classes)
    np.testing.assert_array_equal(recs, [3, 5])
    np.testing.assert_array_equal(yt, ["a", "b"])
    np.testing.assert_array_equal(yp, ["a", "b"])  # 0.6*0.6*0.01 < 0.4*0.4*0.99
    # Probabilities give the same decision; majority vote does not.
    _, yp_proba, _ = pool_by_recording(y_true, proba, recording, method="proba", classes=classes)
    np.testing.assert_array_equal(yp_proba, ["a", "b"])
    _, yp_vote, _ = pool_by_recording(y_true, proba, recording, method="vote", classes=classes)
    np.testing.assert_array_equal(yp_vote, ["a", "a"])
    # Column indices when no classes are given.
    _, yp_idx, _ = pool_by_recording(y_true, np.log(proba), recording)
    np.testing.assert_array_equal(yp_idx, [0, 1])


def test_pool_by_recording_sums_log_probabilities_not_probabilities():
    # Two windows lean to class 0 (0.9), one all but rules it out (0.001). Summed
    # probabilities pick class 0 (1.801 > 1.199); summed log-probabilities (the
    # product of the likelihoods: 0.9 * 0.9 * 0.001 < 0.1 * 0.1 * 0.999) pick class 1.
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.001, 0.999]])
    assert np.argmax(proba.sum(axis=0)) == 0
    for outputs, method in ((np.log(proba), "log_proba"), (proba, "proba")):
        _, yp, _ = pool_by_recording([1, 1, 1], outputs, [4, 4, 4], method=method,
                                     classes=["walk", "run"])
        np.testing.assert_array_equal(yp, ["run"])
    _, yp, _ = pool_by_recording([1, 1, 1], proba, [4, 4, 4], method="vote")
    np.testing.assert_array_equal(yp, [0])


def test_pool_by_recording_votes_and_pairs():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 2, 1, 2]
    recording = np.array([[1, 0], [1, 0], [1, 0], [2, 0], [2, 0], [2, 1]])
    yt, yp, recs = pool_by_recording(y_true, y_pred, recording, method="vote")
    np.testing.assert_array_equal(recs, [[1, 0], [2, 0], [2, 1]])
    np.testing.assert_array_equal(yt, [0, 1, 2])
    # Recording (2, 0) ties between 1 and 2: the first class wins.
    np.testing.assert_array_equal(yp, [1, 1, 2])
    # (subject, recording, segment) rows pool per recording: the segment is ignored.
    rows = np.column_stack([recording, [4, 5, 5, 6, 7, 8]])
    yt3, yp3, recs3 = pool_by_recording(y_true, y_pred, rows, method="vote")
    np.testing.assert_array_equal(recs3, recs)
    np.testing.assert_array_equal(yt3, yt)
    np.testing.assert_array_equal(yp3, yp)


def test_pool_by_recording_validation():
    with pytest.raises(ValueError, match="constant within a recording"):
        pool_by_recording([0, 1], np.log([[0.5, 0.5], [0.5, 0.5]]), [7, 7])
    with pytest.raises(ValueError, match="log-probabilities"):
        pool_by_recording([0, 1], [[0.5, 0.5], [0.5, 0.5]], [1, 2])
    with pytest.raises(ValueError, match="probabilities in"):
        pool_by_recording([0, 1], np.log([[0.5, 0.5], [0.5, 0.5]]), [1, 2], method="proba")
    with pytest.raises(ValueError, match="rows"):
        pool_by_recording([0, 1], np.zeros((3, 2)) - 1, [1, 2])
    with pytest.raises(ValueError, match="columns"):
        pool_by_recording([0, 1], np.zeros((2, 2)) - 1, [1, 2], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="method"):
        pool_by_recording([0, 1], np.zeros((2, 2)) - 1, [1, 2], method="mean")
    with pytest.raises(ValueError, match="recording has 3 rows but there are 2 samples"):
        pool_by_recording([0, 1], np.zeros((2, 2)) - 1, [1, 2, 3])
    with pytest.raises(ValueError, match=r"recording must be .*got shape \(2, 4\)"):
        pool_by_recording([0, 1], np.zeros((2, 2)) - 1, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        pool_by_recording([0, 1], np.zeros((2, 2)) - 1, [1.0, np.nan])


def test_pool_handles_zero_probabilities():
    with np.errstate(divide="ignore"):
        log_proba = np.log(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    _, yp, _ = pool_by_recording([1, 1, 1], log_proba, [0, 0, 0])
    np.testing.assert_array_equal(yp, [1])


# -- re-identification ----------------------------------------------------------------
def _people_windows(rng, n_people=5, per_person=4, length=16):
    subject = np.repeat(np.arange(n_people), per_person)
    t = np.linspace(0, 2 * np.pi, length)
    X = np.sin((1 + subject[:, None]) * t)[:, :, None]
    X = X + 0.05 * rng.normal(size=(len(subject), length, 1))
    return X, subject


# tslearn compiles its DTW kernels (numba) on the first call of a process, which costs
# tens of seconds on a loaded machine: every DTW call here uses the same Sakoe-Chiba
# variant so that the compilation happens once.
@pytest.mark.parametrize("metric", ["dtw", "euclidean"])
def test_reid_rank_is_one_when_queries_are_references(metric):
    X, subject = _people_windows(np.random.RandomState(0))
    ranks = reidentification_rank(X, subject, X, subject, metric=metric,
                                  sakoe_chiba_radius=2, n_jobs=1)
    np.testing.assert_array_equal(ranks, np.ones(len(X)))


def test_reid_rank_orders_people_by_distance():
    # People are constant windows at levels 0..4; a query of person 0 at level 3.9 is
    # closest to person 4, then 3, 2, 1 and only then 0: rank 5 (the worst).
    levels = np.arange(5.0)
    X_ref = np.repeat(levels, 8).reshape(5, 8, 1)
    query = np.full((1, 8, 1), 3.9)
    for metric in ("dtw", "euclidean"):
        kw = dict(metric=metric, sakoe_chiba_radius=2)
        assert reidentification_rank(query, [0], X_ref, levels.astype(int), **kw).tolist() == [5.0]
        assert reidentification_rank(query, [3], X_ref, levels.astype(int), **kw).tolist() == [2.0]
    # Equidistant from everyone: the mid-rank (n + 1) / 2.
    centre = np.full((1, 8, 1), 2.0)
    ref = np.concatenate([np.full((1, 8, 1), 1.0), np.full((1, 8, 1), 3.0)])
    assert reidentification_rank(centre, [0], ref, [0, 1], metric="euclidean").tolist() == [1.5]


def test_reid_rank_of_uninformative_queries_is_near_the_middle():
    rng = np.random.RandomState(0)
    X_ref, subject = _people_windows(rng, n_people=6)
    queries = rng.normal(size=(60, 16, 1))  # noise carries no identity
    q_subject = np.tile(np.arange(6), 10)
    mean_rank = mean_reidentification_rank(queries, q_subject, X_ref, subject,
                                           sakoe_chiba_radius=3)
    assert 2.5 < mean_rank < 4.5  # (6 + 1) / 2 = 3.5 expected


def test_reid_rank_per_recording_and_batches():
    rng = np.random.RandomState(1)
    X_ref, subject = _people_windows(rng)
    X_q, q_subject = _people_windows(rng)
    recording = q_subject * 10  # one recording per person
    kw = dict(metric="euclidean")
    per_window = reidentification_rank(X_q, q_subject, X_ref, subject, batch_size=3, **kw)
    np.testing.assert_array_equal(
        per_window, reidentification_rank(X_q, q_subject, X_ref, subject, **kw))
    per_recording = reidentification_rank(X_q, q_subject, X_ref, subject,
                                          query_recording=recording, **kw)
    assert per_recording.shape == (5,)
    np.testing.assert_array_equal(per_recording, np.ones(5))


def test_reid_validation():
    X, subject = _people_windows(np.random.RandomState(0))
    with pytest.raises(ValueError, match="missing"):
        reidentification_rank(X, subject + 100, X, subject)
    with pytest.raises(ValueError, match="channels"):
        reidentification_rank(np.repeat(X, 2, axis=2), subject, X, subject)
    with pytest.raises(ValueError, match="query_subject"):
        reidentification_rank(X, subject[:-1], X, subject)
    with pytest.raises(ValueError, match="metric"):
        reidentification_rank(X, subject, X, subject, metric="cosine")
    with pytest.raises(ValueError, match="equal length"):
        reidentification_rank(X[:, :8], subject, X, subject, metric="euclidean")
    with pytest.raises(ValueError, match="constant within a recording"):
        reidentification_rank(X, subject, X, subject, query_recording=np.zeros(len(X)),
                              metric="euclidean")


# -- distortion ---------------------------------------------------------------------
def test_mse_and_snr_hand_values():
    X = np.ones((3, 4, 2))
    Xp = X.copy()
    Xp[0] *= 1.1  # noise power 1 % of the signal: 20 dB, MSE 0.01
    Xp[1] += 1.0  # noise as strong as the signal: 0 dB, MSE 1
    np.testing.assert_allclose(mse(X, Xp, average=False), [0.01, 1.0, 0.0], atol=1e-12)
    assert mse(X, Xp) == pytest.approx(1.01 / 3)
    snr = snr_db(X, Xp, average=False)
    np.testing.assert_allclose(snr[:2], [20.0, 0.0], atol=1e-9)
    assert snr[2] == np.inf  # unchanged window
    assert snr_db(X[:2], Xp[:2]) == pytest.approx(10.0)
    assert snr_db(np.zeros((1, 4)), np.ones((1, 4))) == -np.inf


def test_distortion_validation():
    with pytest.raises(ValueError, match="same shape"):
        mse(np.zeros((2, 4, 1)), np.zeros((2, 5, 1)))
    with pytest.raises(ValueError, match="one sample per row"):
        snr_db(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        mse(np.full((1, 2), np.nan), np.zeros((1, 2)))
