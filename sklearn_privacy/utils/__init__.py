"""Utilities: input validation, chunked transforms, the model cache, torch helpers,
estimator checks."""

from ._cache import cache_key, fit_or_load_cached, get_cache_dir
from .chunked import chunked_transform, dask_transform, transform_image_folder
from .validation import check_images, check_motion_windows

__all__ = [
    "cache_key",
    "check_images",
    "check_motion_windows",
    "chunked_transform",
    "dask_transform",
    "fit_or_load_cached",
    "get_cache_dir",
    "transform_image_folder",
]
