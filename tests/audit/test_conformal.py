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
