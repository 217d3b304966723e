"""Splitters and trade-off search for protectors.

- :class:`RecordingDisjointSplit` (same people, other recordings: for attackers),
  :class:`SubjectDisjointSplit` (other people: for utility), :func:`window_groups`.
- :func:`pareto_front`, :func:`best_utility_with_privacy_floor`,
  :func:`best_privacy_with_utility_floor`: choose a point of a ``GridSearchCV`` scored
  with ``{"utility": ..., "privacy": PrivacyScorer(...)}``.

The evaluation report, the benchmark records and the trade-off plot are in
:mod:`sklearn_privacy.evaluation`.
"""

from ._search import (
    best_privacy_with_utility_floor,
    best_utility_with_privacy_floor,
    pareto_front,
)
from ._split import RecordingDisjointSplit, SubjectDisjointSplit, window_groups

__all__ = [
    "RecordingDisjointSplit",
    "SubjectDisjointSplit",
    "best_privacy_with_utility_floor",
    "best_utility_with_privacy_floor",
    "pareto_front",
    "window_groups",
]
