"""Attacker advantage over chance, and pooling of window predictions per recording.

An attack is summarised by a *score* (accuracy or balanced accuracy), the *chance* level
a guess without any information reaches, and the *advantage*
``(score - chance) / (1 - chance)``: 0 when the attacker does no better than guessing,
1 when it is always right. Privacy is reported as ``1 - advantage`` (higher is more
private), so that it can be maximised by :class:`~sklearn.model_selection.GridSearchCV`.
"""

import numbers
import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..utils.validation import check_window_groups

__all__ = ["attack_score", "attacker_advantage", "chance_level", "pool_by_recording"]

_METRICS = {"auto", "accuracy", "balanced_accuracy"}


def _as_1d_labels(y, name):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape {y.shape}.")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one sample is required.")
    return y


def _resolve_metric(metric, n_classes):
    if metric == "auto":
        return "balanced_accuracy" if n_classes == 2 else "accuracy"
    return metric


def chance_level(y_true, *, metric="auto", labels=None):
    """Score that a guess without any information reaches.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True sensitive labels.
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        ``"auto"`` is balanced accuracy for two classes and accuracy otherwise.
    labels : array-like, default=None
        All classes of the attribute. Only used to count the classes for balanced
        accuracy; by default the classes present in ``y_true``.

    Returns
    -------
    chance : float
        For accuracy, the *majority-class rate* of ``y_true`` (what always guessing the
        most frequent class scores; ``1 / n_classes`` when classes are balanced). For
        balanced accuracy, ``1 / n_classes`` (what any constant or random guess
        scores in expectation).
    """
    y_true = _as_1d_labels(y_true, "y_true")
    classes, counts = np.unique(y_true, return_counts=True)
    n_classes = len(classes) if labels is None else len(np.union1d(classes, labels))
    metric = _resolve_metric(metric, n_classes)
    if metric == "accuracy":
        return float(counts.max() / counts.sum())
    return 1.0 / n_classes


def attack_score(y_true, y_pred, *, metric="auto", chance=None):
    """Score of an attack, its chance level and its advantage over chance.

    See :func:`attacker_advantage` for the rules; this function returns all three
    figures so reports can show the raw score beside its chance level.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True sensitive labels.
    y_pred : array-like of shape (n_samples,)
        The attacker's predictions.
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        ``"auto"`` is balanced accuracy for a binary attribute, accuracy otherwise.
    chance : float in [0, 1), default=None
        Chance level; by default :func:`chance_level`.

    Returns
    -------
    result : dict
        ``score`` (the attacker's accuracy or balanced accuracy, as measured), ``chance``,
        ``advantage`` in [0, 1], and ``metric`` (the resolved metric name).
    """
    y_true = _as_1d_labels(y_true, "y_true")
    y_pred = _as_1d_labels(y_pred, "y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} samples but y_pred has {y_pred.shape[0]}."
        )
    classes = np.unique(y_true)
    if len(classes) < 2:
        raise ValueError(
            "The attacker's advantage needs at least two classes in y_true; got only "
            f"{classes.tolist()}. Score a fold that holds several people (or both values "
            "of the attribute)."
        )
    metric = _resolve_metric(metric, len(classes))
    if chance is None:
        chance = chance_level(y_true, metric=metric)
    elif not (0.0 <= chance < 1.0):
        raise ValueError(f"chance must lie in [0, 1); got {chance!r}.")

    base_func = accuracy_score if metric == "accuracy" else balanced_accuracy_score

    def score_func(y_true, y_pred):
        with warnings.catch_warnings():
            # An attacker naming people absent from the scored data is just wrong.
            warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
            return float(base_func(y_true, y_pred))

    score = score_func(y_true, y_pred)
    best = score
    if len(np.union1d(classes, y_pred)) == 2:
        # A binary attacker that is systematically wrong is as informative as one that
        # is systematically right: flipping its answers reveals the attribute. Credit
        # the attacker with the better of its predictions and their flip. (Not when
        # it predicts labels outside the two: then there is no single flip.)
        flipped = np.where(y_pred == classes[0], classes[1], classes[0])
        best = max(score, score_func(y_true, flipped))
    advantage = float(np.clip((best - chance) / (1.0 - chance), 0.0, 1.0))
    return {"score": score, "chance": float(chance), "advantage": advantage, "metric": metric}


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "chance": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "metric": [StrOptions(_METRICS)],
    },
    prefer_skip_nested_validation=True,
)
def attacker_advantage(y_true, y_pred, *, chance=None, metric="auto"):
    """Advantage of an attacker over chance, in [0, 1].

    ``advantage = (score - chance) / (1 - chance)`` clipped to [0, 1], where ``score`` is
    the attacker's accuracy or balanced accuracy. 0 means the attacker learns nothing
    (privacy), 1 means it always infers the sensitive label.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True sensitive labels (identity, gender, ...).
    y_pred : array-like of shape (n_samples,)
        The attacker's predictions.
    chance : float in [0, 1), default=None
        Chance level. By default the majority-class rate of ``y_true`` for accuracy and
        ``1 / n_classes`` for balanced accuracy (see :func:`chance_level`).
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        ``"auto"`` uses balanced accuracy for a binary attribute (so a skewed attribute
        cannot look leaky or private through its class balance) and accuracy for more
        classes (identity).

    Returns
    -------
    advantage : float
        In [0, 1].

    Notes
    -----
    For a **binary** attribute (two labels in ``y_true`` and ``y_pred`` together), an
    attacker that is systematically wrong (e.g. 30 % balanced accuracy) leaks as much
    as one that is 70 % right: whoever sees its outputs flips them. The advantage is
    therefore computed from the better of the predictions and their flip, i.e.
    ``|advantage|`` for balanced accuracy (``|2 * score - 1|``). Because the flip is
    chosen on the scored data, a random attacker gets a small positive advantage of
    the order of ``1 / sqrt(n)``: a bias towards *less* privacy, the safe side. For
    more than two classes, there is no single systematic flip, and a score below chance
    is clipped to 0.

    Examples
    --------
    >>> from sklearn_privacy.metrics import attacker_advantage
    >>> attacker_advantage([0, 0, 1, 1], [1, 1, 0, 0])  # always wrong: flipped, leaks
    1.0
    >>> round(attacker_advantage([0, 1, 2, 3], [0, 1, 2, 0]), 3)  # 3/4 right, chance 1/4
    0.667
    """
    return attack_score(y_true, y_pred, metric=metric, chance=chance)["advantage"]


