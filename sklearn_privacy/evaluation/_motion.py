"""The full privacy-utility evaluation of several motion protectors, as benchmark records.

:func:`privacy_utility_report` runs the threat model of the user guide for each protector:

- *utility* on people the app never saw (subject-disjoint folds): each app retrained on
  protected data (``activity_macro_f1``) and trained on raw data
  (``activity_macro_f1_raw_app``), plus distortion (``mse``, ``snr_db``) and the
  protector's ``fit_seconds``;
- *privacy* on other recordings of the same people (recording-disjoint folds): each
  *adaptive* attacker trained on protected training recordings and each *static*
  attacker trained on raw training recordings, all tested on protected test recordings,
  at window and recording level;
- headline rows: the strongest app (``"best"``) and the strongest attacker
  (``"worst"``, the worst case for privacy).

The protector is always fitted on the training side of the fold only. The result is a
tidy DataFrame whose columns are the benchmark record keys, so it can be written with
:func:`~sklearn_privacy.evaluation.write_benchmark_records`.
"""

import numbers
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn import get_config
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import has_fit_parameter

from ..metrics import PrivacyScorer, mse, snr_db
from ..model_selection import RecordingDisjointSplit, SubjectDisjointSplit
from ..utils._progress import StepProgress
from ..utils.validation import check_window_groups
from ._records import RECORD_KEYS, make_record

__all__ = ["BEST_APP", "WORST_ATTACKER", "privacy_utility_report"]

#: Name, in the ``attacker`` column, of the headline utility rows: the strongest app.
BEST_APP = "best"
#: Name, in the ``attacker`` column, of the worst-case privacy rows: the strongest
#: attacker.
WORST_ATTACKER = "worst"

_RAW = {"raw", "passthrough"}
_IDENTITY = FunctionTransformer()


def _is_raw(protector):
    return protector is None or (isinstance(protector, str) and protector in _RAW)


def _fit_protector(protector, X, y, s):
    """Clone and fit a protector, giving it the sensitive labels when it takes them."""
    protector = clone(protector)
    if isinstance(protector, Pipeline):
        if get_config().get("enable_metadata_routing", False):
            return protector.fit(X, y, sensitive_features=s)
        params = {
            f"{name}__sensitive_features": s
            for name, step in protector.steps
            if step not in (None, "passthrough") and has_fit_parameter(step, "sensitive_features")
        }
        return protector.fit(X, y, **params)
    if has_fit_parameter(protector, "sensitive_features"):
        return protector.fit(X, y, sensitive_features=s)
    return protector.fit(X, y)


def _fit_model(model, X, y, groups):
    """Clone and fit an app or attacker, giving it ``groups`` when its ``fit`` takes them."""
    model = clone(model)
    if has_fit_parameter(model, "groups"):
        return model.fit(X, y, groups=groups)
    return model.fit(X, y)


def _attack_scores(fitted, X_test, s_test, groups_test, *, metric, pooling, levels):
    """Every figure of a fitted attacker on (protected) test windows.

    The one place where the report turns a fitted attacker into figures: every privacy
    row comes from here. Returns ``(level, figure, value, chance)`` tuples, where
    ``level`` is ``"window"`` or ``"recording:<rule>"`` for each recording-level pooling
    rule (see :func:`~sklearn_privacy.metrics.attack_metrics`); the ``"recording"``
    level, the rule that works best for the attacker, is chosen on the means over folds
    by the caller.
    """
    # X_test is already protected: the scored "pipeline" is the identity.
    scorer = PrivacyScorer(mode="static", static_attacker=fitted, metric=metric,
                           pooling=pooling)
    summary = scorer.evaluate(_IDENTITY, X_test, sensitive_features=s_test,
                              groups=groups_test, levels=levels)
    out = []
    for level, result in summary.items():
        for row in result["rows"]:
            if row["pooling"] == "worst":
                continue
            key = level if row["pooling"] is None else f"{level}:{row['pooling']}"
            out.append((key, row["metric"], row["value"], row["chance"]))
    return out


