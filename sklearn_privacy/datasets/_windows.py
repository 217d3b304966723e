"""Cut recordings into fixed-length windows (tslearn's ``(n, length, d)`` layout)."""

import numbers
from collections.abc import Mapping

import numpy as np
from sklearn.utils import Bunch

__all__ = ["make_windows"]

MAGNITUDE_SOURCES = {"acc_mag": ("acc_x", "acc_y", "acc_z"), "gyro_mag": ("gyro_x", "gyro_y", "gyro_z")}


def _check_positive_int(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _validate_bunch(bunch):
    """Return recordings (float64, 2-D), labels (int64), subject, recording, channel names."""
    if not isinstance(bunch, Mapping):
        raise TypeError(
            f"bunch must be a Bunch or mapping as returned by the loaders, got {type(bunch).__name__}"
        )
    missing = [k for k in ("recordings", "activity", "subject", "recording") if k not in bunch]
    if missing:
        raise ValueError(f"bunch lacks the keys {missing}")
    recordings, activity = list(bunch["recordings"]), list(bunch["activity"])
    if not recordings:
        raise ValueError("bunch has no recordings: at least one is required")
    subject, recording = np.asarray(bunch["subject"]), np.asarray(bunch["recording"])
    for name, ids in (("subject", subject), ("recording", recording)):
        if ids.ndim != 1 or len(ids) != len(recordings):
            raise ValueError(
                f"bunch.{name} must be 1-D with one id per recording ({len(recordings)}); "
                f"got shape {ids.shape}"
            )
    if len(activity) != len(recordings):
        raise ValueError(f"bunch has {len(recordings)} recordings but {len(activity)} activity arrays")

    data, labels = [], []
    n_channels = None
    for i, (x, y) in enumerate(zip(recordings, activity)):
        where = f"recording {i} (id {recording[i]})"
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} is not numeric: {exc}") from exc
        if x.ndim != 2:
            raise ValueError(f"{where} must be 2-D (n_samples, n_channels); got shape {x.shape}")
        if n_channels is None:
            n_channels = x.shape[1]
        if x.shape[1] != n_channels or n_channels == 0:
            raise ValueError(f"{where} has {x.shape[1]} channels; recording 0 has {n_channels}")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{where}: activity must be 1-D with {len(x)} labels; got shape {y.shape}")
        if y.size and not np.issubdtype(y.dtype, np.integer):
            finite_float = np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
            if not (finite_float and np.all(y == np.round(y))):
                raise ValueError(f"{where}: activity labels must be integers")
        data.append(x)
        labels.append(y.astype(np.int64))
    data = np.concatenate(data)
    if not np.all(np.isfinite(data)):
        bad = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
        i = int(np.searchsorted(np.cumsum([len(x) for x in labels]), bad, side="right"))
        raise ValueError(f"recording {i} (id {recording[i]}) contains NaN or infinity")
    names = bunch.get("channels")
    names = [f"channel_{j}" for j in range(n_channels)] if names is None else list(names)
    if len(names) != n_channels:
        raise ValueError(f"bunch.channels names {len(names)} channels but the recordings have {n_channels}")
    return data, labels, subject, recording, names


def _features(data, names, channels, magnitude):
    """Select channels and append magnitudes; return float32 (n_samples, d) and names."""
    if magnitude not in (False, True, "only"):
        raise ValueError(f"magnitude must be False, True or 'only', got {magnitude!r}")
    if channels is not None and magnitude == "only":
        raise ValueError("channels cannot be combined with magnitude='only'")
    if channels is None:
        columns = list(range(len(names))) if magnitude != "only" else []
    else:
        if isinstance(channels, (str, numbers.Integral)):
            channels = [channels]
        columns = []
        for channel in channels:
            if isinstance(channel, numbers.Integral) and not isinstance(channel, bool):
                if not -len(names) <= channel < len(names):
                    raise ValueError(f"channel index {channel} out of range for {len(names)} channels")
                columns.append(int(channel) % len(names))
            elif channel in names:
                columns.append(names.index(channel))
            else:
                raise ValueError(f"unknown channel {channel!r}; available: {names}")
        if not columns:
            raise ValueError("channels selects no channel")
    out_names = [names[j] for j in columns]
    blocks = [data[:, columns]] if columns else []
    if magnitude:
        found = {
            mag: [names.index(c) for c in parts]
            for mag, parts in MAGNITUDE_SOURCES.items()
            if all(c in names for c in parts)
        }
        if not found:
            raise ValueError(
                f"magnitude needs the channels acc_x, acc_y, acc_z and/or gyro_x, gyro_y, gyro_z; got {names}"
            )
        for mag, idx in found.items():
            blocks.append(np.sqrt(np.einsum("ij,ij->i", data[:, idx], data[:, idx]))[:, np.newaxis])
            out_names.append(mag)
    return np.hstack(blocks).astype(np.float32), out_names


