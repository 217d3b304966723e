"""One harness that runs scikit-learn's estimator checks on every public estimator.

Usage in a test module::

    from sklearn_privacy.utils.estimator_checks import parametrize_with_privacy_checks

    @parametrize_with_privacy_checks()
    def test_sklearn_compatible(estimator, check):
        check(estimator)

Every public estimator (a class exported in a subpackage's ``__all__`` that derives from
:class:`~sklearn.base.BaseEstimator`) is found automatically, so a new estimator is
checked as soon as it is exported. Torch-trained estimators are built with the small,
fast parameters of :data:`FAST_TEST_PARAMS`; checks they are known to fail are listed in
:data:`EXPECTED_FAILED_CHECKS`, each with its reason.
"""

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklearn_privacy

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "FAST_TEST_PARAMS",
    "all_estimators",
    "parametrize_with_privacy_checks",
]

#: Constructor parameters that make an estimator quick enough for the checks
#: (a few epochs, tiny networks). Keyed by class name.
FAST_TEST_PARAMS: dict[str, dict] = {}

#: ``{class name: {check name: reason}}``: checks an estimator is known to fail, and why.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


def register_estimator_check_config(name, *, fast_params=None, expected_failed_checks=None):
    """Record the fast parameters and expected failures of an estimator class.

    Estimator modules call this next to their class so the reasons live beside the code.
    """
    if fast_params:
        FAST_TEST_PARAMS.setdefault(name, {}).update(fast_params)
    if expected_failed_checks:
        EXPECTED_FAILED_CHECKS.setdefault(name, {}).update(expected_failed_checks)


def _is_abstract(cls):
    return bool(getattr(cls, "__abstractmethods__", None))


def all_estimators():
    """Return ``[(name, class)]`` of every public, concrete sklearn-privacy estimator.

    Public means exported in the ``__all__`` of a top-level subpackage.
    """
    found = {}
    for module_info in pkgutil.iter_modules(sklearn_privacy.__path__):
        if module_info.name.startswith("_") or not module_info.ispkg:
            continue
        module = importlib.import_module(f"sklearn_privacy.{module_info.name}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not _is_abstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())


def _build(cls):
    return cls(**FAST_TEST_PARAMS.get(cls.__name__, {}))


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


def parametrize_with_privacy_checks(estimators=None):
    """``pytest`` decorator running scikit-learn's checks on our estimators.

    Parameters
    ----------
    estimators : list of estimator instances, default=None
        Defaults to every public estimator built with :data:`FAST_TEST_PARAMS`.

    Returns
    -------
    decorator : callable
        :func:`sklearn.utils.estimator_checks.parametrize_with_checks` with each
        expected failure marked ``xfail`` with its reason (strict: a check that starts
        passing must be removed from the list).
    """
    if estimators is None:
        estimators = [_build(cls) for _, cls in all_estimators()]
    return parametrize_with_checks(
        estimators,
        expected_failed_checks=_expected_failed_checks,
        xfail_strict=True,
    )
