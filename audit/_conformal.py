"""Split conformal error bounds (Vovk et al. 2005; Angelopoulos & Bates 2021, "A gentle introduction").

With ``n`` exchangeable calibration scores ``s_1..s_n`` (here: a surrogate's
error on ``n`` calibration initial conditions) and a new score ``s`` from the
same distribution, the bound ``q = s_(k)``, the ``k``-th smallest calibration
score with ``k = ceil((n + 1)(1 - alpha))``, satisfies
``P(s <= q) >= 1 - alpha`` (and ``<= 1 - alpha + 1/(n + 1)`` without ties).
When ``k > n`` no finite bound exists at that level: at least
``ceil(1/alpha) - 1`` calibration samples are needed.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import AuditError


def _rank(n: int, alpha: float) -> int:
    """``k = ceil((n + 1)(1 - alpha))``, computed as ``n + 1 - floor((n + 1) alpha)``.

    The two are equal in exact arithmetic; the second keeps its precision for any ``n``
    (``(n + 1)(1 - alpha)`` rounds to within ``1e-7`` of an integer already at ``n = 1e9``).
    A product within ``1e-12`` (relative) below an integer counts as that integer, so that
    ``alpha = 0.1``, ``n = 9`` gives ``k = 9``.
    """
    m = (n + 1) * alpha
    return n + 1 - math.floor(m + 1e-12 * max(1.0, m))


def min_calibration_size(alpha: float) -> int:
    """The smallest ``n`` with ``ceil((n + 1)(1 - alpha)) <= n``.

    The condition is ``(n + 1)(1 - alpha) <= n``, i.e. ``n >= (1 - alpha) / alpha = 1/alpha - 1``;
    the closed form is checked (and moved by one where rounding put it off) against the
    condition itself. Constant time for any ``alpha`` (``1e-9`` needs 999999999 samples).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = max(1, math.ceil((1 - 1e-12) / alpha - 1))  # (n + 1) alpha >= 1 within _rank's tolerance
    for _ in range(2):  # rounding of the division moves it by one at most
        if n > 1 and _rank(n - 1, alpha) <= n - 1:
            n -= 1
        elif _rank(n, alpha) > n:
            n += 1
    return n


def check_calibration_size(n: int, alpha: float) -> None:
    """``AuditError`` unless ``n`` calibration samples give a finite conformal bound at level ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if _rank(n, alpha) > n:
        raise AuditError(f"the calibration split has {n} samples, too few for a conformal bound at "
                         f"alpha={alpha:g} (needs at least {min_calibration_size(alpha)}); "
                         "generate a larger calibration split or raise alpha")


def conformal_bound(scores, alpha: float) -> float:
    """The split-conformal upper bound of the score at level ``1 - alpha``.

    Args:
        scores: ``(n,)`` calibration scores (finite).
        alpha: miscoverage in ``(0, 1)``.

    Raises:
        AuditError: when ``n`` is too small for ``alpha`` or a score is not finite.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = s.size
    check_calibration_size(n, alpha)
    k = _rank(n, alpha)
    if not np.all(np.isfinite(s)):
        raise AuditError("a calibration score is not finite (the surrogate diverged on the calibration split)")
    return float(s[k - 1])


def conformal_bounds(scores, alpha: float) -> np.ndarray:
    """Per-column bounds of ``(n, m)`` scores (e.g. one column per rollout step): ``(m,)``."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.array([conformal_bound(scores[:, j], alpha) for j in range(scores.shape[1])])


def coverage(scores, bound) -> float:
    """Fraction of ``scores`` that are ``<= bound`` (broadcast over a trailing per-step axis, then averaged)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(scores <= bound))
