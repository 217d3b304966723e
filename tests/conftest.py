"""Shared fixtures and test settings.

``shared_data_dir`` is the one place tests find the real data sets in ``../shared/data``
(or ``$SKLEARN_PRIVACY_SHARED_DATA``). CI always has it; in a clone without it, the tests
that need it skip and say why.

Hypothesis runs derandomized by default (profile ``"ci"``): every run tries the same
examples, so a failure reproduces on the next run and on another machine. Set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples instead.
"""

import os
from pathlib import Path

import pytest
from hypothesis import settings

_REPO_ROOT = Path(__file__).resolve().parents[1]

# derandomize: the examples derive from each test's name, not from a random seed, so the
# same examples run everywhere; database=None keeps no state between runs (nothing to
# explain a failure that only one checkout sees); deadline=None because the machines that
# run the suite are shared and a slow example is not a failure.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
