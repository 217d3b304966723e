"""Scorers that measure privacy with sensitive labels received through metadata routing.

A scikit-learn scorer is a callable ``scorer(estimator, X, y, **metadata)``. A plain
function cannot ask for metadata: inside :class:`~sklearn.model_selection.GridSearchCV`
or :func:`~sklearn.model_selection.cross_validate` it silently receives nothing. The
scorers here are objects that *request* ``sensitive_features`` and ``groups`` by default
(``get_metadata_routing``), so with ``sklearn.set_config(enable_metadata_routing=True)``
the meta-estimator slices them to the scored fold and passes them; without routing they
receive nothing and raise a clear error instead of scoring nonsense.

Implementation note (scikit-learn 1.9.1): the ``__metadata_request__score`` class
attribute of :class:`~sklearn.utils.metadata_routing._MetadataRequester` is only read for
classes that define a ``score`` method, which a scorer has no reason to have, and
``_BaseScorer.set_score_request`` replaces all requests at once (a default request would
be lost). :class:`_RoutedScorer` therefore builds its request with the public
:class:`~sklearn.utils.metadata_routing.MetadataRequest`, from class defaults plus the
overrides given to :meth:`~_RoutedScorer.set_score_request`.
"""

import numbers
import warnings

import numpy as np
from sklearn import get_config
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.metadata_routing import UNCHANGED, MetadataRequest
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from ..utils.splitting import RecordingDisjointSplit
from ..utils.validation import check_window_groups
from ._attack import attack_metrics

__all__ = ["PrivacyScorer", "utility_scorer"]

_ROUTING_HINT = (
    "Inside GridSearchCV, cross_validate or a Pipeline, enable metadata routing with "
    "sklearn.set_config(enable_metadata_routing=True) (or sklearn.config_context) and "
    "pass sensitive_features=... and groups=... to fit (cross_validate: params={...}). "
    "Called directly: scorer(estimator, X, y, sensitive_features=s, groups=g)."
)


class _RoutedScorer:
    """Scorer that requests metadata for ``score`` by default.

    Subclasses list the metadata they request in ``_default_score_request`` and their
    constructor parameters in ``_parameter_constraints``.
    """

    #: ``{metadata name: request}`` used unless overridden by :meth:`set_score_request`.
    _default_score_request: dict = {}
    _parameter_constraints: dict = {}

    # -- parameters ---------------------------------------------------------------
    def get_params(self, deep=True):
        """Constructor parameters of the scorer (so that it can be cloned).

        Parameters
        ----------
        deep : bool, default=True
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        params : dict
        """
        return {name: getattr(self, name) for name in self._parameter_constraints}

    def set_params(self, **params):
        """Set constructor parameters.

        Returns
        -------
        self : object
        """
        for name, value in params.items():
            if name not in self._parameter_constraints:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}.")
            setattr(self, name, value)
        return self

    def _validate_params(self):
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(), caller_name=type(self).__name__
        )

    def __repr__(self):
        defaults = type(self)().get_params()
        shown = []
        for name, value in self.get_params().items():
            default = defaults[name]
            if value is default or (
                isinstance(value, (str, numbers.Number)) and value == default
            ):
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _routing_repr(self):
        return repr(self)

    # -- metadata routing ---------------------------------------------------------
    def get_metadata_routing(self):
        """Metadata this scorer requests: ``sensitive_features`` and ``groups`` by default.

        Returns
        -------
        routing : MetadataRequest
            A :class:`~sklearn.utils.metadata_routing.MetadataRequest` whose ``score``
            method holds the requests.
        """
        if hasattr(self, "_metadata_request"):  # set by set_score_request; kept by clone
            # Like scikit-learn: copy the requests, not the owner (this scorer).
            return clone(self._metadata_request)
        request = MetadataRequest(owner=self)
        for param, alias in self._default_score_request.items():
            request.score.add_request(param=param, alias=alias)
        return request

    def set_score_request(self, **kwargs):
        """Change which metadata the scorer requests, or under which alias.

        Only available when metadata routing is enabled. By default
        ``sensitive_features`` and ``groups`` are requested; e.g.
        ``set_score_request(sensitive_features="gender")`` reads the metadata passed as
        ``gender=...`` to the meta-estimator's ``fit``. Other requests are kept.

        Parameters
        ----------
        **kwargs : bool, None or str
            ``param=True`` (request), ``False`` (do not request), ``None`` (error if
            passed), a string (alias), or ``sklearn.utils.metadata_routing.UNCHANGED``.

        Returns
        -------
        self : object
        """
        if not get_config().get("enable_metadata_routing", False):
            raise RuntimeError(
                "This method is only available when metadata routing is enabled. You can "
                "enable it using sklearn.set_config(enable_metadata_routing=True)."
            )
        unknown = set(kwargs) - set(self._default_score_request)
        if unknown:
            raise TypeError(
                f"Unexpected args: {sorted(unknown)} in set_score_request. Accepted "
                f"arguments are: {sorted(self._default_score_request)}."
            )
        request = self.get_metadata_routing()
        for param, alias in kwargs.items():
            if alias is not UNCHANGED:
                request.score.add_request(param=param, alias=alias)
        self._metadata_request = request
        return self

    def _accept_sample_weight(self):
        # scikit-learn (before routing is the only way) asks scorers whether they take
        # sample_weight when it is passed to a search with routing off. Ours do not.
        return False