def _fit_models(models, X, labels, groups, train):
    """Task: fit each of ``models`` on the raw training windows of a fold."""
    X_tr = _safe_indexing(X, train)
    return {name: _fit_model(model, X_tr, labels[train], groups[train])
            for name, model in models.items()}


def _protect(protector, X_tr, X_te, y_tr, s_tr):
    """Protected training and test windows of a fold, and the protector's fit time."""
    if _is_raw(protector):
        return X_tr, X_te, 0.0
    start = time.perf_counter()
    fitted = _fit_protector(protector, X_tr, y_tr, s_tr)
    fit_seconds = time.perf_counter() - start
    return fitted.transform(X_tr), fitted.transform(X_te), fit_seconds


def _utility_task(name, protector, apps, raw_apps, X, y, s, groups, train, test, *,
                  distortion):
    """Task: the utility figures of one protector on one subject-disjoint fold.

    Returns ``(key, value, chance)`` tuples with ``key`` = (protector, metric, app,
    mode, level).
    """
    X_tr, X_te = _safe_indexing(X, train), _safe_indexing(X, test)
    Xp_tr, Xp_te, fit_seconds = _protect(protector, X_tr, X_te, y[train], s[train])
    out = [((name, "fit_seconds", None, None, None), fit_seconds, None)]
    for app_name, app_model in apps.items():
        # Apps (like attackers) get the groups rows for a grouped early-stopping split.
        # Without protection, the app retrained on protected data is the raw app.
        app_p = (raw_apps[app_name] if _is_raw(protector)
                 else _fit_model(app_model, Xp_tr, y[train], groups[train]))
        out.append(((name, "activity_macro_f1", app_name, None, None),
                    f1_score(y[test], app_p.predict(Xp_te), average="macro"), None))
        out.append(((name, "activity_macro_f1_raw_app", app_name, None, None),
                    f1_score(y[test], raw_apps[app_name].predict(Xp_te), average="macro"),
                    None))
    if distortion and np.shape(Xp_te) == np.shape(X_te):
        out.append(((name, "mse", None, None, None), mse(X_te, Xp_te), None))
        out.append(((name, "snr_db", None, None, None), snr_db(X_te, Xp_te), None))
    return out


def _privacy_task(name, protector, attackers, static, X, y, s, groups, train, test, *,
                  modes, levels, metric, pooling, sensitive_name):
    """Task: the attack figures of one protector on one recording-disjoint fold.

    ``static`` holds the attackers already trained on the raw training windows (None
    when no static attacker is needed). Returns ``(key, value, chance)`` tuples.
    """
    X_tr, X_te = _safe_indexing(X, train), _safe_indexing(X, test)
    raw = _is_raw(protector)
    Xp_tr, Xp_te, _ = _protect(protector, X_tr, X_te, y[train], s[train])
    out = []
    for att_name, attacker in attackers.items():
        for mode in modes:
            if mode == "static" or raw:
                model = static[att_name]
            else:
                model = _fit_model(attacker, Xp_tr, s[train], groups[train])
            for level, figure, value, chance in _attack_scores(
                model, Xp_te, s[test], groups[test], metric=metric, pooling=pooling,
                levels=levels,
            ):
                out.append(((name, f"{sensitive_name}_{figure}", att_name, mode, level),
                            value, None if figure == "advantage" else chance))
    return out


def _run_tasks(tasks, labels, n_jobs, progress):
    """Run joblib tasks, report each as it finishes, return the results in task order.

    The tasks run under the active joblib backend (local processes, or a Dask cluster
    under ``joblib.parallel_config(backend="dask")``); the order of the results never
    depends on the order in which the tasks finish.
    """
    if not tasks:
        return []
    indexed = [delayed(_indexed)(i, task) for i, task in enumerate(tasks)]
    try:
        finished = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(indexed)
    except ValueError as exc:  # a backend without generators (multiprocessing)
        if "return_as" not in str(exc):
            raise
        finished = Parallel(n_jobs=n_jobs)(indexed)
    results = [None] * len(tasks)
    for i, result in finished:
        results[i] = result
        progress.complete(labels[i])
    return results


