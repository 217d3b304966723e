"""Base class of every protector.

A protector is a scikit-learn transformer that alters motion windows or images so that
the wanted inference (the activity, the picture's content) still works and an unwanted one
(identity, gender, the private scene) fails. Sensitive labels reach ``fit`` through
metadata routing and are requested by default, so a protector works inside a
:class:`~sklearn.pipeline.Pipeline` and :class:`~sklearn.model_selection.GridSearchCV`
with ``sklearn.set_config(enable_metadata_routing=True)`` without ``set_fit_request``.
"""

from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from .utils._torch import resolve_device, seed_torch
from .utils.validation import check_images, restore_motion_layout, validate_motion_windows

__all__ = ["BaseProtector"]


class BaseProtector(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Scikit-learn contract shared by all protectors.

    Subclasses store their parameters in ``__init__`` (and nothing else), declare
    ``_parameter_constraints``, implement :meth:`fit` and :meth:`transform`, and set
    ``input_kind`` to ``"motion"`` or ``"image"``.

    Notes
    -----
    Conventions:

    - ``fit(X, y=None, *, sensitive_features=None)``: ``y`` is the task label the data
      must stay useful for (e.g. the activity); ``sensitive_features`` is what must be
      hidden (identity, an attribute, several attributes as a 2-D array). The request for
      ``sensitive_features`` is on by default.
    - ``transform(X)`` never needs labels.
    - Motion input is ``(n_windows, n_timestamps, n_channels)``; 2-D input is one channel.
      Images are ``(n, H, W, 3)`` uint8 or float in [0, 1]. Sample count and order are
      preserved.
    - ``random_state`` seeds numpy and torch; ``device="auto"`` picks CUDA when present.
    """

    # Sensitive labels are requested by default: users need no ``set_fit_request``.
    __metadata_request__fit = {"sensitive_features": True}

    #: ``"motion"`` or ``"image"``; selects input validation and estimator tags.
    input_kind = "motion"

    @abstractmethod
    def fit(self, X, y=None, *, sensitive_features=None):
        """Fit the protector."""

    @abstractmethod
    def transform(self, X):
        """Protect ``X``."""

    def fit_transform(self, X, y=None, *, sensitive_features=None):
        """Fit to ``X`` and return its protected version.

        Parameters
        ----------
        X : array-like
            Motion windows or images, see the class docstring.
        y : array-like of shape (n_samples,), default=None
            Task labels, for protectors that preserve a task.
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes), default=None
            What must be hidden.

        Returns
        -------
        X_protected : ndarray
        """
        return self.fit(X, y, sensitive_features=sensitive_features).transform(X)

    def set_output(self, *, transform=None):
        """Accept an output container for compatibility; protected data are unchanged.

        A protector outputs windows ``(n_windows, n_timestamps, n_channels)`` or images,
        which no DataFrame can hold, so its output is returned as it is whatever the
        container. The method exists so that ``pipeline.set_output(transform="pandas")``
        works on a :class:`~sklearn.pipeline.Pipeline` holding protectors, e.g. in front
        of :class:`~sklearn_privacy.adversaries.MotionFeatures`, whose 2-D output becomes
        a DataFrame.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            The container asked for the output of ``transform`` and
            ``fit_transform``; it does not apply to windows or images.

        Returns
        -------
        self : estimator
        """
        if transform not in (None, "default", "pandas", "polars"):
            raise ValueError(
                "transform must be 'default', 'pandas', 'polars' or None; got "
                f"{transform!r}."
            )
        return self

    # -- helpers for subclasses -------------------------------------------------
    def _validate_motion(self, X, *, reset):
        """Validate motion windows; on ``reset`` record their shape."""
        return validate_motion_windows(self, X, reset=reset)

    @staticmethod
    def _restore_motion(Xt, X):
        return restore_motion_layout(Xt, X)

    @staticmethod
    def _validate_images(X, *, allow_different_sizes=False):
        return check_images(X, allow_different_sizes=allow_different_sizes)

    @staticmethod
    def _check_sensitive(sensitive_features, n_samples, *, required=True, name=None):
        """Validate sensitive labels against the number of samples.

        Returns ``None`` when absent and not required; raises a clear error when a
        protector that needs them did not receive them (the usual cause is metadata
        routing being off in a meta-estimator).
        """
        if sensitive_features is None:
            if required:
                raise ValueError(
                    f"{name or 'This protector'} needs sensitive_features in fit. Pass "
                    "fit(X, y, sensitive_features=s), or inside a Pipeline/GridSearchCV "
                    "enable routing with sklearn.set_config(enable_metadata_routing=True) "
                    "and pass sensitive_features=s to the meta-estimator's fit."
                )
            return None
        s = np.asarray(sensitive_features)
        if s.ndim not in (1, 2):
            raise ValueError(f"sensitive_features must be 1-D or 2-D; got shape {s.shape}.")
        if s.shape[0] != n_samples:
            raise ValueError(
                f"sensitive_features has {s.shape[0]} rows but X has {n_samples} samples."
            )
        if s.dtype.kind == "f" and not np.all(np.isfinite(s)):
            raise ValueError("sensitive_features contains NaN or infinity.")
        return s

    def _fit_setup(self):
        """Seed numpy/torch and resolve the device at the start of ``fit``."""
        self._rng = seed_torch(getattr(self, "random_state", None))
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        return self._rng

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = self.input_kind == "motion"
        # Image protectors take (n, H, W, 3) images only: declaring no 2-D support makes
        # scikit-learn skip its tabular-data checks instead of failing them.
        tags.input_tags.two_d_array = self.input_kind == "motion"
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        if tags.transformer_tags is not None:
            # Torch-backed protectors compute in float32; outputs are float32.
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