_POOLINGS = ("vote", "mean_proba", "log_proba", "proba")


def _pool(y_true, outputs, recording, method, classes=None):
    """Pooled per-class evidence of each recording.

    Returns ``(y_true_pooled, pooled, classes, recordings)`` where ``pooled`` has one row
    per recording and one column per entry of ``classes``: vote counts (``"vote"``), the
    mean probabilities (``"mean_proba"``) or the summed log-probabilities
    (``"log_proba"``, ``"proba"``). The pooled prediction is ``classes[argmax]``.
    """
    y_true = _as_1d_labels(y_true, "y_true")
    n = y_true.shape[0]
    recording = np.asarray(recording)
    inverse = check_window_groups(recording, n, name="recording").recording
    n_rec = int(inverse.max()) + 1
    outputs = np.asarray(outputs)
    if outputs.shape[0] != n:
        raise ValueError(
            f"proba_or_log_proba has {outputs.shape[0]} rows but y_true has {n} samples."
        )

    # True label per recording, checked constant within the recording.
    y_classes, y_codes = np.unique(y_true, return_inverse=True)
    first = np.full(n_rec, -1)
    first[inverse[::-1]] = np.arange(n)[::-1]  # first window of each recording
    recordings = recording[first] if recording.ndim == 1 else recording[first, :2]
    y_true_pooled = y_true[first]
    if np.any(y_codes != y_codes[first][inverse]):
        bad = recordings[np.unique(inverse[y_codes != y_codes[first][inverse]])][:5]
        raise ValueError(
            "y_true must be constant within a recording (a recording belongs to one "
            f"person); it varies in recordings {bad.tolist()}."
        )

    if method == "vote" and outputs.ndim == 1:
        if classes is None:
            classes = np.unique(np.concatenate([y_classes, np.unique(outputs)]))
        classes = np.asarray(classes)
        sorter = np.argsort(classes, kind="stable")
        pos = np.searchsorted(classes, outputs, sorter=sorter)
        pos = np.clip(pos, 0, len(classes) - 1)
        codes = sorter[pos]
        if np.any(classes[codes] != outputs):
            raise ValueError("y_pred holds labels that are not in classes.")
        counts = np.zeros((n_rec, len(classes)))
        np.add.at(counts, (inverse, codes), 1.0)
        return y_true_pooled, counts, classes, recordings

    if outputs.ndim != 2:
        raise ValueError(
            f"method={method!r} needs a 2-D (n_windows, n_classes) array; got shape "
            f"{outputs.shape}."
        )
    outputs = outputs.astype(np.float64, copy=False)
    if not np.all(np.isfinite(outputs) | (outputs == -np.inf)):
        raise ValueError("proba_or_log_proba contains NaN or +infinity.")
    n_classes = outputs.shape[1]
    classes = np.arange(n_classes) if classes is None else np.asarray(classes)
    if classes.shape != (n_classes,):
        raise ValueError(
            f"classes has shape {classes.shape} but the outputs have {n_classes} columns."
        )
    if method == "vote":
        counts = np.zeros((n_rec, n_classes))
        np.add.at(counts, (inverse, np.argmax(outputs, axis=1)), 1.0)
        return y_true_pooled, counts, classes, recordings
    if method in ("proba", "mean_proba"):
        if np.any(outputs < 0) or np.any(outputs > 1 + 1e-6):
            raise ValueError(
                f"method={method!r} needs probabilities in [0, 1]; pass log-probabilities "
                "with method='log_proba'."
            )
        if method == "mean_proba":
            sums = np.zeros((n_rec, n_classes))
            np.add.at(sums, inverse, outputs)
            return y_true_pooled, sums / np.bincount(inverse)[:, None], classes, recordings
        outputs = np.log(np.clip(outputs, 1e-12, None))
    elif np.any(outputs > 1e-6):
        raise ValueError(
            "method='log_proba' needs log-probabilities (<= 0); pass probabilities with "
            "method='proba' or 'mean_proba'."
        )
    # -inf (a class the window rules out) stays -inf; clip so that sums stay defined.
    outputs = np.maximum(outputs, np.log(1e-300))
    pooled = np.zeros((n_rec, n_classes))
    np.add.at(pooled, inverse, outputs)
    return y_true_pooled, pooled, classes, recordings