def window_starts(labels, lengths, allowed, length, step):
    """Global start index of every window, vectorised over all runs of constant label.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Concatenated per-sample labels of all recordings.
    lengths : ndarray of shape (n_recordings,)
        Number of samples of each recording.
    allowed : callable
        Maps an array of run labels to a boolean mask of runs to keep.
    length, step : int
        Window length and step, in samples.

    Returns
    -------
    starts : ndarray of shape (n_windows,), dtype int64
        Index into ``labels`` of each window's first sample, in increasing order.
    segment : ndarray of shape (n_windows,), dtype int64
        Index of the run (contiguous samples of one label in one recording) each window
        comes from, numbered from 0 in order.
    """
    n = len(labels)
    boundary = np.zeros(n, dtype=bool)
    if n:
        boundary[0] = True
        boundary[1:] = labels[1:] != labels[:-1]
        ends = np.cumsum(lengths)[:-1]
        boundary[ends[ends < n]] = True  # never cross a recording
    run_start = np.flatnonzero(boundary)
    run_length = np.diff(np.append(run_start, n))
    keep = allowed(labels[run_start]) & (run_length >= length)
    run_start, run_length = run_start[keep], run_length[keep]
    counts = (run_length - length) // step + 1
    first = np.cumsum(counts) - counts  # index of each run's first window
    rank = np.arange(counts.sum()) - np.repeat(first, counts)
    segment = np.repeat(np.arange(len(counts)), counts)
    return np.repeat(run_start, counts) + step * rank, segment


def _gather(features, starts, length, chunk=4096):
    """``X[i] = features[starts[i]:starts[i] + length]``, C-contiguous, in bounded memory."""
    X = np.empty((len(starts), length, features.shape[1]), dtype=features.dtype)
    offsets = np.arange(length)
    for first in range(0, len(starts), chunk):
        part = starts[first : first + chunk]
        X[first : first + len(part)] = features[part[:, np.newaxis] + offsets]
    return X


