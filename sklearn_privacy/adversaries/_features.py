"""Hand-crafted motion features and the gradient-boosting attacker built on them."""

from numbers import Real

import numpy as np
from scipy.fft import next_fast_len
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..utils.estimator_checks import register_estimator_check_config
from ..utils.validation import validate_motion_windows

__all__ = ["MotionFeatures", "make_feature_attacker"]

# Relative tolerance under which a window's channel counts as constant.
_CONSTANT_RTOL = 1e-10


def _float_dtype(X):
    """Keep float32/float64 arrays as they are (features are computed per chunk in float64)."""
    dtype = getattr(X, "dtype", None)
    return dtype if dtype in (np.float32, np.float64) else np.float64


def _finite_vector(value, name):
    """``value`` as a 1-D float64 array of finite numbers, or a ValueError naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers; got {value!r}.") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers; got {value!r}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers (no NaN or infinity); got {value!r}.")
    return array


class MotionFeatures(TransformerMixin, BaseEstimator):
    """Standard per-window motion features, vectorised over windows.

    For each channel: mean, standard deviation, min, max, ``percentiles``, skewness,
    excess kurtosis, mean absolute deviation, zero-crossing rate of the centred signal,
    energy, band powers, dominant frequency, and the highest autocorrelation peak
    (lag and height) within ``autocorr_lag_range``; then the Pearson correlation of
    every pair of channels. Statistics use the population (biased) moments, as
    :func:`scipy.stats.skew` and :func:`scipy.stats.kurtosis` do by default.
    Undefined values (moments of a constant channel, spectra of one-sample windows)
    are 0, so every feature is finite.

    Parameters
    ----------
    sampling_rate : float, default=50.0
        Sampling rate in Hz (HAPT: 50).
    percentiles : sequence of float in [0, 100], default=(10, 25, 50, 75, 90)
        Distinct percentiles of each channel.
    band_edges : sequence of float, default=(0.0, 1.0, 3.0, 6.0, 12.0, 25.0)
        Strictly increasing band edges in Hz, from 0 up to the Nyquist frequency
        ``sampling_rate / 2`` (the default suits 50 Hz; pass other edges for a lower
        rate). Band ``i`` is ``[edges[i], edges[i+1])`` (the last band includes its
        upper edge). Band power is the share of the channel's
        variance in the band (one-sided periodogram of the centred signal, so the
        bands of a full partition sum to the variance).
    autocorr_lag_range : (float, float), default=(0.1, 1.5)
        Lags, in seconds, searched for the autocorrelation peak (a local maximum of
        the biased, normalised autocorrelation; lag 0 and height 0 when there is none).
    channel_names : sequence of str or None, default=None
        Distinct names of the channels, used by :meth:`get_feature_names_out`
        (``ch0``, ``ch1``... if None).
    correlations : bool, default=True
        Append the cross-channel correlations.

    Attributes
    ----------
    n_features_in_ : int
        ``n_timestamps_in_ * n_channels_in_``.
    n_timestamps_in_, n_channels_in_ : int
        Window shape seen in ``fit``; ``transform`` requires the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.adversaries import MotionFeatures
    >>> t = np.arange(128) / 50.0
    >>> X = np.stack([np.sin(2 * np.pi * 2.0 * t), np.cos(2 * np.pi * 5.0 * t)], -1)[None]
    >>> mf = MotionFeatures().fit(X)
    >>> feats = mf.transform(X)
    >>> names = list(mf.get_feature_names_out())
    >>> float(feats[0, names.index("ch0_dominant_freq")]).__round__(2)
    1.95
    """

    _parameter_constraints: dict = {
        "sampling_rate": [Interval(Real, 0, None, closed="neither")],
        "percentiles": ["array-like"],
        "band_edges": ["array-like"],
        "autocorr_lag_range": ["array-like"],
        "channel_names": [None, "array-like"],
        "correlations": ["boolean"],
    }

    def __init__(
        self,
        *,
        sampling_rate=50.0,
        percentiles=(10, 25, 50, 75, 90),
        band_edges=(0.0, 1.0, 3.0, 6.0, 12.0, 25.0),
        autocorr_lag_range=(0.1, 1.5),
        channel_names=None,
        correlations=True,
    ):
        self.sampling_rate = sampling_rate
        self.percentiles = percentiles
        self.band_edges = band_edges
        self.autocorr_lag_range = autocorr_lag_range
        self.channel_names = channel_names
        self.correlations = correlations

    # -- parameters ------------------------------------------------------------------
    def _checked_params(self):
        q = _finite_vector(self.percentiles, "percentiles")
        if np.any((q < 0) | (q > 100)) or len(np.unique(q)) != q.size:
            raise ValueError(
                f"percentiles must be distinct numbers in [0, 100]; got {self.percentiles!r}."
            )
        edges = _finite_vector(self.band_edges, "band_edges")
        nyquist = float(self.sampling_rate) / 2.0
        if edges.size < 2 or np.any(edges < 0) or np.any(np.diff(edges) <= 0):
            raise ValueError(
                "band_edges must hold at least 2 strictly increasing, non-negative "
                f"frequencies; got {self.band_edges!r}."
            )
        if edges[-1] > nyquist * (1 + 1e-12):
            # Above the Nyquist frequency there is no spectrum: such a band is always 0.
            raise ValueError(
                f"band_edges must not exceed the Nyquist frequency sampling_rate / 2 = "
                f"{nyquist:g} Hz; got {self.band_edges!r}. Pass band edges up to "
                f"{nyquist:g} Hz for sampling_rate={self.sampling_rate!r}."
            )
        lags = _finite_vector(self.autocorr_lag_range, "autocorr_lag_range")
        if lags.shape != (2,) or lags[0] < 0 or lags[1] <= lags[0]:
            raise ValueError(
                "autocorr_lag_range must be (low, high) seconds with 0 <= low < high; "
                f"got {self.autocorr_lag_range!r}."
            )
        return q, edges, lags

    def _channel_names(self, input_features=None):
        names = input_features if input_features is not None else self.channel_names
        if names is None:
            return [f"ch{i}" for i in range(self.n_channels_in_)]
        what = "input_features" if input_features is not None else "channel_names"
        names = [str(n) for n in np.asarray(names, dtype=object).ravel()]
        if len(names) != self.n_channels_in_:
            raise ValueError(
                f"Got {len(names)} channel names in {what} but the windows have "
                f"{self.n_channels_in_} channels."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"{what} must be distinct (they name the features); got {names}.")
        return names

    def _feature_kinds(self):
        q, edges, _ = self._checked_params()
        kinds = ["mean", "std", "min", "max"]
        kinds += [f"p{v:g}" for v in q]
        kinds += ["skew", "kurtosis", "mad", "zcr", "energy"]
        kinds += [f"band_{lo:g}-{hi:g}Hz" for lo, hi in zip(edges[:-1], edges[1:])]
        kinds += ["dominant_freq", "acf_peak_lag", "acf_peak_height"]
        return kinds

    # -- API -------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and record the window shape.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Motion windows (2-D input is one channel).
        y : None
            Ignored.

        Returns
        -------
        self : MotionFeatures
        """
        self._checked_params()
        validate_motion_windows(self, X, reset=True, dtype=_float_dtype(X))
        if self.channel_names is not None:
            self._channel_names()
        return self

    def transform(self, X):
        """Compute the features of each window.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_timestamps, n_channels) or (n_windows, n_timestamps)
            Windows of the shape seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_windows, n_features_out)
            float64, columns named by :meth:`get_feature_names_out`.
        """
        check_is_fitted(self)
        X = validate_motion_windows(self, X, reset=False, dtype=_float_dtype(X))
        n, T, d = X.shape
        n_out = d * len(self._feature_kinds()) + (d * (d - 1) // 2 if self.correlations else 0)
        out = np.empty((n, n_out), dtype=np.float64)
        # About a dozen float64 work arrays per window (FFT padding included).
        row_bytes = 8 * 12 * (2 * T + 2) * d + 1
        chunk = max(1, int(get_config()["working_memory"] * 2**20 // row_bytes))
        for batch in gen_batches(n, chunk):
            out[batch] = self._features(X[batch].astype(np.float64, copy=False))
        return out

    def get_feature_names_out(self, input_features=None):
        """Names of the output features, ``<channel>_<feature>`` then ``corr_<a>_<b>``.

        Parameters
        ----------
        input_features : sequence of str or None, default=None
            Channel names (one per channel), overriding ``channel_names``.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self)
        channels = self._channel_names(input_features)
        names = [f"{ch}_{kind}" for ch in channels for kind in self._feature_kinds()]
        if self.correlations:
            i, j = np.triu_indices(len(channels), k=1)
            names += [f"corr_{channels[a]}_{channels[b]}" for a, b in zip(i, j)]
        return np.asarray(names, dtype=object)

    # -- computation -----------------------------------------------------------------
    def _features(self, X):
        """Features of a float64 batch ``(b, T, d)``: ``(b, n_features_out)``."""
        q, edges, lag_range = self._checked_params()
        fs = float(self.sampling_rate)
        b, T, d = X.shape

        mean = X.mean(axis=1)
        Xc = X - mean[:, None, :]
        var = np.mean(Xc**2, axis=1)
        std = np.sqrt(var)
        constant = var <= (_CONSTANT_RTOL * np.maximum(1.0, np.abs(mean))) ** 2
        safe_var = np.where(constant, 1.0, var)

        m3 = np.mean(Xc**3, axis=1)
        m4 = np.mean(Xc**4, axis=1)
        skew = np.where(constant, 0.0, m3 / safe_var**1.5)
        kurt = np.where(constant, 0.0, m4 / safe_var**2 - 3.0)
        mad = np.mean(np.abs(Xc), axis=1)
        if T > 1:
            zcr = np.count_nonzero(Xc[:, 1:] * Xc[:, :-1] < 0, axis=1) / (T - 1)
            zcr = np.where(constant, 0.0, zcr)
        else:
            zcr = np.zeros((b, d))
        energy = np.mean(X**2, axis=1)

        # One-sided periodogram of the centred signal, normalised so it sums to var.
        spectrum = np.fft.rfft(Xc, axis=1)
        psd = (spectrum.real**2 + spectrum.imag**2) / T**2
        psd[:, 1:] *= 2.0
        if T % 2 == 0 and T > 1:
            psd[:, -1] /= 2.0
        freqs = np.fft.rfftfreq(T, d=1.0 / fs)
        lo, hi = edges[:-1], edges[1:]
        in_band = (freqs[:, None] >= lo) & (freqs[:, None] < hi)
        in_band[:, -1] |= freqs == hi[-1]
        bands = np.einsum("bkd,kj->bdj", psd, in_band.astype(np.float64))
        if psd.shape[1] > 1:
            dominant = freqs[1 + np.argmax(psd[:, 1:], axis=1)]
            dominant = np.where(constant, 0.0, dominant)
        else:
            dominant = np.zeros((b, d))

        lag, height = self._autocorr_peak(Xc, var, constant, lag_range, fs)

        per_channel = [mean, std, X.min(axis=1), X.max(axis=1)]
        per_channel += list(np.percentile(X, q, axis=1))
        per_channel += [skew, kurt, mad, zcr, energy]
        per_channel += list(np.moveaxis(bands, -1, 0))
        per_channel += [dominant, lag, height]
        feats = np.stack(per_channel, axis=-1).reshape(b, -1)  # channel-major
        if self.correlations and d > 1:
            cov = np.einsum("bti,btj->bij", Xc, Xc) / T
            scale = np.where(constant, 0.0, 1.0 / np.sqrt(safe_var))
            corr = cov * scale[:, :, None] * scale[:, None, :]
            i, j = np.triu_indices(d, k=1)
            feats = np.concatenate([feats, np.clip(corr[:, i, j], -1.0, 1.0)], axis=1)
        return feats

    @staticmethod
    def _autocorr_peak(Xc, var, constant, lag_range, fs):
        """Highest local maximum of the normalised autocorrelation within the lag range."""
        b, T, d = Xc.shape
        lo = max(1, int(np.ceil(lag_range[0] * fs - 1e-9)))
        hi = min(T - 2, int(np.floor(lag_range[1] * fs + 1e-9)))
        lag = np.zeros((b, d))
        height = np.zeros((b, d))
        if lo > hi:
            return lag, height
        n_fft = next_fast_len(2 * T - 1, real=True)
        spec = np.fft.rfft(Xc, n=n_fft, axis=1)
        acf = np.fft.irfft(spec.real**2 + spec.imag**2, n=n_fft, axis=1)[:, : hi + 2]
        acf /= np.where(constant, 1.0, T * var)[:, None, :]
        centre = acf[:, lo : hi + 1]
        is_peak = (centre >= acf[:, lo - 1 : hi]) & (centre > acf[:, lo + 1 : hi + 2])
        masked = np.where(is_peak, centre, -np.inf)
        best = np.argmax(masked, axis=1)
        best_val = np.take_along_axis(masked, best[:, None, :], axis=1)[:, 0]
        found = np.isfinite(best_val) & ~constant
        lag = np.where(found, (lo + best) / fs, 0.0)
        height = np.where(found, best_val, 0.0)
        return lag, height

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        return tags


def make_feature_attacker(classifier=None, *, random_state=None, **feature_params):
    """A feature-based attacker: :class:`MotionFeatures` then a tabular classifier.

    A second attacker family, unrelated to the CNN, so that a protector is judged
    by its worst case.

    Parameters
    ----------
    classifier : estimator or None, default=None
        The classifier on the features. Default: a
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier` with 200 iterations
        and no internal early stopping (its random validation split would mix
        overlapping windows of one recording, so it would not stop honestly).
    random_state : int, RandomState instance or None, default=None
        Seed of the default classifier (ignored when ``classifier`` is given).
    **feature_params
        Parameters of :class:`MotionFeatures` (e.g. ``sampling_rate=50.0``).

    Returns
    -------
    attacker : Pipeline
        ``Pipeline([("features", MotionFeatures(...)), ("clf", classifier)])``.

    Examples
    --------
    >>> from sklearn_privacy.adversaries import make_feature_attacker
    >>> make_feature_attacker(random_state=0, sampling_rate=50.0).steps[0][0]
    'features'
    """
    if classifier is None:
        classifier = HistGradientBoostingClassifier(
            max_iter=200, early_stopping=False, random_state=random_state
        )
    return Pipeline([("features", MotionFeatures(**feature_params)), ("clf", classifier)])


register_estimator_check_config("MotionFeatures", fast_params={})
