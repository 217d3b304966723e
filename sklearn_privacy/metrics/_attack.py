"""Score-based attack figures and all figures of one attack at once.

Accuracy and advantage judge an attacker's *decisions*. The figures here judge its
*scores* (probabilities or log-probabilities), which an attacker can threshold as it
likes: the one-vs-rest ROC AUC (how well the scores rank the true class above the
others, over all thresholds) and the true-positive rate at a low false-positive rate
(how many people are re-identified when false accusations must stay rare, the figure
of the membership-inference literature). :func:`attribute_inference_gain` compares an
attribute attacker with imputation from the training data alone, and
:func:`attack_metrics` turns an attacker's outputs into every figure, per level and
pooling rule, as tidy rows.
"""

import numbers

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.multiclass import type_of_target

from ._advantage import (
    _as_1d_labels,
    _pool,
    _resolve_metric,
    attack_score,
)

__all__ = ["attack_metrics", "attack_roc_auc", "attribute_inference_gain", "tpr_at_fpr"]


def _aligned_scores(y_true, scores, classes):
    """Codes of ``y_true`` among its present classes and the matching score columns.

    Returns ``(present, codes, S)``: the sorted classes present in ``y_true``, the code
    of each sample among them, and ``S[:, j]`` the score of ``present[j]`` (``-inf``
    where ``classes`` has no column for that class: the attacker never names it).
    """
    y_true = _as_1d_labels(y_true, "y_true")
    scores = np.asarray(scores, dtype=np.float64)
    present, codes = np.unique(y_true, return_inverse=True)
    if len(present) < 2:
        raise ValueError(
            "Score-based attack figures need at least two classes in y_true; got only "
            f"{present.tolist()}."
        )
    if scores.ndim == 1:
        if classes is None:
            if len(present) != 2:
                raise ValueError(
                    "1-D scores are the probability of the second of two classes; "
                    f"y_true has {len(present)} classes: pass 2-D scores."
                )
            classes = present
        if len(classes) != 2:
            raise ValueError("1-D scores need exactly two classes.")
        if np.any((scores < 0) | (scores > 1)):
            raise ValueError(
                "1-D scores must be probabilities of classes[1] in [0, 1]; pass 2-D "
                "per-class scores otherwise."
            )
        scores = np.column_stack([1.0 - scores, scores])
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"scores must have shape ({y_true.shape[0]}, n_classes); got {scores.shape}."
        )
    if np.any(np.isnan(scores)) or np.any(scores == np.inf):
        raise ValueError("scores contain NaN or +infinity.")
    classes = np.arange(scores.shape[1]) if classes is None else np.asarray(classes)
    if classes.shape != (scores.shape[1],):
        raise ValueError(
            f"classes has shape {classes.shape} but scores have {scores.shape[1]} columns."
        )
    S = np.full((len(y_true), len(present)), -np.inf)
    for j, c in enumerate(present):
        col = np.flatnonzero(classes == c)
        if col.size:
            S[:, j] = scores[:, col[0]]
    return present, codes, S


def _auc(pos, neg):
    """Probability that a positive outranks a negative (ties count half)."""
    ranks = rankdata(np.concatenate([pos, neg]))
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _tpr_at(pos, neg, fpr):
    """Highest TPR of a rule ``score >= t`` whose FPR is at most ``fpr``."""
    allowed = int(np.floor(fpr * len(neg) + 1e-9))  # false positives allowed
    if allowed >= len(neg):
        return 1.0
    # Accept what scores strictly above the (allowed + 1)-th highest negative.
    limit = np.sort(neg)[::-1][allowed]
    return float(np.mean(pos > limit))


