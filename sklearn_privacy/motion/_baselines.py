"""Signal-processing baselines from the motion-anonymization papers.

They do not look at any label: ``fit`` only learns the window shape (and, for
:class:`GaussianNoise`, the per-channel scale). They are the reference points every learned
protector must beat on the privacy-utility frontier.
"""

import functools
from numbers import Integral, Real

import numpy as np
from scipy import signal
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..base import BaseProtector
from ..utils.estimator_checks import register_estimator_check_config

__all__ = ["Downsampler", "GaussianNoise", "SSASmoother"]


class _StatelessMotionProtector(BaseProtector):
    """A protector whose ``fit`` only records the window shape."""

    # These protectors are label-free: do not ask meta-estimators for sensitive labels.
    __metadata_request__fit = {"sensitive_features": False}

    @_fit_context(prefer_skip_nested_validation=True)
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
        X = self._validate_motion(X, reset=True)
        self._check_params_against(X)
        return self

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
        X_protected : ndarray of the same shape as ``X`` (float32)
        """
        check_is_fitted(self)
        X_valid = self._validate_motion(X, reset=False)
        return self._restore_motion(self._transform(X_valid), X)

    def _transform(self, X):
        raise NotImplementedError


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
        return low.astype(np.float32, copy=False)


class SSASmoother(_StatelessMotionProtector):
    """Singular spectrum analysis smoothing, batched over all windows and channels.

    Each channel of each window is embedded in an ``L x K`` trajectory matrix
    (``L = embedding_window``, ``K = T - L + 1``), projected on its first
    ``n_components`` singular vectors and mapped back to a series by anti-diagonal
    averaging, for all windows and channels at once (no per-window Python loop):

    - the ``L x L`` lag-covariance matrices ``traj @ traj.T`` come from one dot
      product per lag over each series, minus the few products outside each row's
      span (exact);
    - their leading eigenvectors (the left singular vectors of the trajectory
      matrices) come from repeated squaring, one component at a time on the
      projection-deflated matrix, with a per-matrix bound on the angle to the true
      eigenvector; matrices whose bound does not reach the target (nearly equal
      eigenvalues, where the component is ill-defined anyway) go to LAPACK. The result
      agrees with a full SVD to about ``1e-7`` of each window's energy;
    - projection and anti-diagonal averaging are a symmetric ``2L - 1``-tap filter in
      the interior (taps: diagonal sums of ``U @ U.T``), with the first and last
      ``L - 1`` samples averaged from their own trajectory columns.

    Series are processed in chunks, so memory does not grow with the number of windows.

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
        n, T, d = X.shape
        L = self.embedding_window
        series = np.ascontiguousarray(np.moveaxis(X, 2, 1), dtype=np.float32).reshape(n * d, T)
        smoothed = np.empty_like(series)
        for start in range(0, n * d, _SSA_CHUNK):  # bounded memory for any number of windows
            chunk = series[start : start + _SSA_CHUNK]
            cov = _lag_covariance(chunk.astype(np.float64), L)
            U = _leading_eigenvectors(cov, self.n_components)
            smoothed[start : start + _SSA_CHUNK] = _diagonal_average(chunk, U)
        return np.moveaxis(smoothed.reshape(n, d, T), 1, 2)


# Series per chunk in SSASmoother: (chunk, L, L) float64 arrays stay a few MB.
_SSA_CHUNK = 4096
# Target accuracy: each component's share of the reconstruction is within about
# _SSA_TOL * ||trajectory|| of the exact one (far below float32 resolution of the output).
_SSA_TOL = 1e-7
# Components that are deflated must be tighter, since their error leaks into the next.
_SSA_DEFLATION_TOL = 1e-9
_SSA_MAX_SQUARINGS = 10  # powers up to 2**10; slower-converging matrices go to LAPACK


def _lag_covariance(series, L):
    """Lag-covariance matrices ``traj @ traj.T`` of float64 series (m, T), exactly.

    Entry (i, i + lag) is the lag product sum over the whole series minus the few
    products before ``i`` and after ``i + K - 1``, so the only pass over the series is
    one dot product per lag.
    """
    m, T = series.shape
    K = T - L + 1
    if T < 2 * L:
        traj = np.lib.stride_tricks.sliding_window_view(series, K, axis=1)
        return traj @ traj.transpose(0, 2, 1)
    full = np.empty((L, m))
    for lag in range(L):
        full[lag] = np.einsum("mt,mt->m", series[:, : T - lag], series[:, lag:])

    def edge_sums(edge):
        # edge: (2L - 2, m), first samples (or last, reversed); result[lag, i] is the
        # sum over t < i of edge[t] * edge[t + lag].
        windows = np.lib.stride_tricks.sliding_window_view(edge, (L - 1, m))[:, 0]
        prod = edge[None, : L - 1] * windows
        sums = np.zeros((L, L, m))
        for t in range(L - 1):  # cumsum along a middle axis is slow in numpy
            np.add(sums[:, t], prod[:, t], out=sums[:, t + 1])
        return sums.reshape(L * L, m)

    head = edge_sums(np.ascontiguousarray(series[:, : 2 * L - 2].T))
    tail = edge_sums(np.ascontiguousarray(series[:, : T - 2 * L + 1 : -1].T))
    lag, i = _upper_triangle(L)
    values = full[lag] - head[lag * L + i] - tail[lag * L + (L - 1 - lag - i)]
    cov = np.empty((L * L, m))
    cov[i * L + i + lag] = values
    cov[(i + lag) * L + i] = values
    return np.ascontiguousarray(cov.T).reshape(m, L, L)


