"""Rung 3: measured convergence orders. Time: log-log fit of the error against dt (ETDRK4 ~4 on
Kuramoto-Sivashinsky, ETDRK2 ~2, ETDRK1 ~1). Space: the error falls geometrically with N.

The KS problem is Kassam & Trefethen's (u0 = cos(x/16)(1 + sin(x/16)), L = 32 pi, N = 128).
Measured ETDRK4 slopes between successive halvings of dt at T = 5:
3.63, 3.72, 3.84, 3.93, 3.97, 3.98 for dt = 0.5 .. 1/128. At T = 10 the solution has steepened
and the top resolved modes (stiff: |dt * lambda| >> 1) carry energy, and the Cox-Matthews scheme
shows its stiff order reduction (Hochbruck & Ostermann, SIAM J. Numer. Anal. 43, 2005) in the
intermediate range: slopes 5.0, 3.2, 2.7, 3.4 for dt = 0.25 .. 1/32, returning to 3.7, 3.85,
3.9 once dt * max|lambda| <~ 1 (dt <= 1/64), before rounding (~1e-12) takes over. The test uses
T = 5 and dt = 1/16 .. 1/128, the asymptotic range, with differences of successive solutions
(u_dt - u_dt/2 has the order of the error itself and needs no reference).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.solvers._exact import burgers_sin, rms
from solvers import Burgers, Grid, KuramotoSivashinsky, rollout, stepper


def ks_final(method, n, t_end=5.0):
    grid = Grid((128,), (32 * np.pi,))
    (x,) = grid.coordinates()
    u0 = jnp.asarray((np.cos(x / 16) * (1 + np.sin(x / 16)))[:, None])
    step = stepper(KuramotoSivashinsky(grid), t_end / n, method)
    return np.asarray(jax.jit(lambda u: rollout(step, u, n)[-1])(u0))


def fitted_slope(method, counts):
    """Slope of log(|u_n - u_2n|) against log(dt), least squares over ``counts``."""
    finals = {n: ks_final(method, n) for n in sorted(set(counts) | {2 * n for n in counts})}
    diffs = np.array([rms(finals[n] - finals[2 * n]) for n in counts])
    dts = 5.0 / np.array(counts)
    assert np.all(diffs > 1e-13), f"differences reach rounding: {diffs}"
    return np.polyfit(np.log(dts), np.log(diffs), 1)[0]


def test_etdrk4_is_fourth_order_on_kuramoto_sivashinsky():
    slope = fitted_slope("etdrk4", [80, 160, 320, 640])
    assert 3.8 <= slope <= 4.3, slope


@pytest.mark.parametrize("method,order", [("etdrk2", 2), ("etdrk1", 1)])
def test_lower_order_methods_have_their_order(method, order):
    slope = fitted_slope(method, [80, 160, 320, 640])
    assert order - 0.2 <= slope <= order + 0.3, slope


def test_spectral_convergence_in_space():
    # Burgers from sin x against Cole-Hopf, time error kept below 1e-13 (800 steps); the error
    # falls by a roughly constant factor per added 16 points until rounding
    nu, t = 0.1, 1.0
    errors = []
    for n in (32, 48, 64, 80, 96):
        grid = Grid((n,))
        (x,) = grid.coordinates()
        step = stepper(Burgers(grid, nu=nu), t / 800)
        u = np.asarray(jax.jit(lambda v: rollout(step, v, 800)[-1])(jnp.asarray(np.sin(x)[:, None])))
        errors.append(rms(u[:, 0] - burgers_sin(x, t, nu)))
    errors = np.array(errors)
    ratios = errors[:-1] / errors[1:]
    assert np.all(ratios > 3), errors  # geometric: each +16 points gains a constant factor
    slope = np.polyfit([32, 48, 64, 80, 96], np.log(errors), 1)[0]
    assert slope < -0.15, (slope, errors)  # error ~ exp(-0.15 N) or faster: spectral, not algebraic
    assert errors[-1] < 1e-6