@validate_params(
    {
        "y_true": ["array-like"],
        "scores": ["array-like"],
        "classes": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def attack_roc_auc(y_true, scores, *, classes=None):
    """One-vs-rest ROC AUC of an attacker's class scores, macro over the true classes.

    For each class ``c`` present in ``y_true``, the AUC of ``scores[:, c]`` at telling
    the samples of ``c`` from the others: the probability that a random sample of
    ``c`` gets a higher score for ``c`` than a random other sample (ties count half).
    The result is the mean over the classes present. 0.5 is chance, 1 a perfect
    ranking; unlike accuracy it credits an attacker whose scores carry information
    even when its argmax is wrong.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True sensitive labels; at least two classes.
    scores : array-like of shape (n_samples, n_classes) or (n_samples,)
        Per-class scores where higher means more likely: probabilities,
        log-probabilities or decision values (the AUC of a column does not change under
        an increasing transform). 1-D: the probability of ``classes[1]`` for two
        classes (the other column is ``1 - scores``).
    classes : array-like of shape (n_classes,), default=None
        Class of each column (an estimator's ``classes_``); by default the column
        index (1-D scores: the sorted classes of ``y_true``). Columns of classes absent
        from ``y_true`` are ignored; a class of ``y_true`` without a column gets a
        constant score (AUC 0.5 for it).

    Returns
    -------
    auc : float
        In [0, 1].

    Examples
    --------
    >>> from sklearn_privacy.metrics import attack_roc_auc
    >>> attack_roc_auc([0, 0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    0.75
    """
    _, codes, S = _aligned_scores(y_true, scores, classes)
    aucs = [_auc(S[codes == j, j], S[codes != j, j]) for j in range(S.shape[1])]
    return float(np.mean(aucs))


@validate_params(
    {
        "y_true": ["array-like"],
        "scores": ["array-like"],
        "classes": ["array-like", None],
        "fpr": [Interval(numbers.Real, 0, 1, closed="both")],
        "average": [StrOptions({"pooled", "macro"})],
    },
    prefer_skip_nested_validation=True,
)
def tpr_at_fpr(y_true, scores, *, classes=None, fpr=0.01, average="pooled"):
    """True-positive rate of an attacker at a fixed low false-positive rate.

    Re-identification seen as *verification*: for each sample and each candidate class
    ``c`` present in ``y_true``, the attacker answers "is this sample of class ``c``?"
    with yes when ``scores[i, c] >= t``. A pair is positive when the sample is of class
    ``c``. The threshold ``t`` is chosen to maximise the true-positive rate (the share
    of positive pairs accepted) while the false-positive rate (the share of negative
    pairs accepted) stays at most ``fpr``; no interpolation between thresholds. With
    ``n_neg`` negative pairs, at most ``floor(fpr * n_neg)`` of them may be accepted.

    Rare but confident re-identifications, which an average such as accuracy hides,
    show here. A constant or random score gives about ``fpr``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True sensitive labels; at least two classes.
    scores : array-like of shape (n_samples, n_classes) or (n_samples,)
        Per-class scores, higher meaning more likely (see :func:`attack_roc_auc`). For
        ``average="pooled"`` the scores of different classes are compared with one
        threshold, so they must be on one scale (probabilities or log-probabilities).
    classes : array-like of shape (n_classes,), default=None
        Class of each column; as in :func:`attack_roc_auc`.
    fpr : float in [0, 1], default=0.01
        The largest false-positive rate allowed.
    average : {"pooled", "macro"}, default="pooled"
        ``"pooled"``: one threshold over all (sample, candidate class) pairs:
        ``n_samples`` positive and ``n_samples * (n_classes - 1)`` negative pairs.
        ``"macro"``: per class ``c``, its samples against the others with the scores of
        ``c`` and a threshold of its own, then the mean over classes.

    Returns
    -------
    tpr : float
        In [0, 1].

    Examples
    --------
    >>> from sklearn_privacy.metrics import tpr_at_fpr
    >>> scores = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]
    >>> tpr_at_fpr([0, 0, 1, 1], scores, fpr=0.0)  # 0.9, 0.7, 0.8 beat every negative
    0.75
    """
    _, codes, S = _aligned_scores(y_true, scores, classes)
    is_pos = codes[:, None] == np.arange(S.shape[1])[None, :]
    if average == "pooled":
        return _tpr_at(S[is_pos], S[~is_pos], fpr)
    return float(np.mean([
        _tpr_at(S[is_pos[:, j], j], S[~is_pos[:, j], j], fpr) for j in range(S.shape[1])
    ]))


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "y_train": ["array-like", None],
        "kind": [StrOptions({"auto", "classification", "regression"})],
        "metric": [StrOptions({"auto", "accuracy", "balanced_accuracy"})],
    },
    prefer_skip_nested_validation=True,
)
def attribute_inference_gain(y_true, y_pred, *, y_train=None, kind="auto", metric="auto"):
    """Gain of an attribute attacker over imputation from the training data alone.

    An attacker who knows only the training population can already "infer" an
    attribute by imputing its most common value (classification) or its mean
    (regression). The gain is what the protected data add to that.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True attribute values of the attacked samples.
    y_pred : array-like of shape (n_samples,)
        The attacker's predictions.
    y_train : array-like, default=None
        Attribute values the attacker trained on: the imputation uses its majority
        class or its mean. By default ``y_true`` (the best constant guess in hindsight,
        a stricter baseline).
    kind : {"auto", "classification", "regression"}, default="auto"
        ``"auto"``: regression when ``y_true`` is continuous (see
        :func:`sklearn.utils.multiclass.type_of_target`), classification otherwise.
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        Classification score; ``"auto"`` is balanced accuracy for two classes in
        ``y_true`` and accuracy otherwise. Ignored for regression (mean absolute
        error).

    Returns
    -------
    result : dict
        ``kind``, ``metric`` (``"accuracy"``, ``"balanced_accuracy"`` or ``"mae"``),
        ``score`` (the attacker's), ``baseline`` (the imputation's), ``gain`` and
        ``relative_gain``:

        - classification: ``baseline`` is the score of always predicting the majority
          class of ``y_train`` (for balanced accuracy, ``1 / n_classes`` whatever the
          class), ``gain = score - baseline`` and
          ``relative_gain = gain / (1 - baseline)``;
        - regression: ``score`` is the attacker's mean absolute error, ``baseline`` the
          MAE of always predicting the mean of ``y_train``,
          ``gain = baseline - score`` (positive when the attacker beats imputation)
          and ``relative_gain = gain / baseline`` (1 for an exact attacker, 0 for
          one no better than the mean, negative when worse).

    Examples
    --------
    >>> from sklearn_privacy.metrics import attribute_inference_gain
    >>> r = attribute_inference_gain(
    ...     [60, 70, 80], [62, 70, 78], y_train=[70, 70], kind="regression")
    >>> r["baseline"], r["score"], round(r["relative_gain"], 3)  # MAE 20/3 vs 4/3
    (6.666666666666667, 1.3333333333333333, 0.8)
    """
    y_true = _as_1d_labels(y_true, "y_true")
    y_pred = _as_1d_labels(y_pred, "y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} samples but y_pred has {y_pred.shape[0]}."
        )
    reference = y_true if y_train is None else _as_1d_labels(y_train, "y_train")
    if kind == "auto":
        kind = "regression" if type_of_target(y_true) == "continuous" else "classification"
    if kind == "regression":
        try:
            y_true = y_true.astype(np.float64)
            y_pred = y_pred.astype(np.float64)
            reference = reference.astype(np.float64)
        except ValueError as exc:
            raise ValueError("kind='regression' needs numeric values.") from exc
        mae = float(np.mean(np.abs(y_true - y_pred)))
        baseline = float(np.mean(np.abs(y_true - reference.mean())))
        gain = baseline - mae
        relative = gain / baseline if baseline > 0 else (0.0 if gain == 0 else -np.inf)
        return {"kind": kind, "metric": "mae", "score": mae, "baseline": baseline,
                "gain": gain, "relative_gain": float(relative)}
    present = np.unique(y_true)
    if len(present) < 2:
        raise ValueError(
            f"y_true has a single class {present.tolist()}; the gain needs at least two."
        )
    metric = _resolve_metric(metric, len(present))
    score = attack_score(y_true, y_pred, metric=metric, chance=0.0)["score"]
    if metric == "balanced_accuracy":
        baseline = 1.0 / len(present)
    else:
        values, counts = np.unique(reference, return_counts=True)
        majority = values[np.argmax(counts)]  # ties: the smallest label
        baseline = float(np.mean(y_true == majority))
    gain = score - baseline
    relative = gain / (1.0 - baseline) if baseline < 1 else 0.0
    return {"kind": kind, "metric": metric, "score": float(score), "baseline": baseline,
            "gain": float(gain), "relative_gain": float(relative)}


