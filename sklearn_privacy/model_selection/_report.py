"""The full privacy-utility evaluation of several protectors, as benchmark records.

:func:`privacy_utility_report` runs the threat model of the user guide for each protector:

- *utility* on people the app never saw (subject-disjoint folds): the app retrained on
  protected data (``activity_macro_f1``) and the app trained on raw data
  (``activity_macro_f1_raw_app``), plus distortion (``mse``, ``snr_db``) and the
  protector's ``fit_seconds``;
- *privacy* on other recordings of the same people (recording-disjoint folds): an
  *adaptive* attacker trained on protected training recordings and a *static* attacker
  trained on raw training recordings, both tested on protected test recordings, at
  window and recording level.

The protector is always fitted on the training side of the fold only. The result is a
tidy DataFrame whose columns are the benchmark record keys, so it can be written with
:func:`write_benchmark_records`.
"""

import datetime
import importlib.metadata
import json
import math
import numbers
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import has_fit_parameter

from ..metrics import PrivacyScorer, mse, snr_db
from ..utils.validation import check_window_groups
from ._split import RecordingDisjointSplit, SubjectDisjointSplit

__all__ = [
    "RECORD_KEYS",
    "environment_record",
    "privacy_utility_report",
    "write_benchmark_records",
]

#: The keys every benchmark record has, in order (the benchmark results format).
RECORD_KEYS = [
    "dataset", "protector", "metric", "attacker", "mode", "level",
    "value", "std", "n_folds", "chance",
]

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
    """``{level: attack_score dict}`` of a fitted attacker on (protected) test windows."""
    # X_test is already protected: the scored "pipeline" is the identity.
    scorer = PrivacyScorer(mode="static", static_attacker=fitted, metric=metric,
                           pooling=pooling)
    return scorer.evaluate(_IDENTITY, X_test, sensitive_features=s_test, groups=groups_test,
                           levels=levels)


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


