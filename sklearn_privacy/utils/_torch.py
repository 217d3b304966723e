"""Torch plumbing shared by every estimator, written once.

- **Device**: :func:`resolve_device`. ``"auto"`` picks CUDA when present and falls back to
  the CPU silently; an explicit CUDA device on a machine without CUDA is a
  ``ValueError`` at ``fit``.
- **Seeding**: :func:`check_random_state_local` and :func:`torch_random_context`. A fit
  draws its numpy numbers from its own generator and runs its torch code (weight
  initialisation, dropout, batch shuffling) on a forked copy of torch's generator, so it
  never changes the caller's global numpy or torch random state.
- **Validation split**: :func:`validation_split`, the one rule for early stopping.
- **Progress**: :func:`progress_bar` and :class:`EpochProgress`, one tqdm bar over
  epochs (or steps) shown when ``verbose`` is true.
- **Pickling**: :class:`TorchPickleMixin`, skorch's scheme: torch objects are saved with
  :func:`torch.save` into the pickle and loaded with a map location chosen at load time;
  a model saved on CUDA loads on a machine without CUDA on the CPU, with a warning.
"""

import contextlib
import io
import numbers
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from ._progress import progress_bar
from .validation import _group_codes

__all__ = [
    "EpochProgress",
    "TorchPickleMixin",
    "check_batch_size",
    "check_fit_groups",
    "check_random_state_local",
    "draw_seed",
    "get_map_location",
    "progress_bar",
    "resolve_device",
    "torch_random_context",
    "validation_split",
]