def _indexed(i, task):
    function, args, kwargs = task
    return i, function(*args, **kwargs)


def _default_cnn(random_state):
    from ..adversaries import TimeSeriesCNNClassifier

    return TimeSeriesCNNClassifier(random_state=random_state)


def _splitter(cv, default):
    if cv is None:
        return default()
    if isinstance(cv, numbers.Integral):
        return default(n_splits=int(cv))
    if not hasattr(cv, "split"):
        raise ValueError(f"cv must be None, an int or a splitter with split(); got {cv!r}.")
    return cv




def _check_models(models, what, reserved):
    if not isinstance(models, dict) or not models:
        raise ValueError(f"{what} must be a non-empty dict of name -> classifier.")
    for name in models:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} names must be non-empty strings; got {name!r}.")
        if name == reserved:
            raise ValueError(
                f"{reserved!r} is reserved for the headline rows; rename that entry of {what}."
            )
    return dict(models)


def _strongest(frame, by, figures, *, key="attacker", rename):
    """Rows of the candidate with the best mean ``by`` figure, relabelled.

    ``frame`` holds the rows of several candidates told apart by the ``key`` column
    (apps or attackers in ``attacker``; pooling rules in ``level``); the candidate
    whose mean ``by`` row is highest wins, ties going to the first; all of its rows in
    ``figures`` are copied with the columns in ``rename`` replaced.
    """
    ranked = frame[frame["metric"] == by]
    means = ranked["value"].astype(float)
    if means.isna().all():
        return []
    winner = ranked.loc[means.idxmax(), key]
    rows = frame[(frame[key] == winner) & frame["metric"].isin(figures)]
    return [dict(row, **rename) for row in rows.to_dict(orient="records")]