def _protect(estimator, X):
    """Apply the protecting steps of ``estimator`` to ``X``.

    For a :class:`~sklearn.pipeline.Pipeline` ending with a predictor (the app), all
    steps but the last; for a pipeline or estimator without ``predict`` (protectors
    only), all of it; for a bare predictor, nothing (raw data).
    """
    if isinstance(estimator, Pipeline):
        if hasattr(estimator.steps[-1][1], "predict"):
            if len(estimator.steps) == 1:
                return X
            return estimator[:-1].transform(X)
        return estimator.transform(X)
    if hasattr(estimator, "transform") and not hasattr(estimator, "predict"):
        return estimator.transform(X)
    return X


def _check_sensitive(sensitive_features, n_samples, column):
    if sensitive_features is None:
        raise ValueError(
            "PrivacyScorer received no sensitive_features: the attacker needs the "
            "sensitive labels of the scored samples. " + _ROUTING_HINT
        )
    s = sensitive_features
    if hasattr(s, "iloc") and getattr(s, "ndim", 1) == 2:  # DataFrame
        if column is None and s.shape[1] != 1:
            raise ValueError(
                f"sensitive_features has {s.shape[1]} columns; choose the attacked one with "
                "PrivacyScorer(sensitive_column=...)."
            )
        s = s.iloc[:, 0] if column is None else (
            s[column] if isinstance(column, str) else s.iloc[:, column]
        )
    s = np.asarray(s)
    if s.ndim == 2:
        if column is not None:
            if isinstance(column, str):
                raise ValueError(
                    "sensitive_column is a name but sensitive_features is not a DataFrame."
                )
            s = s[:, column]
        elif s.shape[1] == 1:
            s = s[:, 0]
        else:
            raise ValueError(
                f"sensitive_features has {s.shape[1]} columns; choose the attacked one with "
                "PrivacyScorer(sensitive_column=...)."
            )
    if s.ndim != 1:
        raise ValueError(f"sensitive_features must be 1-D or 2-D; got shape {s.shape}.")
    if s.shape[0] != n_samples:
        raise ValueError(
            f"sensitive_features has {s.shape[0]} rows but X has {n_samples} samples."
        )
    return s


def _attacker_outputs(attacker, X):
    """Predicted labels and, when available, log-probabilities of a fitted attacker."""
    log_proba = None
    with np.errstate(divide="ignore"):  # log(0) = -inf is a valid log-probability
        if hasattr(attacker, "predict_log_proba"):
            log_proba = np.asarray(attacker.predict_log_proba(X), dtype=np.float64)
        elif hasattr(attacker, "predict_proba"):
            log_proba = np.log(np.asarray(attacker.predict_proba(X), dtype=np.float64))
    if log_proba is not None:
        classes = np.asarray(attacker.classes_)
        return classes[np.argmax(log_proba, axis=1)], log_proba, classes
    return np.asarray(attacker.predict(X)), None, getattr(attacker, "classes_", None)


