"""Shared fixtures.

``shared_data_dir`` is the one place tests find the real data sets in ``../shared/data``
(or ``$SKLEARN_PRIVACY_SHARED_DATA``). CI always has it; in a clone without it, the tests
that need it skip and say why.
"""

import os
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_shared_data():
    env = os.environ.get("SKLEARN_PRIVACY_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data_dir():
    """Path to the real data sets (``../shared/data``); skips when absent."""
    path = _find_shared_data()
    if path is None:
        pytest.skip(
            "real data not found: expected ../shared/data next to the repository "
            "(or set SKLEARN_PRIVACY_SHARED_DATA)"
        )
    return path
