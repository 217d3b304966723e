"""Signal-processing baselines from the motion-anonymization papers.

They do not look at any label: ``fit`` only learns the window shape (and, for
:class:`GaussianNoise`, the per-channel scale). They are the reference points every learned
protector must beat on the privacy-utility frontier.
"""

from numbers import Integral, Real

import numpy as np
from scipy import signal
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..base import BaseProtector
from ..utils.estimator_checks import register_estimator_check_config
from ._aae import _output_dtype

__all__ = ["Downsampler", "GaussianNoise", "SSASmoother"]


class _StatelessMotionProtector(BaseProtector):
    """A protector whose ``fit`` only records the window shape.

    Like every protector it requests ``sensitive_features`` in ``fit`` (and ignores
    them), so a :class:`~sklearn.pipeline.Pipeline` with metadata routing accepts them
    whichever protector it holds.
    """

    _y_usage = "ignored"
    _sensitive_usage = "ignored"

    def fit(self, X, y=None, *, sensitive_features=None):
        """Record the window shape; no label is used.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows.
        y : Ignored
        sensitive_features : Ignored

        Returns
        -------
        self : object
        """
        return self._fit_template(X, y, sensitive_features)

    def _fit(self, X, y, sensitive_features, *, rng):
        self._check_params_against(X)

    def _check_params_against(self, X):
        """Hook for parameter checks that depend on the data shape."""

    def transform(self, X):
        """Protect motion windows.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows shaped like the training windows.

        Returns
        -------
        X_protected : ndarray of the same shape and layout as ``X``
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        X_valid = self._validate_motion(X, reset=False)
        Xt = self._transform(X_valid).astype(_output_dtype(X), copy=False)
        return self._restore_motion(Xt, X)

    def _transform(self, X):
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class Downsampler(_StatelessMotionProtector):
    """Low-pass each window by FFT resampling to a lower rate.

    The published baseline: resampling 50 Hz windows to 10 Hz or 5 Hz removes the fine
    gait detail that identifies people. With ``restore_length=True`` the result is
    resampled back to the original length, so it can replace the raw windows in front of
    any model.

    Parameters
    ----------
    target_rate : float, default=10.0
        Sampling rate after downsampling, in Hz. Must not exceed ``sampling_rate``.
    sampling_rate : float, default=50.0
        Sampling rate of the input windows, in Hz.
    restore_length : bool, default=True
        Resample back to the input length (band-limited, same rate as the input).

    Attributes
    ----------
    n_timestamps_in_, n_channels_in_ : int
        Shape of the training windows.
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.
    n_timestamps_out_ : int
        Length of the output windows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import Downsampler
    >>> X = np.random.default_rng(0).normal(size=(4, 128, 2))
    >>> Downsampler(target_rate=10).fit_transform(X).shape
    (4, 128, 2)
    >>> Downsampler(target_rate=10, restore_length=False).fit_transform(X).shape
    (4, 26, 2)
    """

    _parameter_constraints = {
        "target_rate": [Interval(Real, 0, None, closed="neither")],
        "sampling_rate": [Interval(Real, 0, None, closed="neither")],
        "restore_length": ["boolean"],
    }

    def __init__(self, target_rate=10.0, sampling_rate=50.0, restore_length=True):
        self.target_rate = target_rate
        self.sampling_rate = sampling_rate
        self.restore_length = restore_length

    def _check_params_against(self, X):
        if self.target_rate > self.sampling_rate:
            raise ValueError(
                f"target_rate={self.target_rate} Hz exceeds sampling_rate={self.sampling_rate} Hz: "
                "Downsampler only lowers the rate."
            )
        n_low = max(1, int(round(X.shape[1] * self.target_rate / self.sampling_rate)))
        self._n_low = n_low
        self.n_timestamps_out_ = X.shape[1] if self.restore_length else n_low

    def _transform(self, X):
        low = signal.resample(X, self._n_low, axis=1)
        if self.restore_length:
            low = signal.resample(low, X.shape[1], axis=1)
        return low


class SSASmoother(_StatelessMotionProtector):
    """Singular spectrum analysis smoothing of every channel of every window.

    Each channel of each window is embedded in an ``L x K`` trajectory matrix
    (``L = embedding_window``, ``K = T - L + 1``), projected on its first
    ``n_components`` singular vectors and mapped back to a series by anti-diagonal
    averaging: the result of an SVD of every trajectory matrix, computed by a compiled
    kernel instead.

    Parameters
    ----------
    n_components : int, default=1
        Number of leading components kept (the papers use 1 and 2).
    embedding_window : int, default=10
        Embedding dimension ``L``; at most the window length.

    Attributes
    ----------
    n_timestamps_in_, n_channels_in_ : int
        Shape of the training windows.
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.

    Notes
    -----
    ``transform`` runs a numba kernel, in float64, on 64 series (window, channel) at a
    time, every step in lockstep with the innermost loop over the series (SIMD lanes):

    - the ``L x L`` lag-covariance matrix ``traj @ traj.T``: its first row by one pass
      over the series, the others by adding and removing one product per entry;
    - its leading eigenvectors (the left singular vectors of ``traj``), one component
      at a time on the projection-deflated matrix, exactly whatever the spectrum
      (nearly equal or repeated eigenvalues included): Householder reduction to a
      tridiagonal matrix, its largest eigenvalue by Laguerre's iteration from above
      (monotone, cubically convergent; 3 to 6 steps), the eigenvector by inverse
      iteration with that shift, and back through the reflections. Components whose
      energy is below ``1e-14`` of the series' are left out (they change no output by
      more than ``1e-7`` of its norm);
    - projection and anti-diagonal averaging as a symmetric ``2L - 1``-tap filter in
      the interior (taps: diagonal sums of ``U @ U.T``), the first and last ``L - 1``
      samples averaged from their own trajectory columns.

    The output (float32 precision) agrees with a per-window SVD (``np.linalg.svd`` of each
    trajectory matrix in float64) to about ``1e-7`` of each series' largest magnitude.
    Memory does not grow with the number of windows. The kernel runs on one thread;
    it is compiled on the first ``transform`` (seconds) and cached in
    ``__pycache__`` for later processes; importing the package imports no numba.

    On HAPT windows (128 samples x 2 channels, ``L = 10``) it is about 50 to 100 times
    faster than a loop of ``np.linalg.svd`` per window and channel;
    ``benchmarks/motion_privacy.py --parts speed`` measures both on your machine.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import SSASmoother
    >>> X = np.random.default_rng(0).normal(size=(4, 128, 2))
    >>> SSASmoother(n_components=2).fit_transform(X).shape
    (4, 128, 2)
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "embedding_window": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, n_components=1, embedding_window=10):
        self.n_components = n_components
        self.embedding_window = embedding_window

    def _check_params_against(self, X):
        if self.embedding_window > X.shape[1]:
            raise ValueError(
                f"embedding_window={self.embedding_window} exceeds the window length: got "
                f"windows of {X.shape[1]} samples, i.e. n_features = {X.shape[1]} for 2-D input."
            )
        if self.n_components > self.embedding_window:
            raise ValueError(
                f"n_components={self.n_components} exceeds embedding_window="
                f"{self.embedding_window}."
            )

    def _transform(self, X):
        # Imported here: numba is imported, and the kernel compiled (or loaded from its
        # cache), on the first transform, not when the package is imported.
        from ._ssa_numba import ssa_smooth

        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.empty_like(X)
        ssa_smooth(X, self.embedding_window, self.n_components, out)
        return out


