"""Rung 5: agreement with an independent integrator. scipy's DOP853 (rtol 1e-13, atol 1e-15) on
the same spectral right-hand side ``du/dt = ifft(L fft(u) + N(fft(u)))``, written as a real ODE
system in physical space, against ``solve`` and against a fixed small ETDRK4 step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tests.solvers._exact import frame_rms
from solvers import Burgers, GrayScott, Grid, KuramotoSivashinsky, NavierStokes2D, rollout, solve, stepper


def dop853(pde, u0, ts):
    grid = pde.grid
    lin = pde.linear()
    shape = pde.state_shape

    @jax.jit
    def rhs(u):
        u_hat = grid.fft(u.reshape(shape))
        return grid.ifft(lin * u_hat + pde.nonlinear(u_hat)).reshape(-1)

    out = solve_ivp(lambda _, y: np.asarray(rhs(jnp.asarray(y))), (ts[0], ts[-1]), np.ravel(u0), t_eval=ts,
                    method="DOP853", rtol=1e-13, atol=1e-15)
    assert out.success
    return out.y.T.reshape(len(ts), *shape)


def cases():
    # grids fine enough that solve's spectral-tail check passes at rtol=1e-8 without refinement
    g = Grid((128,))
    (x,) = g.coordinates()
    yield "burgers", Burgers(g, nu=0.2), np.sin(x)[:, None], np.linspace(0, 0.5, 3)
    g = Grid((48,), (22.0,))
    (x,) = g.coordinates()
    yield "ks", KuramotoSivashinsky(g), (0.5 * np.cos(2 * np.pi * x / 22))[:, None], np.linspace(0, 2, 3)
    g = Grid((64,), (2.5,))
    (x,) = g.coordinates()
    bump = np.exp(-(np.sin(np.pi * (x - 1.25) / 2.5)) ** 2 * 4)
    yield "grayscott", GrayScott(g, du=2e-2, dv=1e-2), np.stack([1 - 0.5 * bump, 0.25 * bump], -1), \
        np.linspace(0, 10, 3)
    g = Grid((48, 48))
    x, y = g.mesh()
    yield "ns2d", NavierStokes2D(g, nu=0.1), (0.3 * np.sin(x) * np.cos(2 * y) + 0.2 * np.cos(x + y))[..., None], \
        np.linspace(0, 0.5, 3)


@pytest.mark.parametrize("name,pde,u0,ts", list(cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_solve_and_fixed_step_agree_with_dop853(name, pde, u0, ts):
    ref = dop853(pde, u0, ts)
    sol = solve(pde, u0, ts, rtol=1e-8, atol=1e-12, refine=False)
    diff = frame_rms(np.asarray(sol.u) - ref)
    # DOP853 at rtol 1e-13 is ~1e-12 off; the solver's bound must cover the rest
    assert np.all(diff <= np.asarray(sol.error) + 1e-11), (diff, sol.error)
    assert np.max(diff) < 1e-7
    n = 200
    step = stepper(pde, (ts[1] - ts[0]) / n)
    traj = jax.jit(lambda v: rollout(lambda w: rollout(step, w, n)[-1], v, len(ts) - 1))(jnp.asarray(u0))
    assert np.max(frame_rms(np.asarray(traj) - ref)) < 1e-10
