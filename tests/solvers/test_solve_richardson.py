"""``solve``'s time error is a global Richardson estimate (a coarse companion trajectory at twice the
step): it bounds the true error on exact solutions it was not tuned on (other viscosities, speeds,
tolerances, and a linear problem whose time error is all in the explicitly treated term), stays
within the tolerance and within 10x the true error, and reacts to a step sequence, not to a model.
"""

import dataclasses

import numpy as np
import pytest

from tests.solvers._exact import burgers_sin, frame_rms, kdv_soliton
from solvers import Burgers, Grid, KdV, SemiLinearPDE, solve
from solvers._pde import pytree_dataclass, static_field


def check_tight_bound(sol, exact):
    """bound >= true error, bound <= tolerance, bound <= 10 x true error, at every frame after the first."""
    true = frame_rms(np.asarray(sol.u) - exact)[1:]
    error, tol = np.asarray(sol.error)[1:], np.asarray(sol.tolerance)[1:]
    assert np.all(error >= true), (error, true)
    assert np.all(error <= tol), (error, tol)
    assert np.all(error <= 10 * true), error / true
    return true / tol


@pytest.mark.parametrize("nu,n,rtol", [(0.2, 128, 1e-5), (0.07, 512, 1e-7), (0.1, 256, 1e-10)])
def test_burgers_cole_hopf_other_viscosities_and_tolerances(nu, n, rtol):
    grid = Grid((n,))
    (x,) = grid.coordinates()
    ts = np.linspace(0, 1.5, 4)
    sol = solve(Burgers(grid, nu=nu), np.sin(x)[:, None], ts, rtol=rtol, atol=1e-13, refine=False)
    check_tight_bound(sol, np.stack([burgers_sin(x, t, nu) for t in ts])[..., None])


@pytest.mark.parametrize("c,rtol", [(0.5, 1e-7), (1.5, 1e-5)])
def test_kdv_solitons_of_other_speeds(c, rtol):
    length = 80.0
    grid = Grid((512,), (length,))
    (x,) = grid.coordinates()
    ts = np.linspace(0, 2, 3)
    x0 = length / 2 - 4
    exact = np.stack([kdv_soliton(x, t, c, x0) for t in ts])[..., None]
    sol = solve(KdV(grid), exact[0], ts, rtol=rtol, atol=1e-12, refine=False)
    check_tight_bound(sol, exact)


@pytree_dataclass
class _SplitAdvectionDiffusion(SemiLinearPDE):
    """Test-only: ``u_t = nu u_xx - c u_x`` with the advection as the explicit term ``N(u) = -c u_x``.

    Linear, so its exact solution is known mode by mode, ``exp(-(nu k^2 + i c k) t)``, but unlike
    ``Advection`` and ``Diffusion`` (exact in time) the ETDRK step has a true time error here.
    """

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    nu: float = 0.05
    c: float = 1.0

    def linear(self):
        return self.nu * self.grid.laplacian_symbol()[..., None]

    def nonlinear(self, u_hat):
        (k,) = self.grid.derivative_wavenumbers()
        return -self.c * 1j * k[..., None] * u_hat


@pytest.mark.parametrize("nu,c,rtol", [(0.05, 1.0, 1e-6), (0.01, 2.0, 1e-9)])
def test_linear_advection_diffusion_with_the_advection_stepped_explicitly(nu, c, rtol):
    grid = Grid((64,))
    (x,) = grid.coordinates()
    modes = [(1, 1.0, 0.3), (2, 0.5, 1.1), (5, 0.2, -0.4)]  # (k, amplitude, phase)

    def exact(t):
        return sum(a * np.exp(-nu * k * k * t) * np.cos(k * (x - c * t) + p) for k, a, p in modes)

    ts = np.linspace(0, 2, 5)
    sol = solve(_SplitAdvectionDiffusion(grid, nu=nu, c=c), exact(0)[:, None], ts, rtol=rtol, atol=1e-13,
                refine=False)
    frac = check_tight_bound(sol, np.stack([exact(t) for t in ts])[..., None])
    assert np.max(frac) > 1e-3  # a real time error was measured, not rounding


def test_the_estimate_follows_the_step_sequence():
    # the same problem at a 100x tighter tolerance: the estimate shrinks with the true error
    nu, grid = 0.1, Grid((256,))
    (x,) = grid.coordinates()
    ts = np.linspace(0, 1, 3)
    exact = np.stack([burgers_sin(x, t, nu) for t in ts])[..., None]
    loose = solve(Burgers(grid, nu=nu), np.sin(x)[:, None], ts, rtol=1e-6, atol=1e-13)
    tight = solve(Burgers(grid, nu=nu), np.sin(x)[:, None], ts, rtol=1e-8, atol=1e-13)
    for sol in (loose, tight):
        check_tight_bound(sol, exact)
    assert tight.stats["accepted"] > loose.stats["accepted"]
    assert np.asarray(tight.error)[-1] < 0.05 * np.asarray(loose.error)[-1]