def _log_odds(summed):
    """Log-odds ``log(p_c / (1 - p_c))`` of each class's naive-Bayes posterior.

    Summed log-probabilities grow with the number of windows, so they do not compare
    across recordings; the posterior does, but saturates at 1 in floating point after a
    few dozen windows. Its log-odds, computed from the sums, is the same ranking
    without the saturation.
    """
    n_classes = summed.shape[1]
    if n_classes == 1:
        return np.zeros_like(summed)
    out = np.empty_like(summed)
    for c in range(n_classes):
        out[:, c] = summed[:, c] - logsumexp(np.delete(summed, c, axis=1), axis=1)
    return out


def _tpr_name(fpr):
    return f"tpr_at_{100 * fpr:g}pct_fpr".replace(".", "_")


def _figures(y_true, y_pred, scores, classes, metric, fpr):
    """``[(metric, value, chance), ...]`` of one set of decisions (and scores)."""
    result = attack_score(y_true, y_pred, metric=metric)
    n_classes = len(np.unique(y_true))
    rows = [(result["metric"], result["score"], result["chance"]),
            ("advantage", result["advantage"], 0.0)]
    if result["metric"] != "balanced_accuracy":
        balanced = attack_score(y_true, y_pred, metric="balanced_accuracy")["score"]
        rows.append(("balanced_accuracy", balanced, 1.0 / n_classes))
    if scores is not None:
        rows.append(("roc_auc_ovr", attack_roc_auc(y_true, scores, classes=classes), 0.5))
        rows.append((_tpr_name(fpr), tpr_at_fpr(y_true, scores, classes=classes, fpr=fpr),
                     float(fpr)))
    return rows


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like", None],
        "proba": ["array-like", None],
        "log_proba": ["array-like", None],
        "classes": ["array-like", None],
        "recording": ["array-like", None],
        "levels": [tuple, list, None],
        "poolings": [tuple, list],
        "metric": [StrOptions({"auto", "accuracy", "balanced_accuracy"})],
        "fpr": [Interval(numbers.Real, 0, 1, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def attack_metrics(
    y_true,
    y_pred=None,
    proba=None,
    *,
    log_proba=None,
    classes=None,
    recording=None,
    levels=None,
    poolings=("vote", "mean_proba", "log_proba"),
    metric="auto",
    fpr=0.01,
):
    """Every figure of one attack on test windows, per level and pooling rule.

    Parameters
    ----------
    y_true : array-like of shape (n_windows,)
        True sensitive labels of the windows; at least two classes.
    y_pred : array-like of shape (n_windows,), default=None
        The attacker's predicted labels. By default the argmax of the probabilities.
    proba : array-like of shape (n_windows, n_classes), default=None
        The attacker's probabilities (``predict_proba``).
    log_proba : array-like of shape (n_windows, n_classes), default=None
        Its log-probabilities instead (``predict_log_proba``); give one of ``proba``
        and ``log_proba`` at most. Without either, only the ``"vote"`` pooling and the
        figures that need no scores are reported.
    classes : array-like of shape (n_classes,), default=None
        Class of each column of the probabilities (an estimator's ``classes_``); by
        default the column index.
    recording : array-like of shape (n_windows,) or (n_windows, {2, 3}), default=None
        Recording of each window (ids, or (subject, recording[, segment]) rows), as in
        :func:`pool_by_recording`; needed for the recording level.
    levels : tuple of {"window", "recording"}, default=None
        Levels to report; by default both when ``recording`` is given, else the window
        level only.
    poolings : tuple of {"vote", "mean_proba", "log_proba"}, default=("vote", "mean_proba", "log_proba")
        Recording-level pooling rules (see :func:`pool_by_recording`). Rules that need
        probabilities are skipped when none are given.
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        Decision score; ``"auto"`` is balanced accuracy for a binary attribute and
        accuracy otherwise (see :func:`attacker_advantage`).
    fpr : float in [0, 1], default=0.01
        False-positive rate of the ``tpr_at_<100 * fpr>pct_fpr`` figure.

    Returns
    -------
    rows : list of dict
        One row per figure, with keys ``level`` (``"window"`` or ``"recording"``),
        ``pooling`` (None at window level; a rule, or ``"worst"``, at recording level),
        ``selected_pooling`` (the rule the row comes from: the rule itself, the one
        the ``"worst"`` rows copy, None at window level), ``metric``, ``value`` and
        ``chance`` (what an uninformed attacker gets). Figures, in order:

        - the resolved decision score, ``"accuracy"`` or ``"balanced_accuracy"``, with
          its chance level (majority rate, or ``1 / n_classes``);
        - ``"advantage"``: ``(score - chance) / (1 - chance)`` clipped to [0, 1], see
          :func:`attacker_advantage` (chance 0);
        - ``"balanced_accuracy"`` when the decision score is accuracy (chance
          ``1 / n_classes``);
        - with probabilities: ``"roc_auc_ovr"`` (:func:`attack_roc_auc`, chance 0.5) and
          ``"tpr_at_1pct_fpr"`` (:func:`tpr_at_fpr` pooled, chance ``fpr``). At recording
          level they use the pooled scores: vote shares, mean probabilities, or the
          log-odds of the naive-Bayes posterior computed from the summed
          log-probabilities (raw sums grow with the number of windows and do not
          compare across recordings; the posterior itself saturates at 1).

        At recording level the ``"worst"`` rows repeat the figures of the rule with the
        highest advantage (the first of ``poolings`` on ties): the attacker uses the
        rule that works best for it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import attack_metrics
    >>> proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    >>> rows = attack_metrics([0, 0, 1, 1], proba=proba, recording=[0, 0, 1, 1])
    >>> for row in rows[:4]:
    ...     print(row["level"], row["metric"], row["value"], row["chance"])
    window balanced_accuracy 0.75 0.5
    window advantage 0.5 0.0
    window roc_auc_ovr 1.0 0.5
    window tpr_at_1pct_fpr 0.75 0.01
    >>> worst = [r for r in rows if r["pooling"] == "worst"]  # every rule: 2 of 2 right
    >>> worst[0]["selected_pooling"], worst[1]["metric"], worst[1]["value"]
    ('vote', 'advantage', 1.0)
    """
    y_true = _as_1d_labels(y_true, "y_true")
    if proba is not None and log_proba is not None:
        raise ValueError("Give proba or log_proba, not both.")
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or np.any(proba < 0) or np.any(proba > 1 + 1e-6):
            raise ValueError(
                "proba must be a 2-D array of probabilities in [0, 1]; pass "
                "log-probabilities as log_proba=."
            )
        with np.errstate(divide="ignore"):
            log_proba = np.log(proba)
    elif log_proba is not None:
        log_proba = np.asarray(log_proba, dtype=np.float64)
        if log_proba.ndim != 2 or np.any(log_proba > 1e-6) or np.any(np.isnan(log_proba)):
            raise ValueError("log_proba must be a 2-D array of log-probabilities (<= 0).")
        proba = np.exp(log_proba)
    if proba is not None:
        if proba.shape[0] != y_true.shape[0]:
            raise ValueError(
                f"The probabilities have {proba.shape[0]} rows but y_true has "
                f"{y_true.shape[0]} samples."
            )
        classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
        if classes.shape != (proba.shape[1],):
            raise ValueError(
                f"classes has shape {classes.shape} but the probabilities have "
                f"{proba.shape[1]} columns."
            )
        argmax = classes[np.argmax(log_proba, axis=1)]
        y_pred = argmax if y_pred is None else _as_1d_labels(y_pred, "y_pred")
    elif y_pred is None:
        raise ValueError("attack_metrics needs y_pred, proba or log_proba.")
    else:
        y_pred = _as_1d_labels(y_pred, "y_pred")
    if y_pred.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} samples but y_pred has {y_pred.shape[0]}."
        )

    if levels is None:
        levels = ("window", "recording") if recording is not None else ("window",)
    levels = tuple(levels)
    if not levels or set(levels) - {"window", "recording"}:
        raise ValueError(
            f"levels must be a non-empty subset of ('window', 'recording'); got {levels}."
        )
    if "recording" in levels and recording is None:
        raise ValueError("The recording level needs recording=...; or pass levels=('window',).")
    poolings = tuple(poolings)
    unknown = set(poolings) - {"vote", "mean_proba", "log_proba"}
    if not poolings or unknown:
        raise ValueError(
            "poolings must be a non-empty subset of ('vote', 'mean_proba', 'log_proba'); "
            f"got {poolings}."
        )
    if proba is None:
        poolings = tuple(p for p in poolings if p == "vote")
        if not poolings and "recording" in levels:
            raise ValueError(
                "The pooling rules 'mean_proba' and 'log_proba' need probabilities; pass "
                "proba= or log_proba=, or use poolings=('vote',)."
            )
    metric = _resolve_metric(metric, len(np.unique(y_true)))

    rows = []
    if "window" in levels:
        for name, value, chance in _figures(y_true, y_pred, log_proba, classes, metric, fpr):
            rows.append({"level": "window", "pooling": None, "selected_pooling": None,
                         "metric": name, "value": float(value), "chance": float(chance)})
    if "recording" in levels:
        per_rule = {}
        for rule in poolings:
            if rule == "vote":
                vote_classes = None
                if proba is not None and np.all(np.isin(y_pred, classes)):
                    vote_classes = classes
                y_rec, pooled, pooled_classes, _ = _pool(
                    y_true, y_pred, recording, "vote", vote_classes
                )
                scores = None
                if proba is not None:
                    scores = pooled / pooled.sum(axis=1, keepdims=True)  # vote shares
            elif rule == "mean_proba":
                y_rec, scores, pooled_classes, _ = _pool(
                    y_true, proba, recording, "mean_proba", classes
                )
            else:
                y_rec, summed, pooled_classes, _ = _pool(
                    y_true, log_proba, recording, "log_proba", classes
                )
                scores = _log_odds(summed)
            # Ties go to the first class, as in pool_by_recording.
            source = pooled if rule == "vote" else scores
            y_rec_pred = pooled_classes[np.argmax(source, axis=1)]
            per_rule[rule] = _figures(y_rec, y_rec_pred, scores, pooled_classes, metric, fpr)
        for rule, figures in per_rule.items():
            for name, value, chance in figures:
                rows.append({"level": "recording", "pooling": rule, "selected_pooling": rule,
                             "metric": name, "value": float(value), "chance": float(chance)})
        worst = max(per_rule, key=lambda r: (dict((f[0], f[1]) for f in per_rule[r])
                                             ["advantage"], -poolings.index(r)))
        for name, value, chance in per_rule[worst]:
            rows.append({"level": "recording", "pooling": "worst", "selected_pooling": worst,
                         "metric": name, "value": float(value), "chance": float(chance)})
    return rows
