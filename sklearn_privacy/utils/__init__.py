"""Utilities: input validation, torch helpers, estimator checks, the model cache."""

from ._cache import cache_key, fit_or_load_cached, get_cache_dir
from .validation import check_images, check_motion_windows

__all__ = [
    "cache_key",
    "check_images",
    "check_motion_windows",
    "fit_or_load_cached",
    "get_cache_dir",
]
