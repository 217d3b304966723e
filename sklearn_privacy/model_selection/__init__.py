"""Splitters, trade-off search and evaluation protocol for protectors.

- :class:`RecordingDisjointSplit` (same people, other recordings: for attackers),
  :class:`SubjectDisjointSplit` (other people: for utility), :func:`window_groups`.
- :func:`pareto_front`, :func:`best_utility_with_privacy_floor`,
  :func:`best_privacy_with_utility_floor`: choose a point of a ``GridSearchCV`` scored
  with ``{"utility": ..., "privacy": PrivacyScorer(...)}``.
- :class:`PrivacyUtilityDisplay`: the trade-off plot.
- :func:`privacy_utility_report`, :func:`write_benchmark_records`,
  :func:`environment_record`: the full evaluation as benchmark records.
"""

from ._plot import PrivacyUtilityDisplay
from ._report import (
    RECORD_KEYS,
    environment_record,
    privacy_utility_report,
    write_benchmark_records,
)
from ._search import (
    best_privacy_with_utility_floor,
    best_utility_with_privacy_floor,
    pareto_front,
)
from ._split import RecordingDisjointSplit, SubjectDisjointSplit, window_groups

__all__ = [
    "RECORD_KEYS",
    "PrivacyUtilityDisplay",
    "RecordingDisjointSplit",
    "SubjectDisjointSplit",
    "best_privacy_with_utility_floor",
    "best_utility_with_privacy_floor",
    "environment_record",
    "pareto_front",
    "privacy_utility_report",
    "window_groups",
    "write_benchmark_records",
]
