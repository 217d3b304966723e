"""Evaluation protocols of the library, as benchmark records.

- :func:`image_privacy_report`: image protectors against the attacked classifier,
  unseen architectures, robustness transforms and adaptive attackers, with quality and
  PSNR-matched references; :func:`matched_psnr_noise`, :func:`matched_psnr_blur`.

The names load on first use, so that the command line's job tables
(``sklearn-privacy evaluate image --help``) are read without numpy or torch.
"""

import importlib

_LAZY = {
    "IMAGE_REFERENCES": "._image",
    "IMAGE_ROBUSTNESS": "._image",
    "image_privacy_report": "._image",
    "matched_psnr_blur": "._image",
    "matched_psnr_noise": "._image",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
