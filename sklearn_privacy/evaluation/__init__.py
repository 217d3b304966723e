"""Evaluation of protectors: reports, benchmark records, the trade-off plot, the CLI jobs.

This layer sits above :mod:`sklearn_privacy.metrics` and
:mod:`sklearn_privacy.model_selection`, and below the command line.

- :func:`privacy_utility_report`: utility on people the apps never saw and privacy
  against adaptive and static attackers on other recordings of the same people, per
  window and per recording, with headline rows for the strongest app (``"best"``) and
  the worst-case attacker (``"worst"``).
- :data:`RECORD_KEYS`, :func:`make_record`, :func:`environment_record`,
  :func:`write_benchmark_records`: the benchmark record format, its one builder, and
  its writer (JSON and Markdown).
- :class:`PrivacyUtilityDisplay`: the privacy-utility plot (search candidates, fitted
  pipelines, or a report's protectors with the chance line and the chosen point).
- :func:`evaluate_motion`, :func:`load_motion_task`, :func:`make_protectors`,
  :func:`make_attackers`, :func:`summary_table`, :func:`write_outputs`: the job behind
  ``sklearn-privacy evaluate motion``, and its name tables :data:`PROTECTORS`,
  :data:`DEFAULT_PROTECTORS`, :data:`ATTACKERS` and :data:`PROFILES`;
  :func:`choose_protector` and :func:`fit_chosen_protector` pick the protector to deploy
  from a report (rules :data:`CHOOSE_RULES`) and fit it on all the data.
"""

import importlib

# The command's ``--help`` reads the job's name tables from here without loading numpy,
# pandas, scikit-learn or torch: only ``_jobs`` (light at import) is imported at once,
# the other names on first use.
from ._jobs import (
    ATTACKERS,
    CHOOSE_RULES,
    DEFAULT_PROTECTORS,
    PROFILES,
    PROTECTORS,
    choose_protector,
    evaluate_motion,
    fit_chosen_protector,
    load_motion_task,
    make_attackers,
    make_protectors,
    summary_table,
    write_outputs,
)

_LAZY = {
    "BEST_APP": "_motion",
    "WORST_ATTACKER": "_motion",
    "privacy_utility_report": "_motion",
    "PrivacyUtilityDisplay": "_plot",
    "RECORD_KEYS": "_records",
    "environment_record": "_records",
    "make_record": "_records",
    "write_benchmark_records": "_records",
}

__all__ = [
    "ATTACKERS",
    "BEST_APP",
    "CHOOSE_RULES",
    "DEFAULT_PROTECTORS",
    "PROFILES",
    "PROTECTORS",
    "PrivacyUtilityDisplay",
    "RECORD_KEYS",
    "WORST_ATTACKER",
    "choose_protector",
    "environment_record",
    "evaluate_motion",
    "fit_chosen_protector",
    "load_motion_task",
    "make_attackers",
    "make_protectors",
    "make_record",
    "privacy_utility_report",
    "summary_table",
    "write_benchmark_records",
    "write_outputs",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
