"""Utilities: input validation, chunked transforms, torch helpers, estimator checks."""

from .chunked import chunked_transform, dask_transform, transform_image_folder
from .validation import check_images, check_motion_windows

__all__ = [
    "check_images",
    "check_motion_windows",
    "chunked_transform",
    "dask_transform",
    "transform_image_folder",
]