def _fit_attacker(attacker, X, s, groups=None):
    """Clone and fit ``attacker``, giving it ``groups`` when its ``fit`` takes them.

    ``groups`` are passed as they are, the finest grouping available: the
    (subject, recording, segment) rows when there are 3 columns (so an early-stopping
    split can hold out runs of activity and still validate on every person when each
    person has a single training recording), else the (subject, recording) rows or
    the 1-D recording ids. Estimators such as
    :class:`~sklearn_privacy.adversaries.TimeSeriesCNNClassifier` read each distinct
    row as one group.
    """
    attacker = clone(attacker)
    if groups is not None and has_fit_parameter(attacker, "groups"):
        return attacker.fit(X, s, groups=groups)
    return attacker.fit(X, s)


def _rules(pooling, has_scores):
    """Pooling rules one attacker is measured with at recording level."""
    if pooling == "worst":
        return ("vote", "mean_proba", "log_proba") if has_scores else ("vote",)
    if pooling == "auto":
        return ("log_proba",) if has_scores else ("vote",)
    if pooling != "vote" and not has_scores:
        raise ValueError(
            f"pooling={pooling!r} needs an attacker with predict_log_proba or "
            "predict_proba; use pooling='vote' (or 'auto', or 'worst')."
        )
    return (pooling,)


def _attack_rows(s_true, y_pred, log_proba, classes, recordings, *, metric, pooling, levels):
    """:func:`attack_metrics` rows of one attack (without the "worst" rows)."""
    rules = _rules(pooling, log_proba is not None)
    rows = attack_metrics(
        s_true, y_pred, log_proba=log_proba, classes=classes if log_proba is not None else None,
        recording=recordings, levels=levels, poolings=rules, metric=metric,
    )
    return [row for row in rows if row["pooling"] != "worst"]


def _resolve_metric(metric, s):
    if metric == "auto":
        return "balanced_accuracy" if len(np.unique(s)) == 2 else "accuracy"
    return metric


def _default_attacker(random_state):
    try:
        from ..adversaries import TimeSeriesCNNClassifier
    except ImportError as exc:  # pragma: no cover - depends on the installed package
        raise ImportError(
            "PrivacyScorer(attacker=None) uses sklearn_privacy.adversaries."
            "TimeSeriesCNNClassifier, which could not be imported; pass an attacker."
        ) from exc
    return TimeSeriesCNNClassifier(random_state=random_state)


def _named_attackers(attacker):
    """``{name: classifier}`` of a classifier, a list or a dict of them."""
    if isinstance(attacker, dict):
        if not attacker:
            raise ValueError("attacker is an empty dict; give at least one classifier.")
        named = dict(attacker)
    elif isinstance(attacker, (list, tuple)):
        if not attacker:
            raise ValueError("attacker is an empty list; give at least one classifier.")
        named, counts = {}, {}
        for est in attacker:
            base = type(est).__name__
            counts[base] = counts.get(base, 0) + 1
            named[base if counts[base] == 1 else f"{base}_{counts[base]}"] = est
    else:
        named = {type(attacker).__name__: attacker}
    for name, est in named.items():
        if not isinstance(name, str):
            raise TypeError(f"Attacker names must be strings; got {name!r}.")
        if not (hasattr(est, "fit") and hasattr(est, "predict")):
            raise TypeError(
                f"Attacker {name!r} must be a classifier with fit and predict; got {est!r}."
            )
    return named


