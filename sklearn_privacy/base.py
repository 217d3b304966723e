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
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _check_feature_names,
    _check_feature_names_in,
    _generate_get_feature_names_out,
    check_is_fitted,
    column_or_1d,
)

from .utils._torch import (
    TorchPickleMixin,
    check_random_state_local,
    draw_seed,
    resolve_device,
    torch_random_context,
)
from .utils.validation import (
    check_class_labels,
    check_images,
    restore_motion_layout,
    validate_motion_windows,
)

__all__ = ["BaseProtector"]


def _ndim(X):
    """Number of dimensions of array-like ``X`` (DataFrames and lists included)."""
    ndim = getattr(X, "ndim", None)
    return ndim if ndim is not None else np.ndim(np.asarray(X, dtype=object))


def _fitted_on_a_table(protector):
    """Whether the protector was fitted on 2-D motion input, so its output is a table."""
    return getattr(protector, "_table_output", False)


class BaseProtector(TorchPickleMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Scikit-learn contract shared by all protectors.

    :meth:`fit` is a template method: it validates ``X``, then ``y``, then
    ``sensitive_features`` (always in that order, with errors that name the parameter),
    resolves ``device_``, and calls the subclass's ``_fit`` inside a local random
    context. Subclasses store their parameters in ``__init__`` (and nothing else),
    declare ``_parameter_constraints``, implement ``_fit`` and :meth:`transform`, set
    ``input_kind`` to ``"motion"`` or ``"image"``, and say how they use the labels with
    ``_y_usage`` and ``_sensitive_usage`` (``"ignored"``, ``"optional"`` or
    ``"required"``).

    Notes
    -----
    - ``fit(X, y=None, *, sensitive_features=None)``: ``y`` is the task label the data
      must stay useful for (e.g. the activity); ``sensitive_features`` is what must be
      hidden (identity, an attribute, several attributes as a 2-D array). The request for
      ``sensitive_features`` is on by default.
    - ``transform(X)`` never needs labels and never changes the fitted state.
    - Motion input is ``(n_windows, n_timestamps, n_channels)``; 2-D input is one channel
      and comes back 2-D (a DataFrame keeps its index; ``set_output(transform="pandas")``
      and :meth:`get_feature_names_out` work on it). Images are ``(n, H, W, 3)`` uint8 or
      float in [0, 1]. Sample count and order are preserved.
    - ``random_state`` controls numpy and torch randomness through local generators:
      fitting never changes the global ``np.random`` or torch random state, and
      ``random_state=None`` draws fresh entropy instead of numpy's global generator.
    - ``device="auto"`` picks CUDA when present and falls back to the CPU silently; an
      explicit ``"cuda"`` on a machine without CUDA is a ``ValueError`` at ``fit``. A
      protector pickled on a GPU loads on a CPU-only machine on the CPU, with a
      ``UserWarning``.
    """

    # Sensitive labels are requested by default: users need no ``set_fit_request``.
    __metadata_request__fit = {"sensitive_features": True}

    _parameter_constraints: dict = {}

    #: ``"motion"`` or ``"image"``; selects input validation and estimator tags.
    input_kind = "motion"

    #: How ``fit`` uses ``y``: ``"ignored"`` (not validated), ``"optional"`` or
    #: ``"required"`` (1-D class labels without NaN, one per sample).
    _y_usage = "ignored"

    #: Fewest classes a given ``y`` must hold.
    _y_min_classes = 1

    #: How ``fit`` uses ``sensitive_features``: ``"ignored"``, ``"optional"`` or
    #: ``"required"``.
    _sensitive_usage = "required"

    def fit(self, X, y=None, *, sensitive_features=None):
        """Fit the protector.

        Parameters
        ----------
        X : array-like
            Motion windows ``(n_windows, n_timestamps, n_channels)`` (2-D input is one
            channel) or images ``(n_images, H, W, 3)``.
        y : array-like of shape (n_samples,), default=None
            Task labels, for protectors that preserve a task.
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes), default=None
            What must be hidden.

        Returns
        -------
        self : object
            The fitted protector.
        """
        return self._fit_template(X, y, sensitive_features)

    @_fit_context(prefer_skip_nested_validation=False)
    def _fit_template(self, X, y, sensitive_features, **fit_params):
        """Validate ``X``, ``y``, ``sensitive_features`` in this order; call ``_fit``."""
        X_valid = self._validate_fit_X(X)
        self._table_output = self.input_kind == "motion" and _ndim(X) == 2
        n_samples = len(X_valid)
        y = self._validate_fit_y(y, n_samples)
        sensitive_features = self._validate_fit_sensitive(sensitive_features, n_samples)
        if hasattr(self, "device"):
            self.device_ = resolve_device(self.device)
        rng = check_random_state_local(getattr(self, "random_state", None))
        with torch_random_context(draw_seed(rng), getattr(self, "device_", "cpu")):
            self._fit(X_valid, y, sensitive_features, rng=rng, **fit_params)
        return self

    def _fit(self, X, y, sensitive_features, *, rng, **fit_params):
        """Fit on validated inputs.

        ``X`` is validated (motion: float32 ``(n, T, d)``; images: float32 in [0, 1]),
        ``y`` and ``sensitive_features`` are validated as the class declares, ``rng`` is
        the local numpy generator of this fit, and torch's generator is already forked
        and seeded from it. Not abstract, so that subclasses written before the
        template method, which override :meth:`fit` itself, keep working.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement _fit(X, y, sensitive_features, *, rng) "
            "(called by BaseProtector.fit after validation), or override fit."
        )

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
        """Set the output container of ``transform`` where the output is a table.

        Windows ``(n_windows, n_timestamps, n_channels)`` and images, which no DataFrame
        can hold, are returned as they are whatever the container; a protector fitted on
        2-D motion input (one channel, one column per timestamp) returns a DataFrame
        with :meth:`get_feature_names_out` as columns. So
        ``pipeline.set_output(transform="pandas")`` works on a
        :class:`~sklearn.pipeline.Pipeline` holding protectors, e.g. in front of
        :class:`~sklearn_privacy.adversaries.MotionFeatures`, whose 2-D output becomes a
        DataFrame.

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
        if transform is not None:
            # scikit-learn's own storage: its transform wrapper reads it.
            if not hasattr(self, "_sklearn_output_config"):
                self._sklearn_output_config = {}
            self._sklearn_output_config["transform"] = transform
        return self

    @available_if(_fitted_on_a_table)
    def get_feature_names_out(self, input_features=None):
        """Names of the output columns, for protectors fitted on 2-D motion input.

        A protector fitted on 2-D input (one channel, one column per timestamp) returns
        2-D output, with the input's columns when it keeps the window length (else
        ``<classname>0, <classname>1, ...``), so it supports
        ``set_output(transform="pandas")``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input column names; by default ``feature_names_in_`` when fitted on a
            DataFrame with string column names, else ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str

        Notes
        -----
        The method exists only once the protector is fitted on 2-D motion input: the
        output of 3-D windows or images is not a table, and without this method
        scikit-learn's ``set_output`` wrapping leaves it as it is.
        """
        check_is_fitted(self)
        n_out = getattr(self, "n_timestamps_out_", self.n_timestamps_in_)
        if n_out != self.n_timestamps_in_:  # e.g. a shorter output: new column names
            return _generate_get_feature_names_out(self, n_out, input_features=input_features)
        return _check_feature_names_in(self, input_features)

    # -- validation of fit's inputs ---------------------------------------------------
    def _validate_fit_X(self, X):
        if self.input_kind == "image":
            images, _ = self._validate_images(
                X, allow_different_sizes=isinstance(X, (list, tuple))
            )
            return images
        return self._validate_motion(X, reset=True)

    def _validate_fit_y(self, y, n_samples):
        name = type(self).__name__
        if self._y_usage == "ignored":
            return y
        if y is None:
            if self._y_usage == "required":
                raise ValueError(f"{name} requires y to be passed, but the target y is None.")
            return None
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"y has {y.shape[0]} entries but X has {n_samples} samples; pass one label "
                "per sample."
            )
        check_class_labels(y, "y")  # before scikit-learn's checks, which name no parameter
        kind = type_of_target(y, input_name="y", raise_unknown=True)  # "Unknown label type"
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"y must hold class labels (binary or multiclass); got {kind!r} values."
            )
        n_classes = np.unique(y).shape[0]
        if n_classes < self._y_min_classes:
            raise ValueError(
                f"{name} needs y with at least {self._y_min_classes} classes; got "
                f"{n_classes} ({np.unique(y).tolist()})."
            )
        return y

    def _validate_fit_sensitive(self, sensitive_features, n_samples):
        if self._sensitive_usage == "ignored":
            return sensitive_features
        return self._check_sensitive(
            sensitive_features,
            n_samples,
            required=self._sensitive_usage == "required",
            name=type(self).__name__,
        )

    # -- helpers for subclasses -------------------------------------------------
    def _validate_motion(self, X, *, reset):
        """Validate motion windows; on ``reset`` record their shape (and column names)."""
        X_valid = validate_motion_windows(self, X, reset=reset)
        _check_feature_names(self, X, reset=reset)
        return X_valid

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
        return check_class_labels(s, "sensitive_features")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = self.input_kind == "motion"
        # Image protectors take (n, H, W, 3) images only: declaring no 2-D support makes
        # scikit-learn skip its tabular-data checks instead of failing them.
        tags.input_tags.two_d_array = self.input_kind == "motion"
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        tags.target_tags.required = self._y_usage == "required"
        if tags.transformer_tags is not None:
            # Torch-backed protectors compute in float32; outputs are float32.
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