@validate_params(
    {
        "y_true": ["array-like"],
        "proba_or_log_proba": ["array-like"],
        "recording": ["array-like"],
        "method": [StrOptions(set(_POOLINGS))],
        "classes": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def pool_by_recording(y_true, proba_or_log_proba, recording, *, method="log_proba", classes=None):
    """Pool window-level attacker outputs into one prediction per recording.

    An attacker who holds a whole recording combines the evidence of all its windows:
    the realistic threat, and a much stronger one than a single window. No rule is
    best for every attacker (summed log-probabilities let one over-confident wrong
    window decide, a vote ignores confidence), so
    :class:`PrivacyScorer` and :func:`attack_metrics` report the worst case over rules.

    Parameters
    ----------
    y_true : array-like of shape (n_windows,)
        True sensitive label of each window; it must be constant within a recording.
    proba_or_log_proba : array-like of shape (n_windows, n_classes) or (n_windows,)
        The attacker's outputs: log-probabilities (``method="log_proba"``),
        probabilities (``method="proba"`` or ``"mean_proba"``), or, for
        ``method="vote"``, predicted labels (1-D) or any per-class scores (2-D, each
        window votes for its argmax).
    recording : array-like of shape (n_windows,), (n_windows, 2) or (n_windows, 3)
        Recording id of each window, (subject, recording) pairs, or the
        (subject, recording, segment) rows of
        :func:`~sklearn_privacy.model_selection.window_groups` (the segment column is
        ignored: windows are pooled per recording). A recording is the (subject,
        recording) pair, so recording ids need only be unique per subject.
    method : {"log_proba", "proba", "mean_proba", "vote"}, default="log_proba"
        ``"log_proba"``: sum the log-probabilities of the windows (naive-Bayes pooling,
        the maximum-likelihood class if windows were independent) and take the argmax;
        one confident window can outweigh many mildly confident ones.
        ``"proba"``: the same after taking the log of the probabilities (clipped at
        1e-12). ``"mean_proba"``: average the windows' probabilities and take the
        argmax (soft voting: confidence counts, but a single window can shift the mean
        by at most ``1 / n_windows``). ``"vote"``: majority vote of the windows'
        predicted labels; ties go to the class that comes first in ``classes``.
    classes : array-like of shape (n_classes,), default=None
        Class label of each column (an estimator's ``classes_``). By default the column
        index for 2-D input; for 1-D votes, the sorted unique labels of ``y_true`` and
        the votes.

    Returns
    -------
    y_true_pooled : ndarray of shape (n_recordings,)
        The true label of each recording.
    y_pred_pooled : ndarray of shape (n_recordings,)
        The pooled prediction of each recording.
    recordings : ndarray of shape (n_recordings,) or (n_recordings, 2)
        The recording ids (1-D input) or (subject, recording) pairs (2- and 3-column
        input), sorted, in the order of the two other outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.metrics import pool_by_recording
    >>> proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.001, 0.999]])
    >>> pool_by_recording([0, 0, 0], np.log(proba), [7, 7, 7])  # one confident window wins
    (array([0]), array([1]), array([7]))
    >>> pool_by_recording([0, 0, 0], proba, [7, 7, 7], method="mean_proba")  # mean 0.60
    (array([0]), array([0]), array([7]))
    """
    y_true_pooled, pooled, classes, recordings = _pool(
        y_true, proba_or_log_proba, recording, method, classes
    )
    return y_true_pooled, classes[np.argmax(pooled, axis=1)], recordings