def privacy_utility_report(
    protectors,
    X,
    y,
    sensitive_features,
    *,
    groups,
    app=None,
    attackers=None,
    utility_cv=None,
    privacy_cv=None,
    modes=("adaptive", "static"),
    levels=("window", "recording"),
    sensitive_name="identity",
    metric="auto",
    pooling="auto",
    distortion=True,
    dataset=None,
    random_state=None,
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
        :func:`window_groups` returns. Folds are split by subject (utility) and by
        recording (privacy) and recording-level attacks pool by (subject, recording);
        the segment column only reaches the app and the attackers: one whose ``fit``
        takes ``groups`` receives the rows of its training windows, so its
        early-stopping split can hold out runs of activity rather than whole
        recordings (with one training recording per person, whole people).
    app : classifier, default=None
        The app whose utility is measured; by default
        :class:`~sklearn_privacy.adversaries.TimeSeriesCNNClassifier`.
    attackers : dict of str -> classifier, default=None
        Attackers by name; by default ``{"cnn": TimeSeriesCNNClassifier()}``. An
        attacker whose ``fit`` takes ``groups`` receives the ``groups`` rows of its
        training windows (see ``groups``).
    utility_cv : int or splitter, default=None
        Subject-disjoint folds for utility; default ``SubjectDisjointSplit(n_splits=5)``,
        an int sets ``n_splits``.
    privacy_cv : int or splitter, default=None
        Recording-disjoint folds for privacy; default
        ``RecordingDisjointSplit(n_splits=2)``, an int sets ``n_splits``.
    modes : tuple of {"adaptive", "static"}, default=("adaptive", "static")
        Attacker retrained on protected data, and attacker trained on raw data.
    levels : tuple of {"window", "recording"}, default=("window", "recording")
        Attack single windows, and whole recordings (pooled log-probabilities).
    sensitive_name : str, default="identity"
        Prefix of the privacy metric names (``identity_accuracy``,
        ``gender_balanced_accuracy``, ``identity_advantage``).
    metric : {"auto", "accuracy", "balanced_accuracy"}, default="auto"
        Attack score; ``"auto"`` is balanced accuracy for a binary attribute.
    pooling : {"auto", "log_proba", "vote"}, default="auto"
        Recording-level pooling (see :class:`~sklearn_privacy.metrics.PrivacyScorer`).
    distortion : bool, default=True
        Also report ``mse`` and ``snr_db`` between raw and protected test windows
        (skipped for protectors that change the shape).
    dataset : str, default=None
        Value of the ``dataset`` column.
    random_state : int, default=None
        Seeds the default app and attackers.
    verbose : int, default=0
        Print progress when positive.

    Returns
    -------
    report : DataFrame
        One row per (protector, metric, attacker, mode, level) with columns
        :data:`RECORD_KEYS`: ``value`` is the mean over folds, ``std`` the standard
        deviation over folds, ``n_folds`` their number and ``chance`` the mean chance
        level of attack scores (majority-class rate for accuracy, ``1 / n_classes`` for
        balanced accuracy; None elsewhere). ``{sensitive_name}_advantage`` rows hold
        the advantage over chance (see
        :func:`~sklearn_privacy.metrics.attacker_advantage`). Write it with
        ``write_benchmark_records(report, ...)``.

    Notes
    -----
    Cost: for each protector and fold, one protector fit, one app fit (utility folds)
    and one adaptive attacker fit per attacker (privacy folds); the raw-data app and the
    static attackers are trained once per fold and shared by all protectors. For a
    protector that is ``"raw"``, the adaptive attacker *is* the static one.
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
    app = _default_cnn(random_state) if app is None else app
    attackers = {"cnn": _default_cnn(random_state)} if attackers is None else dict(attackers)
    if not attackers:
        raise ValueError("attackers must hold at least one attacker.")
    utility_cv = _splitter(utility_cv, SubjectDisjointSplit)
    privacy_cv = _splitter(privacy_cv, RecordingDisjointSplit)
    if metric == "auto":
        metric = "balanced_accuracy" if len(np.unique(s)) == 2 else "accuracy"
    resolved_metric = metric

    values = {}  # (protector, metric, attacker, mode, level) -> list of (value, chance)

    def add(key, value, chance=None):
        values.setdefault(key, []).append((value, chance))

    def log(message):
        if verbose > 0:
            print(f"[privacy_utility_report] {message}", flush=True)

    # -- utility: other people ---------------------------------------------------
    raw_apps = {}
    for fold, (train, test) in enumerate(utility_cv.split(X, y, groups)):
        X_tr, X_te = _safe_indexing(X, train), _safe_indexing(X, test)
        for name, protector in protectors.items():
            log(f"utility fold {fold}: {name}")
            if _is_raw(protector):
                Xp_tr, Xp_te, fit_seconds = X_tr, X_te, 0.0
            else:
                start = time.perf_counter()
                fitted = _fit_protector(protector, X_tr, y[train], s[train])
                fit_seconds = time.perf_counter() - start
                Xp_tr, Xp_te = fitted.transform(X_tr), fitted.transform(X_te)
            add((name, "fit_seconds", None, None, None), fit_seconds)
            # Apps (like attackers) get the groups rows for a grouped early-stopping split.
            app_p = _fit_model(app, Xp_tr, y[train], groups[train])
            add((name, "activity_macro_f1", None, None, None),
                f1_score(y[test], app_p.predict(Xp_te), average="macro"))
            if fold not in raw_apps:
                raw_apps[fold] = _fit_model(app, X_tr, y[train], groups[train])
            add((name, "activity_macro_f1_raw_app", None, None, None),
                f1_score(y[test], raw_apps[fold].predict(Xp_te), average="macro"))
            if distortion and np.shape(Xp_te) == np.shape(X_te):
                add((name, "mse", None, None, None), mse(X_te, Xp_te))
                add((name, "snr_db", None, None, None), snr_db(X_te, Xp_te))
        raw_apps.pop(fold, None)

    # -- privacy: same people, other recordings ----------------------------------
    score_name = f"{sensitive_name}_{resolved_metric}"
    for fold, (train, test) in enumerate(privacy_cv.split(X, s, groups)):
        X_tr, X_te = _safe_indexing(X, train), _safe_indexing(X, test)
        static = {}
        for name, protector in protectors.items():
            log(f"privacy fold {fold}: {name}")
            raw = _is_raw(protector)
            if raw:
                Xp_tr, Xp_te = X_tr, X_te
            else:
                fitted = _fit_protector(protector, X_tr, y[train], s[train])
                Xp_tr, Xp_te = fitted.transform(X_tr), fitted.transform(X_te)
            for att_name, attacker in attackers.items():
                for mode in modes:
                    if mode == "static" or raw:
                        if att_name not in static:
                            static[att_name] = _fit_model(
                                attacker, X_tr, s[train], groups[train]
                            )
                        model = static[att_name]
                    else:
                        model = _fit_model(attacker, Xp_tr, s[train], groups[train])
                    scores = _attack_scores(
                        model, Xp_te, s[test], groups[test],
                        metric=resolved_metric, pooling=pooling, levels=levels,
                    )
                    for level, result in scores.items():
                        add((name, score_name, att_name, mode, level),
                            result["score"], result["chance"])
                        add((name, f"{sensitive_name}_advantage", att_name, mode, level),
                            result["advantage"])

    rows = []
    for (protector, metric_name, attacker, mode, level), pairs in values.items():
        vals = np.array([v for v, _ in pairs], dtype=np.float64)
        chances = [c for _, c in pairs if c is not None]
        with np.errstate(invalid="ignore"):
            rows.append({
                "dataset": dataset,
                "protector": protector,
                "metric": metric_name,
                "attacker": attacker,
                "mode": mode,
                "level": level,
                "value": float(vals.mean()),
                "std": float(vals.std()),
                "n_folds": int(len(vals)),
                "chance": float(np.mean(chances)) if chances else None,
            })
    return pd.DataFrame(rows, columns=RECORD_KEYS)


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def environment_record(dataset=None):
    """The ``metric: "environment"`` record: versions, machine and date of a run.

    Parameters
    ----------
    dataset : str, default=None
        Value of the ``dataset`` key.

    Returns
    -------
    record : dict
        The :data:`RECORD_KEYS` (``metric="environment"``, the others None) plus
        ``python``, ``numpy``, ``scipy``, ``pandas``, ``sklearn``, ``torch``, ``skorch``,
        ``tslearn``, ``sklearn_privacy`` versions, ``platform``, ``cpu`` (model name),
        ``n_cpus``, ``gpu`` (CUDA device name, or None) and ``date`` (UTC, ISO 8601).
    """
    record = dict.fromkeys(RECORD_KEYS)
    record.update(dataset=dataset, metric="environment")
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    record.update(
        python=platform.python_version(),
        numpy=_version("numpy"),
        scipy=_version("scipy"),
        pandas=_version("pandas"),
        sklearn=_version("scikit-learn"),
        torch=_version("torch"),
        skorch=_version("skorch"),
        tslearn=_version("tslearn"),
        sklearn_privacy=_version("sklearn-privacy"),
        platform=platform.platform(),
        cpu=_cpu_model(),
        n_cpus=os.cpu_count(),
        gpu=gpu,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return record


def _json_safe(value):
    """Plain Python value for JSON: numpy scalars unwrapped, NaN and infinity -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_benchmark_records(records, path_json, path_md=None, *, environment=True):
    """Write benchmark records as a JSON list and a Markdown table.

    Parameters
    ----------
    records : DataFrame or list of dict
        E.g. the output of :func:`privacy_utility_report`; each record has at least the
        :data:`RECORD_KEYS`.
    path_json : str or path-like
        The JSON file (a list of records); parent folders are created.
    path_md : str or path-like, default=None
        The Markdown file; by default ``path_json`` with the suffix ``.md``.
    environment : bool, default=True
        Append :func:`environment_record` unless a record with
        ``metric == "environment"`` is already there.

    Returns
    -------
    records : list of dict
        What was written. Non-finite numbers (NaN, infinity) are written as ``null``.
    """
    if isinstance(records, pd.DataFrame):
        records = records.to_dict(orient="records")
    records = [{key: _json_safe(value) for key, value in dict(r).items()} for r in records]
    for record in records:
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            raise ValueError(f"A record lacks the keys {missing}: {record}")
    if environment and not any(r.get("metric") == "environment" for r in records):
        dataset = next((r.get("dataset") for r in records if r.get("dataset")), None)
        records.append({k: _json_safe(v) for k, v in environment_record(dataset).items()})

    path_json = Path(path_json)
    path_md = path_json.with_suffix(".md") if path_md is None else Path(path_md)
    for path in (path_json, path_md):
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path_json, "w") as f:
        json.dump(records, f, indent=2)
        f.write("\n")

    figures = [r for r in records if r.get("metric") != "environment"]
    envs = [r for r in records if r.get("metric") == "environment"]
    extra = [k for r in figures for k in r if k not in RECORD_KEYS]
    columns = RECORD_KEYS + list(dict.fromkeys(extra))
    lines = [f"# {path_json.stem}", ""]
    for env in envs:
        details = ", ".join(
            f"{key} {env[key]}" for key in env
            if key not in RECORD_KEYS and env[key] is not None
        )
        lines += [f"Environment: {details}.", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in figures:
        lines.append("| " + " | ".join(_cell(r.get(key)) for key in columns) + " |")
    path_md.write_text("\n".join(lines) + "\n")
    return records