def _upper_triangle(L):
    """(lag, row) of every entry on or above the diagonal of an L x L matrix."""
    return np.nonzero(np.add.outer(np.arange(L), np.arange(L)) < L)


def _leading_eigenvectors(cov, n_components):
    """Orthonormal leading eigenvectors (m, L, n_components) of PSD matrices (m, L, L).

    Component by component: the top eigenvector of the deflated matrix
    ``(I - V V.T) C (I - V V.T)`` (projection deflation keeps precision relative to
    the remaining eigenvalues, unlike subtracting ``lambda v v.T``) by repeated
    squaring, with a per-matrix convergence bound. Matrices that have not converged
    after ``_SSA_MAX_SQUARINGS`` squarings (nearly equal eigenvalues) and any
    non-finite result go to LAPACK, so every result is that of a full
    eigen-decomposition to within the target accuracy.
    """
    m, L, _ = cov.shape
    total = np.einsum("mii->m", cov)
    U = np.empty((m, L, n_components))
    converged = np.ones(m, dtype=bool)
    M = cov
    for c in range(n_components):
        last = c == n_components - 1
        if last:
            # A component carrying a fraction f of the energy needs its direction to
            # within tol / sqrt(f) for its share of the output to be within tol.
            with np.errstate(divide="ignore", invalid="ignore"):
                tol = _SSA_TOL * np.sqrt(total / np.einsum("mii->m", M))
            tol = np.where(np.isnan(tol), np.inf, tol)
        else:
            tol = np.full(m, _SSA_DEFLATION_TOL)
        v, ok = _top_eigenvector(M, tol)
        converged &= ok
        U[:, :, c] = v
        if not last:
            Mv = np.einsum("mij,mj->mi", M, v)
            g = Mv - 0.5 * np.einsum("mi,mi->m", v, Mv)[:, None] * v
            outer = v[:, :, None] * g[:, None, :]
            M = M - outer - outer.transpose(0, 2, 1)
    redo = ~converged | ~np.isfinite(U).all(axis=(1, 2))
    if redo.any():
        U[redo] = _eigh_leading(cov[redo], n_components)
    return U


def _eigh_leading(cov, n_components):
    """Leading eigenvectors by LAPACK (the fallback of :func:`_leading_eigenvectors`)."""
    return np.linalg.eigh(cov)[1][:, :, ::-1][:, :, :n_components]