def _ssa_reference(series, embedding_window, n_components):
    """SSA of one 1-D series the straightforward way: SVD of its trajectory matrix,
    then diagonal averaging. One series per call; the reference that the batched
    :class:`SSASmoother` is tested and benchmarked against (a loop over windows of
    this function is the natural unbatched implementation)."""
    T = len(series)
    K = T - embedding_window + 1
    traj = np.lib.stride_tricks.sliding_window_view(series, K)  # (L, K)
    U, S, Vt = np.linalg.svd(traj, full_matrices=False)
    recon = (U[:, :n_components] * S[:n_components]) @ Vt[:n_components]
    time_index = np.add.outer(np.arange(embedding_window), np.arange(K)).ravel()
    return np.bincount(time_index, weights=recon.ravel(), minlength=T) / np.bincount(
        time_index, minlength=T
    )


class GaussianNoise(_StatelessMotionProtector):
    """Add Gaussian noise scaled to each channel's spread.

    Parameters
    ----------
    sigma : float, default=0.5
        Noise standard deviation as a multiple of each channel's standard deviation on
        the training windows.
    noise_random_state : int or None, default=None
        Source of the noise drawn by :meth:`transform`. ``None`` (the only setting that
        protects): fresh noise from operating-system entropy on every call, never
        stored in the estimator, so neither its parameters nor a pickled model let
        anyone regenerate and subtract it. An int gives every call the same noise, for
        reproducible experiments only: **unsafe for protection**, since anyone who
        knows the seed can regenerate the noise and remove it exactly.
    random_state : int, RandomState instance or None, default=None
        Not used: the noise comes from ``noise_random_state``, and ``fit`` draws
        nothing. Accepted so that code seeding every protector alike keeps working.

    Attributes
    ----------
    scale_ : ndarray of shape (n_channels,)
        Noise standard deviation per channel, in input units (float64).
    n_timestamps_in_, n_channels_in_, n_features_in_ : int
        Shape of the training windows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import GaussianNoise
    >>> X = np.zeros((2, 128, 1)) + np.arange(128)[None, :, None]
    >>> GaussianNoise(sigma=0.1).fit_transform(X).shape
    (2, 128, 1)
    """

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "noise_random_state": [Interval(Integral, 0, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, sigma=0.5, noise_random_state=None, random_state=None):
        self.sigma = sigma
        self.noise_random_state = noise_random_state
        self.random_state = random_state

    def _check_params_against(self, X):
        # In float64: squares of float32 values above ~2e19 overflow float32.
        std = X.reshape(-1, X.shape[2]).std(axis=0, dtype=np.float64)
        scale = self.sigma * np.where(std > 0, std, 1.0)
        # The noise is drawn in float32: draws of up to 10 standard deviations (more has
        # probability ~1e-23) must not overflow it into infinite windows.
        if not np.all(10.0 * scale <= np.finfo(np.float32).max):
            raise ValueError(
                f"sigma={self.sigma!r} is too large for these windows: sigma times the "
                f"channel standard deviation ({scale.max():.3g}) overflows the float32 "
                "noise. Use a smaller sigma."
            )
        self.scale_ = scale

    def _transform(self, X):
        # A generator built per call and dropped: with noise_random_state=None it is
        # seeded from fresh OS entropy, and no generator state is kept or pickled.
        rng = np.random.default_rng(self.noise_random_state)
        noise = rng.standard_normal(X.shape, dtype=X.dtype)  # in place from here on
        noise *= self.scale_.astype(X.dtype)
        noise += X
        return noise


register_estimator_check_config(
    "GaussianNoise",
    # The checks compare outputs of repeated fits and calls: they run the reproducible
    # (seeded) noise; the default draws fresh noise on every call.
    fast_params={"noise_random_state": 0},
    expected_failed_checks={
        check: "noise is drawn for the batch as a whole (fresh on every call by "
        "default), so transforming a subset or a permutation does not reproduce the "
        "noise of the full batch (by design: noise tied to a window would be a "
        "learnable pattern)"
        for check in (
            "check_methods_subset_invariance",
            "check_methods_sample_order_invariance",
        )
    },
)
register_estimator_check_config(
    "SSASmoother",
    # The checks use 2-D data with 1 to 10 columns, read as windows of 1 to 10 samples.
    fast_params={"embedding_window": 2},
)