def privacy_utility_report(
    protectors,
    X,
    y,
    sensitive_features,
    *,
    groups,
    app=None,
    apps=None,
    attackers=None,
    utility_cv=None,
    privacy_cv=None,
    modes=("adaptive", "static"),
    levels=("window", "recording"),
    sensitive_name="identity",
    metric="auto",
    pooling="worst",
    distortion=True,
    dataset=None,
    random_state=None,
    n_jobs=None,
    verbose=0,
):
    """Utility and privacy of several protectors, as tidy benchmark records.

    Parameters
    ----------
    protectors : dict of str -> estimator or "raw"
        Protectors (or pipelines of protectors) by name, cloned and fitted per fold.
        ``"raw"``, ``"passthrough"`` or None means no protection.
    X : array-like of shape (n_windows, n_timestamps, n_channels)
        Windows (see :func:`~sklearn_privacy.datasets.make_windows`).
    y : array-like of shape (n_windows,)
        Task labels (activity).
    sensitive_features : array-like of shape (n_windows,)
        The attacked labels (identity, or an attribute); also given to the protectors'
        ``fit``.
    groups : array-like of shape (n_windows, 3) or (n_windows, 2)
        (subject, recording, segment) or (subject, recording) of each window, as
        :func:`~sklearn_privacy.model_selection.window_groups` returns. Folds are split
        by subject (utility) and by recording (privacy) and recording-level attacks pool
        by (subject, recording); the segment column only reaches the apps and the
        attackers: one whose ``fit`` takes ``groups`` receives the rows of its training
        windows, so its early-stopping split can hold out runs of activity rather than
        whole recordings (with one training recording per person, whole people).
    app : classifier, default=None
        The app whose utility is measured, reported under the name ``"app"``; a
        shorthand for ``apps={"app": app}``. Give ``app`` or ``apps``, not both.
    apps : dict of str -> classifier, default=None
        Apps by name. By default one
        :class:`~sklearn_privacy.adversaries.TimeSeriesCNNClassifier` named ``"cnn"``.
        ``"best"`` is reserved.
    attackers : dict of str -> classifier, default=None
        Attackers by name; by default ``{"cnn": TimeSeriesCNNClassifier()}``. An
        attacker whose ``fit`` takes ``groups`` receives the ``groups`` rows of its
        training windows (see ``groups``). ``"worst"`` is reserved.
    utility_cv : int or splitter, default=None
        Subject-disjoint folds for utility; default ``SubjectDisjointSplit(n_splits=5)``,
        an int sets ``n_splits``.
    privacy_cv : int or splitter, default=None
        Recording-disjoint folds for privacy; default
        ``RecordingDisjointSplit(n_splits=2)``, an int sets ``n_splits``.
    modes : tuple of {"adaptive", "static"}, default=("adaptive", "static")
        Attacker retrained on protected data, and attacker trained on raw data.
    levels : tuple of {"window", "recording"}, default=("window", "recording")
        Attack single windows, and whole recordings (see ``pooling``).
    sensitive_name : str, default="identity"
        Prefix of the privacy metric names (``identity_accuracy``,
        ``gender_balanced_accuracy``, ``identity_advantage``).
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        Attack score; ``"auto"`` is balanced accuracy for a binary attribute.
    pooling : {"worst", "auto", "vote", "mean_proba", "log_proba"}, default="worst"
        Recording-level pooling of the windows' outputs (see
        :func:`~sklearn_privacy.metrics.pool_by_recording`). ``"worst"``: every rule
        (majority vote, mean probability, summed log-probability; the last two for
        attackers with probabilities), each reported at level ``"recording:<rule>"``,
        and level ``"recording"`` holds the rule with the highest mean advantage for
        that attacker. A single rule is reported at ``"recording:<rule>"`` and
        ``"recording"``; ``"auto"`` is ``"log_proba"`` for attackers with
        probabilities and ``"vote"`` otherwise.
    distortion : bool, default=True
        Also report ``mse`` and ``snr_db`` between raw and protected test windows
        (skipped for protectors that change the shape).
    dataset : str, default=None
        Value of the ``dataset`` column.
    random_state : int, default=None
        Seeds the default apps and attackers.
    n_jobs : int, default=None
        Number of tasks run at once by :class:`joblib.Parallel`: one task per fold for
        the models shared by all protectors (the raw-data apps, the static attackers),
        then one per (fold, protector). ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` means all processors. Under
        ``joblib.parallel_config(backend="dask")`` with a connected
        ``distributed.Client``, the tasks run on the Dask cluster. The report does not
        depend on the backend, the number of workers or the order in which tasks
        finish, provided every random draw of the protectors, apps and attackers is
        seeded (an integer ``random_state``; ``noise_random_state`` for
        :class:`~sklearn_privacy.motion.GaussianNoise`); only ``fit_seconds`` varies.
    verbose : int, default=0
        When positive, print each task (fold and protector) as it finishes, with the
        elapsed time and an estimate of the time left.

    Returns
    -------
    report : DataFrame
        One row per (protector, metric, attacker, mode, level) with columns
        :data:`~sklearn_privacy.evaluation.RECORD_KEYS`: ``value`` is the mean over
        folds, ``std`` the standard deviation over folds, ``n_folds`` their number and
        ``chance`` the mean chance level of attack scores (majority-class rate for
        accuracy, ``1 / n_classes`` for balanced accuracy; None elsewhere).
        ``{sensitive_name}_advantage`` rows hold the advantage over chance (see
        :func:`~sklearn_privacy.metrics.attacker_advantage`).

        Utility rows (``activity_macro_f1``, ``activity_macro_f1_raw_app``) name their
        app in the ``attacker`` column; the rows named ``"best"`` repeat, per protector
        and metric, those of the app with the highest mean. ``fit_seconds``, ``mse``
        and ``snr_db`` have no app (None).

        Privacy rows name their attacker. Besides the decision score and the advantage
        they hold ``{sensitive_name}_balanced_accuracy`` (for accuracy-scored
        attributes) and, for attackers with probabilities, ``_roc_auc_ovr`` and
        ``_tpr_at_1pct_fpr`` (see :func:`~sklearn_privacy.metrics.attack_metrics`).
        The rows named ``"worst"`` repeat, per protector, mode and level, all figures
        of the attacker with the highest *mean* advantage (chosen on the means over folds, so that its score,
        advantage and spread are those of one real attacker, ties going to the first
        attacker). Write the report with ``write_benchmark_records(report, ...)``.

    Notes
    -----
    Cost: for each protector and fold, one protector fit, one fit per app (utility
    folds) and one adaptive fit per attacker (privacy folds); the raw-data apps and the
    static attackers are trained once per fold and shared by all protectors. For a
    protector that is ``"raw"``, the adaptive attacker *is* the static one and the app
    retrained on protected data *is* the raw-data app.

    Each task receives whole ``X`` and the indices of its fold: joblib's process
    backend memory-maps large arrays for its workers, and its Dask backend sends each
    large argument to the cluster once.
    """
    if not isinstance(protectors, dict) or not protectors:
        raise ValueError("protectors must be a non-empty dict of name -> protector (or 'raw').")
    modes, levels = tuple(modes), tuple(levels)
    if not modes or set(modes) - {"adaptive", "static"}:
        raise ValueError(
            f"modes must be a non-empty subset of ('adaptive', 'static'); got {modes}."
        )
    if not levels or set(levels) - {"window", "recording"}:
        raise ValueError(
            f"levels must be a non-empty subset of ('window', 'recording'); got {levels}."
        )
    if metric not in {"auto", "accuracy", "balanced_accuracy"}:
        raise ValueError(
            f"metric must be 'auto', 'accuracy' or 'balanced_accuracy'; got {metric!r}."
        )
    n = len(X)
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but X has {n} samples.")
    s = np.asarray(sensitive_features)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(
            "sensitive_features must hold one label per window (1-D, length "
            f"{n}); got shape {s.shape}."
        )
    groups = np.asarray(groups)
    check_window_groups(groups, n, allow_1d=False)
    if n_jobs is not None and (
        not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0
    ):
        raise ValueError(f"n_jobs must be None or a non-zero int; got {n_jobs!r}.")
    if app is not None and apps is not None:
        raise ValueError("give app or apps, not both.")
    if apps is None:
        apps = {"app": app} if app is not None else {"cnn": _default_cnn(random_state)}
    apps = _check_models(apps, "apps", BEST_APP)
    if attackers is None:
        attackers = {"cnn": _default_cnn(random_state)}
    attackers = _check_models(attackers, "attackers", WORST_ATTACKER)
    utility_cv = _splitter(utility_cv, SubjectDisjointSplit)
    privacy_cv = _splitter(privacy_cv, RecordingDisjointSplit)
    if metric == "auto":
        metric = "balanced_accuracy" if len(np.unique(s)) == 2 else "accuracy"
    resolved_metric = metric

    utility_folds = list(utility_cv.split(X, y, groups))
    privacy_folds = list(privacy_cv.split(X, s, groups))
    raw_names = [name for name, protector in protectors.items() if _is_raw(protector)]
    need_static = "static" in modes or bool(raw_names)

    # -- stage 1: the models shared by every protector of a fold -----------------
    # The raw-data apps (utility folds) and the static attackers (privacy folds) are
    # trained once per fold, as their own tasks, then handed to the protector tasks.
    shared_tasks, shared_labels = [], []
    for fold, (train, _) in enumerate(utility_folds):
        shared_tasks.append(delayed(_fit_models)(apps, X, y, groups, train))
        shared_labels.append(f"utility fold {fold}: raw-data apps")
    if need_static:
        for fold, (train, _) in enumerate(privacy_folds):
            shared_tasks.append(delayed(_fit_models)(attackers, X, s, groups, train))
            shared_labels.append(f"privacy fold {fold}: static attackers")

    # -- stage 2: one task per (fold, protector) ---------------------------------
    advantage_name = f"{sensitive_name}_advantage"
    n_protector_tasks = (len(utility_folds) + len(privacy_folds)) * len(protectors)
    progress = StepProgress(len(shared_tasks) + n_protector_tasks,
                            desc="privacy_utility_report", verbose=verbose > 0)
    shared = _run_tasks(shared_tasks, shared_labels, n_jobs, progress)
    raw_apps = shared[:len(utility_folds)]
    static = shared[len(utility_folds):] if need_static else [None] * len(privacy_folds)

    tasks, labels = [], []
    for fold, (train, test) in enumerate(utility_folds):
        for name, protector in protectors.items():
            tasks.append(delayed(_utility_task)(
                name, protector, apps, raw_apps[fold], X, y, s, groups, train, test,
                distortion=distortion,
            ))
            labels.append(f"utility fold {fold}: {name}")
    for fold, (train, test) in enumerate(privacy_folds):
        for name, protector in protectors.items():
            tasks.append(delayed(_privacy_task)(
                name, protector, attackers, static[fold], X, y, s, groups, train, test,
                modes=modes, levels=levels, metric=resolved_metric, pooling=pooling,
                sensitive_name=sensitive_name,
            ))
            labels.append(f"privacy fold {fold}: {name}")
    values = {}  # (protector, metric, attacker, mode, level) -> list of (value, chance)
    # Gathered in task order (folds, then protectors), whatever order they finish in.
    for figures in _run_tasks(tasks, labels, n_jobs, progress):
        for key, value, chance in figures:
            values.setdefault(key, []).append((value, chance))
    progress.finish()

    rows = []
    for (protector, metric_name, attacker, mode, level), pairs in values.items():
        vals = np.array([v for v, _ in pairs], dtype=np.float64)
        chances = [c for _, c in pairs if c is not None]
        with np.errstate(invalid="ignore"):
            rows.append(make_record(
                dataset, protector, metric_name, vals.mean(), attacker=attacker, mode=mode,
                level=level, std=vals.std(), n_folds=len(vals),
                chance=np.mean(chances) if chances else None,
            ))
    frame = pd.DataFrame(rows, columns=RECORD_KEYS)
    attack_figures = [
        metric_name for metric_name in frame["metric"].unique()
        if metric_name.startswith(f"{sensitive_name}_")
    ]

    # -- recording level: the pooling rule that works best for each attacker -------
    pooled = frame["level"].astype(str).str.startswith("recording:")
    best_rule = []
    for _, cell in frame[pooled].groupby(["protector", "attacker", "mode"], sort=False):
        best_rule += _strongest(cell, advantage_name, attack_figures, key="level",
                                rename={"level": "recording"})
    if best_rule:
        frame = pd.concat([frame, pd.DataFrame(best_rule, columns=RECORD_KEYS)],
                          ignore_index=True)

    # -- headline rows: the strongest app, the strongest attacker ----------------
    headline = []
    for _, part in frame.groupby("protector", sort=False):
        for utility_metric in ("activity_macro_f1", "activity_macro_f1_raw_app"):
            headline += _strongest(part, utility_metric, [utility_metric],
                                   rename={"attacker": BEST_APP})
        attacks = part[part["metric"].isin(attack_figures)]
        for _, cell in attacks.groupby(["mode", "level"], sort=False):
            headline += _strongest(cell, advantage_name, attack_figures,
                                   rename={"attacker": WORST_ATTACKER})
    if headline:
        frame = pd.concat([frame, pd.DataFrame(headline, columns=RECORD_KEYS)],
                          ignore_index=True)
    return frame