# -- device ----------------------------------------------------------------------------
def resolve_device(device):
    """Return the torch device string an estimator should use.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or str or torch.device
        ``"auto"`` (or ``None``) picks ``"cuda"`` when a GPU is visible and ``"cpu"``
        otherwise, silently. Anything else is passed to :class:`torch.device` and
        validated: asking explicitly for a CUDA device on a machine without CUDA is an
        error, never a silent fallback.

    Returns
    -------
    device : str

    Raises
    ------
    ValueError
        If ``device`` is not a torch device, or names CUDA while CUDA is not available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use "
            "device='auto' to fall back to the CPU, or device='cpu'."
        )
    return str(dev)


def get_map_location(device, *, owner="The estimator"):
    """Map location for loading torch objects saved on ``device``.

    Like skorch: when the objects were saved on CUDA and CUDA is not available now, they
    load on the CPU and a :class:`UserWarning` says so.

    Returns
    -------
    map_location : str
    """
    device = "cpu" if device is None else str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"{owner} was saved on {device!r}; CUDA is not available, loading on CPU "
            "(device_ is now 'cpu').",
            UserWarning,
            stacklevel=3,
        )
        return "cpu"
    return device


# -- seeding -----------------------------------------------------------------------------
def check_random_state_local(random_state):
    """A numpy ``RandomState`` that does not share numpy's global state.

    Unlike :func:`sklearn.utils.check_random_state`, ``None`` gives a generator seeded
    from fresh operating-system entropy, not numpy's global generator: drawing from it
    leaves the caller's ``np.random`` state unchanged.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        An int seeds a new generator; a ``RandomState`` instance is returned as is (the
        caller handed it over to be drawn from).

    Returns
    -------
    rng : numpy.random.RandomState
    """
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return random_state
    raise ValueError(
        f"random_state must be an int, a numpy RandomState instance or None; got "
        f"{random_state!r}."
    )


def draw_seed(rng):
    """Draw a non-negative 31-bit seed from the numpy generator ``rng``."""
    return int(rng.randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def torch_random_context(seed, device="cpu"):
    """Run torch code on a forked generator seeded with ``seed``.

    Inside the block torch's global generator (and, for a CUDA ``device``, that
    device's generator) is seeded with ``seed``; on exit the caller's state is restored,
    so weight initialisation, dropout and data-loader shuffling are reproducible without
    changing the random numbers the caller draws afterwards.

    Parameters
    ----------
    seed : int
    device : str, default="cpu"
        The device the code runs on.
    """
    dev = torch.device(device)
    cuda = [] if dev.type != "cuda" else [dev.index or 0]
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.manual_seed(seed)
        yield


# -- validation split --------------------------------------------------------------------
def check_fit_groups(groups, n_samples):
    """Validate the ``groups`` given to ``fit``: 1-D ids or 2-D rows, one per sample.

    Returns the array and the integer group code of each sample (each distinct row of
    2-D groups is one group).
    """
    groups = np.asarray(groups)
    if groups.ndim not in (1, 2) or (groups.ndim == 2 and groups.shape[1] == 0):
        raise ValueError(
            "groups must be 1-D group ids or a 2-D array whose distinct rows are the "
            "groups, e.g. the (subject, recording, segment) rows of window_groups; got "
            f"shape {groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: groups has "
            f"{groups.shape[0]} rows for {n_samples} samples."
        )
    if groups.ndim == 1:
        return groups, _group_codes(groups, "groups")
    columns = [_group_codes(groups[:, j], f"groups (column {j})") for j in range(groups.shape[1])]
    _, codes = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
    return groups, codes.reshape(-1)


def validation_split(y, groups, validation_fraction, random_state, *, disable_hint=None):
    """Carve an early-stopping validation split out of the *training* data.

    The one rule every torch estimator uses.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels the split preserves (the estimator's target, or the sensitive
        attribute its adversaries learn).
    groups : array-like of shape (n_samples,) or (n_samples, n_columns), or None
        Group of each sample; with 2-D groups each distinct row is one group, e.g.
        the (subject, recording, segment) rows of
        :func:`~sklearn_privacy.model_selection.window_groups` (one group per run of
        activity) or (subject, recording) pairs (one per recording). Whole groups go
        to one side, so overlapping windows of one group never sit on both sides.
        The split is *class-preserving*: groups are taken in a random order until
        about ``validation_fraction`` of the samples are held out, skipping any
        group whose removal would leave a class without a training sample (a
        classifier that never trained on a person cannot be validated on them, and
        early stopping would then stop at a random epoch).
    validation_fraction : float in (0, 1)
        Share of the samples to hold out. With groups, a group is added while doing
        so brings the held-out share closer to it; when every admissible group is
        larger than that, the smallest one is held out.
    random_state : int, RandomState instance or None
        Controls the order of the groups, or the shuffled split without groups.
    disable_hint : str, default=None
        How the user turns validation off, quoted in errors (default
        ``"early_stopping=False"``).

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Non-empty, disjoint, sorted indices covering all samples. With groups, every
        class of ``y`` keeps at least one training sample. Without groups the split is
        stratified when every class has at least 2 samples.

    Raises
    ------
    ValueError
        If no group can be held out without removing the last training samples of a
        class (e.g. one recording per person given as the groups of an identity
        classifier): pass finer groups, such as the 3-column (subject, recording,
        segment) rows of ``window_groups``, or turn validation off. Also for fewer
        than 3 samples, and for invalid groups.
    """
    hint = disable_hint or "early_stopping=False"
    # Never draw from numpy's global generator (random_state=None).
    random_state = check_random_state_local(random_state)
    y = np.asarray(y)
    n_samples = len(y)
    if groups is not None:
        _, group = check_fit_groups(groups, n_samples)
        return _class_preserving_group_split(y, group, validation_fraction, random_state, hint)
    if n_samples < 3:
        raise ValueError(
            f"Early stopping needs at least 3 samples (2 to train, 1 to validate); got "
            f"{n_samples}. Set {hint} for tiny data."
        )
    n_val = min(max(1, round(validation_fraction * n_samples)), n_samples - 2)
    n_classes = len(np.unique(y))
    counts = np.bincount(np.unique(y, return_inverse=True)[1].reshape(-1))
    if counts.min() >= 2 and n_val >= n_classes and n_samples - n_val >= n_classes:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=random_state)
    else:
        splitter = ShuffleSplit(n_splits=1, test_size=n_val, random_state=random_state)
    return next(splitter.split(np.zeros(n_samples), y))


def _class_preserving_group_split(y, group, validation_fraction, random_state, hint):
    """Hold out whole groups (codes ``group``) while every class keeps training samples."""
    n_samples = len(y)
    _, y_code = np.unique(y, return_inverse=True)
    y_code = y_code.reshape(-1)
    n_classes = int(y_code.max()) + 1
    n_groups = int(group.max()) + 1
    # Sparse (group, class) counts: the classes of each group are one slice.
    cell, cell_count = np.unique(group.astype(np.int64) * n_classes + y_code, return_counts=True)
    cell_group, cell_class = np.divmod(cell, n_classes)
    bounds = np.searchsorted(cell_group, np.arange(n_groups + 1))
    group_size = np.bincount(group, minlength=n_groups)

    remaining = np.bincount(y_code, minlength=n_classes)  # training samples per class
    target = validation_fraction * n_samples
    held = np.zeros(n_groups, dtype=bool)
    n_val = 0
    smallest_admissible = None
    for g in check_random_state_local(random_state).permutation(n_groups):
        if n_val >= target:
            break
        cls, cnt = cell_class[bounds[g] : bounds[g + 1]], cell_count[bounds[g] : bounds[g + 1]]
        if np.any(remaining[cls] <= cnt):
            continue  # the last training samples of a class
        if n_val + group_size[g] / 2 < target:  # brings the held-out share closer
            held[g] = True
            remaining[cls] -= cnt
            n_val += group_size[g]
        elif smallest_admissible is None or group_size[g] < group_size[smallest_admissible]:
            smallest_admissible = g
    if n_val == 0 and smallest_admissible is not None:
        held[smallest_admissible] = True
    if not held.any():
        raise ValueError(
            f"Early stopping cannot hold out any of the {n_groups} group(s) for validation: "
            "each holds the last training samples of some class (e.g. one recording per "
            "person as the groups of an identity classifier, which would hold out whole "
            "people). Pass finer groups, such as the (subject, recording, segment) rows "
            "of window_groups(windows) (make_windows' segment: one group per run of "
            f"activity), or set {hint}."
        )
    val = held[group]
    indices = np.arange(n_samples)
    return indices[~val], indices[val]


# -- progress ----------------------------------------------------------------------------
# progress_bar lives in _progress, beside the step reporter of the evaluation jobs.


class EpochProgress(Callback):
    """skorch callback: advance a :func:`progress_bar` at every epoch, show the scores.

    Parameters
    ----------
    bar : tqdm.tqdm
    keys : sequence of (str, str), default=(("loss", "loss"),)
        ``(history key without its train_/valid_ prefix, short name)`` pairs shown after
        each epoch; the validation score is shown when there is a validation set.
    """

    def __init__(self, bar, keys=(("loss", "loss"),)):
        self.bar = bar
        self.keys = keys

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        row = net.history[-1]
        prefix = "valid" if dataset_valid is not None else "train"
        phase = getattr(net, "phase", None)
        shown = {"phase": phase[:4]} if isinstance(phase, str) else {}
        for key, short in self.keys:
            if f"{prefix}_{key}" in row:
                shown[short] = f"{row[f'{prefix}_{key}']:.3f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)


# -- pickling ----------------------------------------------------------------------------
class _TorchBytes(bytes):
    """Marks an attribute saved with :func:`torch.save` inside a pickle."""


class TorchPickleMixin:
    """Pickle torch attributes the way skorch's ``NeuralNet`` does.

    The attributes named in ``_torch_attributes`` (modules, tensors, or objects holding
    them) are written with :func:`torch.save` into the pickle. At load time they are read
    with a map location chosen then: the device they were saved on when it is available
    here; the CPU when they were saved on CUDA and CUDA is not available, with a
    :class:`UserWarning`, ``device_`` then becoming ``"cpu"``. So a model trained on a
    GPU loads and runs on a CPU-only machine.
    """

    #: Names of the attributes holding torch state.
    _torch_attributes = ()

    def __getstate__(self):
        parent = getattr(super(), "__getstate__", None)
        state = dict(parent() if parent is not None else self.__dict__)
        for name in self._torch_attributes:
            value = state.get(name)
            if value is not None and not isinstance(value, _TorchBytes):
                buffer = io.BytesIO()
                torch.save(value, buffer)
                state[name] = _TorchBytes(buffer.getvalue())
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved_on = state.get("device_")
        map_location = None
        for name in self._torch_attributes:
            value = state.get(name)
            if isinstance(value, _TorchBytes):
                if map_location is None:
                    map_location = get_map_location(saved_on, owner=type(self).__name__)
                state[name] = torch.load(
                    io.BytesIO(value), map_location=map_location, weights_only=False
                )
        if (
            isinstance(saved_on, str) and saved_on.startswith("cuda")
            and not torch.cuda.is_available()
        ):
            if map_location is None:  # no torch attribute: still warn once
                get_map_location(saved_on, owner=type(self).__name__)
            state["device_"] = "cpu"
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)


def check_batch_size(batch_size, name="batch_size"):
    """Validate a positive integer batch size."""
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}.")
    return int(batch_size)