def _top_eigenvector(M, tol):
    """Top eigenvector of each PSD matrix in M (m, L, L) by repeated squaring.

    ``A = M**(2**j) / trace`` is ``a_1 u_1 u_1.T + E`` with ``trace(E) <= S`` where
    ``S = trace(A) A_kk / (A**2)_kk - 1`` for any k, and the angle between column k
    and ``u_1`` is at most ``S / |u_1k|``: a bound computed from A alone. Matrices stop
    squaring once their bound is below ``tol``; returns the vectors and which converged.
    """
    m, L, _ = M.shape
    v = np.full((m, L), np.nan)
    ok = np.zeros(m, dtype=bool)
    rows = np.arange(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        A = M / np.einsum("mii->m", M)[:, None, None]
    for _ in range(_SSA_MAX_SQUARINGS):
        A = A @ A
        diag = np.einsum("mii->mi", A)
        trace = diag.sum(axis=1)
        k = diag.argmax(axis=1)
        col = np.take(A.reshape(-1, L), np.arange(len(A)) * L + k, axis=0)
        norm2 = np.einsum("ml,ml->m", col, col)
        a_kk = np.take_along_axis(diag, k[:, None], axis=1)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (trace * a_kk / norm2 - 1) * np.sqrt(norm2) / a_kk
            done = bound <= tol
        if done.any():
            v[rows[done]] = col[done] / np.sqrt(norm2[done])[:, None]
            ok[rows[done]] = True
            if done.all():
                break
            if done.mean() > 0.2:  # copying the rest is worth it only when many are done
                keep = ~done
                A, trace, rows, tol = A[keep], trace[keep], rows[keep], tol[keep]
            else:
                tol = np.where(done, -np.inf, tol)  # done: never overwrite
        A /= trace[:, None, None]
    return v, ok


def _diagonal_average(series, U):
    """SSA reconstruction of float32 series (m, T) on the orthonormal columns of U.

    In the interior (every time covered by all L trajectory rows) the projection and
    the anti-diagonal averaging together are a symmetric filter whose taps are the
    diagonal sums of ``U @ U.T``; the first and last ``L - 1`` times are averaged
    from their own trajectory columns.
    """
    m, T = series.shape
    L = U.shape[1]
    K = T - L + 1
    U32 = U.astype(np.float32)
    if K < 2 * L:  # short windows: plain projection and diagonal averaging
        traj = np.lib.stride_tricks.sliding_window_view(series, K, axis=1)
        recon = U32 @ (U32.transpose(0, 2, 1) @ traj)
        sums = np.zeros((m, T), dtype=np.float32)
        for i in range(L):
            sums[:, i : i + K] += recon[:, i]
        return sums / np.convolve(np.ones(L), np.ones(K)).astype(np.float32)
    taps = np.empty((m, L), dtype=np.float32)
    for lag in range(L):
        taps[:, lag] = np.einsum("mic,mic->m", U32[:, : L - lag], U32[:, lag:]) / L
    # Shifted copies of all series as views of one flat, padded buffer; values that
    # wrap into a neighbouring series only reach the edges, which are overwritten.
    flat = np.zeros(m * T + 2 * (L - 1), dtype=np.float32)
    flat[L - 1 : L - 1 + m * T] = series.ravel()

    def shifted(lag):
        return flat[L - 1 + lag : L - 1 + lag + m * T].reshape(m, T)

    out = taps[:, :1] * series
    pair = np.empty_like(out)
    for lag in range(1, L):
        np.add(shifted(lag), shifted(-lag), out=pair)
        pair *= taps[:, lag : lag + 1]
        out += pair
    left, right = _edge_averaging(L)
    for times, samples, weights in (
        (slice(0, L - 1), series[:, : 2 * L - 2], left),
        (slice(K, T), series[:, T - 2 * L + 2 :], right),
    ):
        traj = np.lib.stride_tricks.sliding_window_view(samples, L - 1, axis=1)
        recon = U32 @ (U32.transpose(0, 2, 1) @ traj)
        out[:, times] = recon.reshape(m, -1) @ weights
    return out


@functools.lru_cache
def _edge_averaging(L):
    """Averaging weights from the first / last L - 1 trajectory columns (L x (L - 1),
    flattened) to the first / last L - 1 times."""
    row, col = np.divmod(np.arange(L * (L - 1)), L - 1)
    time = row + col
    left = np.zeros((L * (L - 1), L - 1), dtype=np.float32)
    sel = time <= L - 2
    left[sel, time[sel]] = 1.0 / (time[sel] + 1)
    right = np.zeros((L * (L - 1), L - 1), dtype=np.float32)
    sel = time >= L - 1
    right[sel, time[sel] - (L - 1)] = 1.0 / (2 * L - 2 - time[sel])
    return left, right


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
    random_state : int, RandomState instance or None, default=None
        Seeds the noise. Each ``transform`` call draws fresh noise; with an int, the
        sequence of calls after ``fit`` is reproducible. Noise is deliberately *not* a
        function of the input or of its position: noise repeated across calls would
        be a pattern an attacker could learn.

    Attributes
    ----------
    scale_ : ndarray of shape (n_channels,)
        Noise standard deviation per channel, in input units.
    n_timestamps_in_, n_channels_in_, n_features_in_ : int
        Shape of the training windows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.motion import GaussianNoise
    >>> X = np.zeros((2, 128, 1)) + np.arange(128)[None, :, None]
    >>> GaussianNoise(sigma=0.1, random_state=0).fit_transform(X).shape
    (2, 128, 1)
    """

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, sigma=0.5, random_state=None):
        self.sigma = sigma
        self.random_state = random_state

    def _check_params_against(self, X):
        std = X.reshape(-1, X.shape[2]).std(axis=0)
        self.scale_ = (self.sigma * np.where(std > 0, std, 1.0)).astype(np.float32)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self._noise_rng = np.random.default_rng(seed)

    def _transform(self, X):
        rng = self._noise_rng
        noise = rng.standard_normal(X.shape, dtype=np.float32) * self.scale_
        return (X + noise).astype(np.float32, copy=False)


register_estimator_check_config(
    "GaussianNoise",
    expected_failed_checks={
        check: "fresh noise is drawn on every call, so transforming a subset or a "
        "permutation does not reproduce the noise of the full batch (by design: "
        "repeated noise would be a learnable pattern)"
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
