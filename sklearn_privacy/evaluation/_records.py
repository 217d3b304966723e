"""Benchmark records: one builder, the environment record, and the writer.

A benchmark record is a dict with the keys :data:`RECORD_KEYS` (``dataset``,
``protector``, ``metric``, ``attacker``, ``mode``, ``level``, ``value``, ``std``,
``n_folds``, ``chance``) plus any extra keys. :func:`make_record` builds one,
:func:`environment_record` describes the machine and versions of a run, and
:func:`write_benchmark_records` writes a list of records as JSON and Markdown.
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "RECORD_KEYS",
    "environment_record",
    "make_record",
    "write_benchmark_records",
]

#: The keys every benchmark record has, in order (the benchmark results format).
RECORD_KEYS = [
    "dataset", "protector", "metric", "attacker", "mode", "level",
    "value", "std", "n_folds", "chance",
]


def _float_or_none(value, name):
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or None; got {value!r}.") from None


def make_record(dataset, protector, metric, value, *, attacker=None, mode=None, level=None,
                std=None, n_folds=None, chance=None, **extra):
    """One benchmark record.

    Parameters
    ----------
    dataset : str or None
        Data set the figure was measured on.
    protector : str or None
        Name of the protector (``"raw"`` for none).
    metric : str
        Name of the figure, e.g. ``"activity_macro_f1"`` or ``"identity_advantage"``.
    value : float or None
        The figure (a mean over folds when there are several).
    attacker, mode, level : str, default=None
        For privacy figures: the attacker's name, ``"adaptive"`` or ``"static"``, and
        ``"window"`` or ``"recording"``.
    std : float, default=None
        Standard deviation over folds.
    n_folds : int, default=None
        Number of folds behind ``value``.
    chance : float, default=None
        Chance level of an attack score.
    **extra
        Further keys (e.g. ``profile``), written after the :data:`RECORD_KEYS`.

    Returns
    -------
    record : dict
        The :data:`RECORD_KEYS` in order, then ``extra``; numbers as Python floats.

    Examples
    --------
    >>> from sklearn_privacy.evaluation import make_record
    >>> make_record("hapt", "raw", "activity_macro_f1", 0.9, n_folds=2)["value"]
    0.9
    """
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be a non-empty string; got {metric!r}.")
    clash = sorted(set(extra) & set(RECORD_KEYS))
    if clash:  # pragma: no cover - Python refuses duplicate keywords first
        raise ValueError(f"extra keys {clash} are record keys.")
    return {
        "dataset": dataset,
        "protector": protector,
        "metric": metric,
        "attacker": attacker,
        "mode": mode,
        "level": level,
        "value": _float_or_none(value, "value"),
        "std": _float_or_none(std, "std"),
        "n_folds": None if n_folds is None else int(n_folds),
        "chance": _float_or_none(chance, "chance"),
        **extra,
    }


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