def _summarise(rows_per_split, metric_of_level):
    """Worst case, per-attacker summaries and tidy rows from per-split rows.

    ``rows_per_split`` holds one list of rows per inner split, each row tagged with its
    ``attacker``. Figures are averaged over splits; the worst case is the (attacker,
    pooling) pair with the highest *mean* advantage (first in order on ties).
    """
    n_splits = len(rows_per_split)
    values, chances = {}, {}  # (attacker, level, pooling, metric) -> one entry per split
    for rows in rows_per_split:
        for row in rows:
            key = (row["attacker"], row["level"], row["pooling"], row["metric"])
            values.setdefault(key, []).append(row["value"])
            chances.setdefault(key, []).append(row["chance"])
    order = list(values)  # first appearance: attackers, levels, rules, figures in order

    def arr(*key):
        return np.array(values[key])

    tidy = [
        {**dict(zip(("attacker", "level", "pooling", "metric"), key)),
         "value": float(np.mean(values[key])), "std": float(np.std(values[key])),
         "chance": float(np.mean(chances[key])), "n_splits": len(values[key])}
        for key in order
    ]

    def summary(attacker, level, pooling):
        metric = metric_of_level[level]
        scores = arr(attacker, level, pooling, metric)
        chance = np.mean(chances[(attacker, level, pooling, metric)])
        advantages = arr(attacker, level, pooling, "advantage")
        return {
            "metric": metric,
            "score": float(scores.mean()),
            "score_std": float(scores.std()),
            "chance": float(chance),
            "advantage": float(advantages.mean()),
            "advantage_std": float(advantages.std()),
            "privacy": float(1.0 - advantages.mean()),
            "n_splits": n_splits,
            "split_privacy": (1.0 - advantages).tolist(),
            "attacker": attacker,
            "pooling": pooling,
        }

    result = {}
    for level in metric_of_level:
        candidates = []  # (attacker, pooling) in order of appearance
        for attacker, lvl, pooling, metric in order:
            if lvl == level and metric == "advantage":
                candidates.append((attacker, pooling))
        per_attacker = {}
        for attacker, pooling in candidates:
            current = per_attacker.get(attacker)
            candidate = summary(attacker, level, pooling)
            if current is None or candidate["advantage"] > current["advantage"]:
                per_attacker[attacker] = candidate
        worst = None
        for candidate in per_attacker.values():
            if worst is None or candidate["advantage"] > worst["advantage"]:
                worst = candidate
        result[level] = {
            **worst,
            "attackers": per_attacker,
            "rows": [row for row in tidy if row["level"] == level],
        }
    return result


