"""Every example in the package's docstrings runs and prints what it shows.

One test per module that holds examples (``>>>``), so a failure names its module. The
examples run with scikit-learn's global configuration restored afterwards; ``ELLIPSIS``
and ``NORMALIZE_WHITESPACE`` let them elide long reprs and wrap lines.
"""

import doctest
import importlib
import importlib.util
import pkgutil

import pytest
import sklearn

import sklearn_privacy


def _modules_with_examples():
    names = [sklearn_privacy.__name__] + [
        info.name for info in pkgutil.walk_packages(sklearn_privacy.__path__, "sklearn_privacy.")
    ]
    # Read the source instead of importing, so collection stays cheap.
    return sorted(
        name for name in names
        if ">>>" in open(importlib.util.find_spec(name).origin, encoding="utf-8").read()
    )


MODULES = _modules_with_examples()
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_the_package_has_docstring_examples():
    # Guards the discovery above: an empty list would make this file pass vacuously.
    assert len(MODULES) >= 20


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    tests = [t for t in doctest.DocTestFinder().find(module, module_name) if t.examples]
    assert tests, f"{module_name} has '>>>' in its source but no docstring example was found"
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    with sklearn.config_context():
        for test in tests:
            runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)


def test_hypothesis_runs_derandomized_by_default():
    # tests/conftest.py loads the "ci" profile: the same examples on every run, so a
    # failing example found once is found again (HYPOTHESIS_PROFILE=explore searches anew).
    import os

    from hypothesis import settings

    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
        assert settings.default.derandomize
        assert settings.default.database is None
