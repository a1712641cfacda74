"""``solve`` aims at the tolerance it is given: on exact solutions the true error lands within
0.05x..1x of the tolerance (the latest frame, where the accumulated error is largest) and the
reported bound is at most 10x the true error, and never below it.

Measured (global Richardson estimate, _AIM 0.5): Burgers nu = 0.1 on 256 points, rtol 1e-6 / 1e-9: true
error 0.076 / 0.10 of the tolerance, bound 1.9x..2.0x the true error; KdV soliton rtol 1e-6: 0.061, bound
2.1x..2.6x. Earlier frames sit lower: the time budget is spread over the whole interval, so a frame holds
the error committed up to its time.
"""

import numpy as np
import pytest

from tests.solvers._exact import burgers_sin, frame_rms, kdv_soliton
from solvers import Burgers, Grid, KdV, solve


def _burgers(nu=0.1, n=256):
    grid = Grid((n,))
    (x,) = grid.coordinates()
    ts = np.linspace(0, 1, 5)
    return Burgers(grid, nu=nu), np.sin(x)[:, None], ts, np.stack([burgers_sin(x, t, nu) for t in ts])[..., None]


def _kdv(length=80.0, c=1.0):
    grid = Grid((512,), (length,))
    (x,) = grid.coordinates()
    ts = np.linspace(0, 2, 5)
    exact = np.stack([kdv_soliton(x, t, c, length / 2 - 2) for t in ts])[..., None]
    return KdV(grid), exact[0], ts, exact


@pytest.mark.parametrize("problem,rtol", [(_burgers, 1e-6), (_burgers, 1e-9), (_kdv, 1e-6)])
def test_true_error_lands_near_the_tolerance_and_the_bound_near_the_true_error(problem, rtol):
    pde, u0, ts, exact = problem()
    sol = solve(pde, u0, ts, rtol=rtol, atol=1e-12)
    true = frame_rms(np.asarray(sol.u) - exact)[1:]
    error, tol = np.asarray(sol.error)[1:], np.asarray(sol.tolerance)[1:]
    assert np.all(error >= true), (error, true)
    assert np.all(error <= tol)
    assert np.all(error <= 10 * true), (error / true)
    assert np.max(true / tol) <= 1
    if problem is _burgers:
        # the soliton's step errors largely cancel in the global error (it holds ~2% of their sum,
        # measured); the controller credits that only down to 1% of their sum (_KEPT_MIN), so there
        # the true error may land below 0.05 of the tolerance (measured 0.061 at rtol 1e-6)
        assert np.max(true / tol) >= 0.05, true / tol