class PrivacyScorer(_RoutedScorer):
    """Privacy of a fitted protector pipeline: ``1 - advantage`` of an attacker.

    Use it like any scorer, e.g. in ``GridSearchCV(..., scoring={"utility":
    utility_scorer(), "privacy": PrivacyScorer()})`` with metadata routing enabled. The
    scored estimator is a fitted :class:`~sklearn.pipeline.Pipeline` of protector(s)
    followed by the app. The scorer protects the scored fold with all steps but the
    last (``pipeline[:-1].transform(X)``) and measures an attacker on it. The score is
    higher-is-more-private: ``1 - advantage``, see :func:`attacker_advantage`.

    The sensitive labels (``sensitive_features``) and the recording of each sample
    (``groups``) are requested through metadata routing by default; without routing
    the scorer raises a clear error.

    Parameters
    ----------
    attacker : classifier, dict of str to classifier, list of classifiers, default=None
        The attacker, cloned before each fit, or several attackers (a dict names them;
        a list is named by class, ``"LogisticRegression"``,
        ``"LogisticRegression_2"``, ...). With several, each is trained and measured
        on the same inner splits and the score is the **worst case**: the privacy
        against the attacker (and, at recording level, the pooling rule) with the
        highest mean advantage. ``None`` uses
        :class:`sklearn_privacy.adversaries.TimeSeriesCNNClassifier` (imported lazily).
        When its ``fit`` accepts ``groups``, it receives the ``groups`` rows of its
        training samples unchanged, the finest grouping given (e.g. for a grouped
        early-stopping split): with (subject, recording, segment) rows it can hold out
        runs of activity, which keeps every person on both sides of its validation
        split when each person has one training recording.
    mode : {"adaptive", "static"}, default="adaptive"
        ``"adaptive"`` (the honest headline): the attacker is retrained on *protected*
        data, by cross-validation inside the scored fold, grouped by recording (the
        windows of one recording are never on both sides; with (subject, recording)
        groups, :class:`~sklearn_privacy.model_selection.RecordingDisjointSplit` keeps
        every person on both sides). ``"static"``: an attacker trained on *raw* data
        predicts protected data: ``static_attacker`` (already fitted) on the whole fold,
        or, when it is None, ``attacker`` trained on the raw training recordings of the
        same inner cross-validation and tested on the protected other recordings.
    level : {"window", "recording"}, default="window"
        ``"window"``: one prediction per window. ``"recording"``: the attacker pools all
        windows of a recording (see ``pooling``), the realistic threat; needs
        ``groups``.
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        ``"auto"``: balanced accuracy when the sensitive attribute of the fold has two
        values, accuracy otherwise (identity).
    cv : int or cross-validation splitter, default=2
        Inner cross-validation of the attacker. An int gives
        ``RecordingDisjointSplit(n_splits=cv)`` for 2- or 3-column groups (split by
        recording; the segment column is ignored) and
        :class:`~sklearn.model_selection.StratifiedGroupKFold` on recording ids for 1-D
        groups. Any splitter is called as ``cv.split(X, sensitive, groups)``; splits that
        put one recording on both sides are refused. The default is 2 because HAPT
        holds two recordings per person.
    static_attacker : fitted classifier, dict or list of them, default=None
        For ``mode="static"``: an attacker already trained on raw data, or several
        (named as for ``attacker``; the worst case is reported).
    pooling : {"worst", "auto", "log_proba", "mean_proba", "vote"}, default="worst"
        Recording-level pooling (see :func:`pool_by_recording`). ``"worst"``: each of
        ``"vote"``, ``"mean_proba"`` and ``"log_proba"`` (only ``"vote"`` for an
        attacker without probabilities), keeping the one with the highest mean
        advantage, since a real attacker would use the rule that works best.
        ``"auto"``: sum log-probabilities when the attacker has ``predict_log_proba``
        or ``predict_proba``, and vote otherwise. A rule name uses that rule only.
    sensitive_column : int or str, default=None
        The column of a 2-D ``sensitive_features`` to attack (e.g. when a protector is
        fitted on several attributes).
    random_state : int, RandomState instance or None, default=None
        Shuffles the inner cross-validation and seeds the default attacker.

    See Also
    --------
    attacker_advantage : The advantage of an attacker over chance.
    pool_by_recording : Recording-level pooling.
    sklearn_privacy.evaluation.privacy_utility_report : All figures at once.

    Notes
    -----
    The adaptive in-fold protocol needs each person of the scored fold to have at
    least two recordings in it: use a *subject-disjoint* outer split
    (:class:`~sklearn_privacy.model_selection.SubjectDisjointSplit`), which also means
    the protector never saw the scored people. A warning is raised when an inner test
    split holds sensitive classes its training side lacks.

    Window and recording level each cost one scorer (and one attack). To get both
    from a single attack, call :meth:`evaluate` or use
    :func:`~sklearn_privacy.evaluation.privacy_utility_report`.

    Examples
    --------
    >>> import numpy as np, sklearn
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn_privacy.metrics import PrivacyScorer
    >>> rng = np.random.RandomState(0)
    >>> person = np.repeat([0, 1, 2, 3], 20)
    >>> recording = np.repeat(np.arange(8), 10)  # two recordings per person
    >>> X = rng.normal(size=(80, 5)) + person[:, None]  # identity leaks
    >>> y = rng.randint(2, size=80)
    >>> pipe = make_pipeline(FunctionTransformer(), LogisticRegression()).fit(X, y)
    >>> scorer = PrivacyScorer(attacker=LogisticRegression(), random_state=0)
    >>> round(scorer(pipe, X, y, sensitive_features=person, groups=recording), 3)  # windows
    0.533
    >>> summary = scorer.evaluate(pipe, X, y, sensitive_features=person, groups=recording)
    >>> summary["recording"]["privacy"]  # pooling whole recordings: all re-identified
    0.0
    >>> sorted(summary["recording"]["attackers"])  # one attacker here
    ['LogisticRegression']

    Several attackers: the scorer reports the strongest one.

    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> attackers = {"lr": LogisticRegression(), "knn": KNeighborsClassifier()}
    >>> scorer = PrivacyScorer(attacker=attackers, random_state=0)
    >>> summary = scorer.evaluate(pipe, X, y, sensitive_features=person, groups=recording)
    >>> summary["window"]["attacker"] in attackers
    True
    """

    _default_score_request = {"sensitive_features": True, "groups": True}
    _parameter_constraints = {
        "attacker": [HasMethods(["fit", "predict"]), dict, list, None],
        "mode": [StrOptions({"adaptive", "static"})],
        "level": [StrOptions({"window", "recording"})],
        "metric": [StrOptions({"auto", "accuracy", "balanced_accuracy"})],
        "cv": [Interval(numbers.Integral, 2, None, closed="left"), HasMethods(["split"])],
        "static_attacker": [HasMethods(["predict"]), dict, list, None],
        "pooling": [StrOptions({"worst", "auto", "log_proba", "mean_proba", "vote"})],
        "sensitive_column": [Interval(numbers.Integral, 0, None, closed="left"), str, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        attacker=None,
        *,
        mode="adaptive",
        level="window",
        metric="auto",
        cv=2,
        static_attacker=None,
        pooling="worst",
        sensitive_column=None,
        random_state=None,
    ):
        self.attacker = attacker
        self.mode = mode
        self.level = level
        self.metric = metric
        self.cv = cv
        self.static_attacker = static_attacker
        self.pooling = pooling
        self.sensitive_column = sensitive_column
        self.random_state = random_state

    def __call__(self, estimator, X, y_true=None, *, sensitive_features=None, groups=None):
        """Privacy of ``estimator`` on ``X``: ``1 - advantage`` of the attacker.

        Parameters
        ----------
        estimator : fitted Pipeline or estimator
            Protector(s) followed by the app (see the class docstring).
        X : array-like
            The scored samples, raw (the scorer protects them).
        y_true : array-like, default=None
            The task labels; unused (the attacker targets ``sensitive_features``).
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes)
            Sensitive labels of the scored samples; routed by the meta-estimator.
        groups : array-like of shape (n_samples,), (n_samples, 2) or (n_samples, 3), default=None
            Recording ids, (subject, recording) pairs, or the (subject, recording,
            segment) rows of :func:`~sklearn_privacy.model_selection.window_groups`;
            required for the adaptive mode, the in-fold static mode and the recording
            level. Inner splits and pooling are by recording (the (subject, recording)
            pair); the attacker's ``fit`` receives the full rows (see ``attacker``).

        Returns
        -------
        privacy : float
            ``1 - advantage`` in [0, 1], averaged over the inner splits, of the worst
            case over attackers (and pooling rules at recording level).
        """
        summary = self.evaluate(
            estimator, X, y_true, sensitive_features=sensitive_features, groups=groups,
            levels=(self.level,),
        )
        return summary[self.level]["privacy"]

    def evaluate(
        self, estimator, X, y_true=None, *, sensitive_features=None, groups=None,
        levels=("window", "recording"),
    ):
        """Run the attack once and report it at the window and recording levels.

        Parameters
        ----------
        estimator, X, y_true, sensitive_features, groups
            As in :meth:`__call__`.
        levels : tuple of {"window", "recording"}, default=("window", "recording")
            Levels to report; ``"recording"`` needs ``groups``.

        Returns
        -------
        summary : dict
            ``{level: result}`` for each level asked. ``result`` describes the worst
            case (the attacker and pooling rule with the highest mean advantage over
            the inner splits; the first one on ties) and holds:

            - ``"metric"``: the resolved score name, ``"accuracy"`` or
              ``"balanced_accuracy"``; ``"score"`` and ``"score_std"``: that score's
              mean and standard deviation over the inner splits; ``"chance"``: its
              chance level (mean over splits);
            - ``"advantage"``, ``"advantage_std"``, ``"privacy"``
              (``1 - advantage``, the scorer's value), ``"n_splits"`` and
              ``"split_privacy"`` (one value per inner split);
            - ``"attacker"``: the name of the worst-case attacker; ``"pooling"``: its
              pooling rule (None at window level);
            - ``"attackers"``: ``{name: summary}``, the same keys (without
              ``"attackers"`` and ``"rows"``) for each attacker at its own worst
              pooling rule;
            - ``"rows"``: tidy rows of every figure of every attacker and rule, dicts
              with ``attacker``, ``level``, ``pooling``, ``metric``, ``value`` (mean
              over splits), ``std``, ``chance`` and ``n_splits``; the figures are
              those of :func:`attack_metrics` (decision score, ``"advantage"``,
              ``"balanced_accuracy"``, and with probabilities ``"roc_auc_ovr"`` and
              ``"tpr_at_1pct_fpr"``).
        """
        self._validate_params()
        levels = tuple(levels)
        if not levels or set(levels) - {"window", "recording"}:
            raise ValueError(
                f"levels must be a non-empty subset of ('window', 'recording'); got {levels}."
            )
        n_samples = len(X)
        s = _check_sensitive(sensitive_features, n_samples, self.sensitive_column)
        in_fold = self.mode == "adaptive" or self.static_attacker is None
        if groups is None:
            if in_fold or "recording" in levels:
                why = (
                    "to keep the windows of one recording on one side of the attacker's "
                    "cross-validation" if in_fold else "to pool windows per recording"
                )
                raise ValueError(
                    f"PrivacyScorer needs groups {why}: recording ids per sample, or the "
                    "(subject, recording) or (subject, recording, segment) rows of "
                    "window_groups. " + _ROUTING_HINT
                )
            recordings = None
        else:
            groups = np.asarray(groups)
            recordings = check_window_groups(groups, n_samples).recording
        metric = _resolve_metric(self.metric, s)
        pooling = self.pooling
        Xp = _protect(estimator, X)
        if _num_samples(Xp) != n_samples:
            raise ValueError(
                f"The protecting steps returned {_num_samples(Xp)} samples for {n_samples}; "
                "protectors must keep the number and order of samples."
            )

        metric_of_level = {level: metric for level in levels}

        def rows_of(named_fitted, X_test, s_test, rec_test):
            rows = []
            for name, fitted in named_fitted.items():
                y_pred, log_proba, classes = _attacker_outputs(fitted, X_test)
                for row in _attack_rows(s_test, y_pred, log_proba, classes, rec_test,
                                        metric=metric, pooling=pooling, levels=levels):
                    rows.append({"attacker": name, **row})
            return rows

        if self.mode == "static" and self.static_attacker is not None:
            named = _named_attackers(self.static_attacker)
            for fitted in named.values():
                check_is_fitted(fitted)
            return _summarise([rows_of(named, Xp, s, groups)], metric_of_level)

        attacker = self.attacker
        if attacker is None:
            attacker = _default_attacker(self.random_state)
        named = _named_attackers(attacker)
        X_fit_source = Xp if self.mode == "adaptive" else X
        rows_per_split = []
        for train, test in self._inner_splits(X, s, groups, recordings):
            missing = np.setdiff1d(s[test], s[train])
            if missing.size:
                warnings.warn(
                    f"{missing.size} sensitive class(es) of an inner test split never "
                    "appear in its training side, so the attacker cannot predict them "
                    "(privacy is overstated). Score folds holding at least two "
                    "recordings of each person (a subject-disjoint outer split).",
                    UserWarning,
                )
            X_train = _safe_indexing(X_fit_source, train)
            fitted = {
                name: _fit_attacker(est, X_train, s[train], groups[train])
                for name, est in named.items()
            }
            rows_per_split.append(
                rows_of(fitted, _safe_indexing(Xp, test), s[test], groups[test])
            )
        return _summarise(rows_per_split, metric_of_level)

    def _inner_splits(self, X, s, groups, recordings):
        """Recording-disjoint inner splits of the scored fold.

        ``recordings`` are the recording codes of ``groups`` (see
        :func:`~sklearn_privacy.utils.validation.check_window_groups`); a split that
        puts one recording on both sides is refused.
        """
        cv = self.cv
        random_state = self.random_state
        if isinstance(cv, numbers.Integral):
            shuffle = random_state is not None
            if groups.ndim == 2:
                cv = RecordingDisjointSplit(
                    n_splits=cv, shuffle=shuffle, random_state=random_state if shuffle else None
                )
            else:
                cv = StratifiedGroupKFold(
                    n_splits=cv, shuffle=shuffle, random_state=random_state if shuffle else None
                )
        splits = []
        for train, test in cv.split(X, s, groups):
            if np.intersect1d(recordings[train], recordings[test]).size:
                raise ValueError(
                    "The attacker's cross-validation put windows of one recording on both "
                    "sides; overlapping windows would inflate the attack. Use a splitter "
                    "grouped by recording."
                )
            splits.append((np.asarray(train), np.asarray(test)))
        if not splits:
            raise ValueError("The attacker's cross-validation produced no split.")
        return splits


def _num_samples(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def utility_scorer(metric="f1_macro"):
    """Scorer of the app's utility on protected data (macro-F1 by default).

    The scored estimator is the whole fitted pipeline, so its ``predict`` protects the
    fold with the protector(s) and classifies it with the app (which, in a search, was
    trained on protected data of the training fold). This is exactly scikit-learn's
    built-in scorer ``metric``; the function exists for symmetry with
    :class:`PrivacyScorer` and to name the default.

    Parameters
    ----------
    metric : str, default="f1_macro"
        Any scikit-learn scorer name.

    Returns
    -------
    scorer : callable
        ``sklearn.metrics.get_scorer(metric)``.

    Examples
    --------
    >>> from sklearn_privacy.metrics import utility_scorer
    >>> utility_scorer()._score_func.__name__
    'f1_score'
    """
    return get_scorer(metric)
