"""Utilities: input validation, torch helpers, estimator checks."""

from .validation import check_images, check_motion_windows

__all__ = ["check_images", "check_motion_windows"]
