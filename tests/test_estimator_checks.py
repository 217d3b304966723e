"""scikit-learn's estimator checks on every public estimator (see the harness)."""

from sklearn_privacy.utils.estimator_checks import (
    EXPECTED_FAILED_CHECKS,
    all_estimators,
    parametrize_with_privacy_checks,
)


@parametrize_with_privacy_checks()
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_expected_failure_has_a_reason():
    names = {name for name, _ in all_estimators()}
    for name, checks in EXPECTED_FAILED_CHECKS.items():
        assert name in names, f"{name} is listed in EXPECTED_FAILED_CHECKS but not public"
        for check, reason in checks.items():
            assert isinstance(reason, str) and len(reason) > 10, (name, check)