def make_windows(
    bunch,
    length=128,
    step=None,
    *,
    magnitude=False,
    channels=None,
    include_transitions=False,
    include_unlabelled=False,
):
    """Cut each recording into fixed-length windows of constant activity.

    A window never crosses a recording boundary nor an activity boundary: it lies inside
    one run of samples with the same label. Within each run, windows start at the run's
    first sample and every ``step`` samples after it, while they fit; the tail of a run
    shorter than a window is not used. Windows come in the bunch's recording order, then
    by start.

    Windowing changes the number of samples, so it happens before a
    :class:`~sklearn.pipeline.Pipeline`, never inside one.

    Parameters
    ----------
    bunch : :class:`~sklearn.utils.Bunch` or mapping
        As returned by :func:`load_hapt`, :func:`load_mobifall` or
        :func:`load_motionsense`: ``recordings``, ``activity``, ``subject``,
        ``recording`` and, optionally, ``channels``, ``transition_activities``,
        ``activity_names``, ``attributes`` and ``sampling_rate``.
    length : int, default=128
        Window length in samples (128 = 2.56 s at 50 Hz, as in the papers).
    step : int, default=None
        Distance in samples between the starts of consecutive windows of a run. None
        means ``length // 2`` (50 % overlap, as in UCI HAR's published windows; at
        least 1). The papers train with ``step=10``; evaluate on recording-disjoint
        folds whatever the overlap (see :class:`RecordingDisjointSplit`).
    magnitude : bool or "only", default=False
        ``True`` appends the Euclidean norms ``acc_mag`` of (acc_x, acc_y, acc_z) and
        ``gyro_mag`` of (gyro_x, gyro_y, gyro_z), for the triplets present;
        ``"only"`` returns just those (the papers' orientation-invariant input).
    channels : list of str or int, default=None
        Channels to keep, by name or position, in this order; None keeps all.
        Magnitudes are computed from the full triplets whatever is kept.
    include_transitions : bool, default=False
        Keep windows of the codes listed in ``bunch.transition_activities`` (HAPT's
        postural transitions, present only when loaded with
        ``include_transitions=True``).
    include_unlabelled : bool, default=False
        Keep windows of unlabelled samples (negative codes, -1).

    Returns
    -------
    windows : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        X : ndarray of shape (n_windows, length, n_channels), dtype float32
            tslearn's layout.
        y : ndarray of shape (n_windows,), dtype int64
            Activity code of each window.
        subject : ndarray of shape (n_windows,), dtype int64
            Subject id of each window.
        recording : ndarray of shape (n_windows,), dtype int64
            Recording id of each window.
        start : ndarray of shape (n_windows,), dtype int64
            Index, in its recording, of each window's first sample.
        segment : ndarray of shape (n_windows,), dtype int64
            Id of the run of one activity in one recording that each window lies in.
            Overlapping windows share a segment, so grouping by segment keeps
            near-duplicates on one side of a split; it is the finest group that an
            attacker's validation split can use when each person has a single training
            recording (grouping by recording would then hold out whole people).
        channels : list of str
            Names of the ``n_channels`` output channels.
        attributes, activity_names, sampling_rate
            Passed on from ``bunch`` when present (``attributes.loc[windows.subject]``
            aligns subject attributes with windows).
        length, step : int
            Window length and step, in samples.

    Raises
    ------
    ValueError
        On an invalid bunch (missing keys, no recordings, wrong ndim, mismatched lengths,
        NaN or infinity, values beyond the float32 range, non-integer labels) or
        argument, or if no window fits.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_privacy.datasets import make_windows
    >>> bunch = {"recordings": [np.zeros((300, 6))], "activity": [np.repeat([1, 2], 150)],
    ...          "subject": [1], "recording": [1],
    ...          "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]}
    >>> w = make_windows(bunch, length=100, step=50, magnitude="only")
    >>> w.X.shape, w.y.tolist(), w.start.tolist()
    ((4, 100, 2), [1, 1, 2, 2], [0, 50, 150, 200])
    """
    length = _check_positive_int(length, "length")
    step = max(length // 2, 1) if step is None else _check_positive_int(step, "step")
    data, labels, subject, recording, names = _validate_bunch(bunch)
    with np.errstate(over="ignore"):
        features, out_names = _features(data, names, channels, magnitude)
    del data

    lengths = np.array([len(y) for y in labels])
    finite = np.isfinite(features).all(axis=1)
    if not finite.all():
        # float32 overflow (|x| > 3.4e38), or a magnitude that overflows: never inf.
        i = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(~finite)[0], side="right"))
        raise ValueError(
            f"recording {i} (id {recording[i]}) has values too large for the float32 windows "
            f"(largest finite float32: {np.finfo(np.float32).max:.3g})"
        )
    labels = np.concatenate(labels)
    transitions = np.asarray(list(bunch.get("transition_activities", ()) or ()), dtype=np.int64)

    def allowed(run_labels):
        keep = np.ones(len(run_labels), dtype=bool)
        if not include_unlabelled:
            keep &= run_labels >= 0
        if not include_transitions:
            keep &= ~np.isin(run_labels, transitions)
        return keep

    starts, segment = window_starts(labels, lengths, allowed, length, step)
    if len(starts) == 0:
        raise ValueError(
            f"no window of {length} samples fits inside a run of one kept activity "
            f"(longest recording: {lengths.max()} samples)"
        )
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    which = np.searchsorted(offsets, starts, side="right") - 1
    result = Bunch(
        X=_gather(features, starts, length),
        y=labels[starts],
        subject=subject[which],
        recording=recording[which],
        start=(starts - offsets[which]).astype(np.int64),
        segment=segment,
        channels=out_names,
        length=length,
        step=step,
    )
    for key in ("attributes", "activity_names", "sampling_rate"):
        if key in bunch:
            result[key] = bunch[key]
    return result
