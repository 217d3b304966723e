"""Torch helpers shared by every estimator: device choice and seeding."""

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device):
    """Return the torch device string an estimator should use.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or str or torch.device
        ``"auto"`` picks ``"cuda"`` when a GPU is visible and ``"cpu"`` otherwise;
        anything else is passed to :class:`torch.device` and validated.

    Returns
    -------
    device : str
    """
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return str(dev)


def seed_torch(random_state):
    """Seed numpy and torch from ``random_state`` and return the numpy generator.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        ``None`` leaves torch's global generator as it is (non-deterministic runs).

    Returns
    -------
    rng : numpy.random.RandomState
    """
    rng = check_random_state(random_state)
    if random_state is not None:
        # Derive the torch seed from the numpy generator so that a RandomState
        # instance also gives reproducible torch initialisation.
        torch.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
    return rng


def check_batch_size(batch_size, name="batch_size"):
    """Validate a positive integer batch size."""
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}.")
    return int(batch_size)
