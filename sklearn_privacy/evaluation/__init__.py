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
  :func:`make_attackers`, :func:`make_apps`, :func:`summary_table`,
  :func:`write_outputs`: the job behind ``sklearn-privacy evaluate motion``, and its
  name tables :data:`PROTECTORS`, :data:`ATTACKERS`, :data:`APPS` (with their
  defaults) and :data:`PROFILES`.
- :func:`evaluate_image`, :func:`load_image_task`, :func:`write_image_outputs`,
  :func:`image_summary_rows`, :func:`format_image_table` and the tables
  :data:`IMAGE_METHODS`, :data:`IMAGE_PROFILES`, :data:`IMAGE_ATTACKED`: the job behind
  ``sklearn-privacy evaluate image``.
- :func:`image_privacy_report`: image protectors against the attacked classifier,
  unseen architectures, robustness transforms and adaptive attackers, with quality and
  PSNR-matched references; :func:`matched_psnr_noise`, :func:`matched_psnr_blur`.
- :func:`choose_protector` and :func:`fit_chosen_protector` pick the protector to
  deploy from a report (rules :data:`CHOOSE_RULES`) and fit it on all the data.
"""

import importlib

# The command's ``--help`` reads the job's name tables from here without loading numpy,
# pandas, scikit-learn or torch: only ``_jobs`` (light at import) is imported at once,
# the other names on first use.
from ._jobs import (
    APPS,
    ATTACKERS,
    CHOOSE_RULES,
    DEFAULT_APPS,
    DEFAULT_ATTACKERS,
    DEFAULT_PROTECTORS,
    PROFILES,
    PROTECTORS,
    choose_protector,
    evaluate_motion,
    fit_chosen_protector,
    load_motion_task,
    make_apps,
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
    "IMAGE_REFERENCES": "_image",
    "IMAGE_ROBUSTNESS": "_image",
    "image_privacy_report": "_image",
    "matched_psnr_blur": "_image",
    "matched_psnr_noise": "_image",
    # The image job behind ``sklearn-privacy evaluate image`` (public name: (module,
    # name in the module)).
    "IMAGE_ATTACKED": ("_image_job", "ATTACKED"),
    "IMAGE_METHODS": ("_image_job", "METHODS"),
    "IMAGE_PROFILES": ("_image_job", "PROFILES"),
    "evaluate_image": "_image_job",
    "format_image_table": ("_image_job", "format_table"),
    "image_summary_rows": ("_image_job", "summary_rows"),
    "load_image_task": "_image_job",
    "write_image_outputs": "_image_job",
}

__all__ = [
    "APPS",
    "IMAGE_ATTACKED",
    "IMAGE_METHODS",
    "IMAGE_PROFILES",
    "IMAGE_REFERENCES",
    "IMAGE_ROBUSTNESS",
    "ATTACKERS",
    "BEST_APP",
    "CHOOSE_RULES",
    "DEFAULT_APPS",
    "DEFAULT_ATTACKERS",
    "DEFAULT_PROTECTORS",
    "PROFILES",
    "PROTECTORS",
    "PrivacyUtilityDisplay",
    "RECORD_KEYS",
    "WORST_ATTACKER",
    "choose_protector",
    "environment_record",
    "evaluate_image",
    "evaluate_motion",
    "format_image_table",
    "image_privacy_report",
    "image_summary_rows",
    "load_image_task",
    "fit_chosen_protector",
    "load_motion_task",
    "make_apps",
    "make_attackers",
    "make_protectors",
    "make_record",
    "matched_psnr_blur",
    "matched_psnr_noise",
    "privacy_utility_report",
    "summary_table",
    "write_benchmark_records",
    "write_image_outputs",
    "write_outputs",
]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name] if isinstance(_LAZY[name], tuple) else (
            _LAZY[name], name)
        value = getattr(importlib.import_module(f".{module}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
