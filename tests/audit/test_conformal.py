"""Split conformal bounds: the order statistic, the size check, and coverage on a known distribution."""

import numpy as np
import pytest

import audit


def test_order_statistic():
    s = np.arange(1.0, 10.0)[::-1]  # 9 scores, unsorted
    assert audit.conformal_bound(s, 0.1) == 9.0  # k = ceil(10 * 0.9) = 9
    assert audit.conformal_bound(np.arange(1.0, 20.0), 0.1) == 18.0  # k = ceil(20 * 0.9) = 18
    assert audit.conformal_bound(np.arange(1.0, 20.0), 0.5) == 10.0  # k = ceil(20 * 0.5) = 10


def test_too_few_calibration_samples():
    assert audit.min_calibration_size(0.1) == 9
    assert audit.min_calibration_size(0.05) == 19
    assert audit.min_calibration_size(0.5) == 1
    with pytest.raises(audit.AuditError, match="8 samples, too few .* at least 9"):
        audit.conformal_bound(np.ones(8), 0.1)
    with pytest.raises(audit.AuditError, match="not finite"):
        audit.conformal_bound(np.r_[np.ones(9), np.nan], 0.1)


@pytest.mark.parametrize("n, alpha", [(19, 0.1), (50, 0.2), (9, 0.1)])
def test_coverage_on_known_distribution(n, alpha):
    """P(new score <= bound) = ceil((n+1)(1-alpha)) / (n+1) exactly for continuous scores."""
    rng = np.random.default_rng(1234 + n)
    trials = 4000
    cal = rng.lognormal(size=(trials, n))
    new = rng.lognormal(size=trials)
    bounds = np.array([audit.conformal_bound(c, alpha) for c in cal])
    covered = np.mean(new <= bounds)
    expected = np.ceil((n + 1) * (1 - alpha)) / (n + 1)
    assert expected >= 1 - alpha
    sigma = np.sqrt(expected * (1 - expected) / trials)
    assert abs(covered - expected) < 4 * sigma
    assert audit.coverage(new, bounds) == covered


def _counted_min_size(alpha):
    """The definition, one n at a time (what min_calibration_size replaces)."""
    n = 1
    while np.ceil((n + 1) * (1 - alpha) - 1e-12) > n:
        n += 1
    return n


def test_min_calibration_size_is_the_closed_form_checked_against_the_definition():
    for alpha in [*np.linspace(0.002, 0.998, 499), 0.1, 0.05, 0.2, 1 / 3, 1 / 7, 0.01, 0.001]:
        assert audit.min_calibration_size(alpha) == _counted_min_size(alpha), alpha
    # alpha = 1e-9: (1 - alpha)/alpha = 999999999 exactly, found without counting to it
    n = audit.min_calibration_size(1e-9)
    assert n == 999_999_999
    assert audit.conformal_bound(np.zeros(3), 0.5) == 0.0  # the bound's rank agrees for small n
    with pytest.raises(audit.AuditError, match="999999998 samples, too few .* at least 999999999"):
        audit._conformal.check_calibration_size(n - 1, 1e-9)
    audit._conformal.check_calibration_size(n, 1e-9)


def test_tiny_alpha_is_refused_before_any_rollout(splits):
    from tests.audit.conftest import quick_config

    test, cal = splits
    calls = []

    def stepper(u):
        calls.append(1)
        return u

    with pytest.raises(audit.AuditError, match=r"19 samples, too few .* alpha=1e-09 .* at least 999999999"):
        audit.run(stepper, test, cal, "rel_l2<=1", config=quick_config(alpha=1e-9), repeats=1)
    with pytest.raises(audit.AuditError, match="at least 999999999"):
        audit.one_step_bound(stepper, cal, 1e-9)
    assert calls == []  # the stepper was never traced nor called
