"""Rung 2: the fixed-step integrators reproduce exact solutions of every PDE class.

Linear PDEs are exact in time (ETD), so heat and advection modes match to rounding. Nonlinear
ones are checked at a step small enough that the time error is far below the tolerance asserted.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tests.solvers._exact import allen_cahn_uniform, burgers_sin, kdv_soliton, rms
from solvers import (Advection, AllenCahn, Burgers, Diffusion, GrayScott, Grid, KdV, KuramotoSivashinsky,
                     NavierStokes2D, rollout, stepper)


def run(pde, u0, dt, n, method="etdrk4"):
    """``n`` steps of size ``dt`` from ``u0``; returns the final state as NumPy."""
    step = stepper(pde, dt, method)
    return np.asarray(jax.jit(lambda u: rollout(step, u, n)[-1])(jnp.asarray(u0, dtype=jnp.float64)))


@pytest.mark.parametrize("shape", [(32,), (16, 24)])
def test_heat_mode_decays_exactly(shape):
    grid = Grid(shape, (2 * np.pi,) * len(shape))
    mesh = grid.mesh()
    ks = (3, -2)[: len(shape)]
    phase = sum(k * x for k, x in zip(ks, mesh))
    nu, t = 0.3, 1.7
    u = run(Diffusion(grid, nu=nu), np.cos(phase)[..., None], t / 3, 3)
    exact = np.exp(-nu * sum(k * k for k in ks) * t) * np.cos(phase)
    assert rms(u[..., 0] - exact) < 1e-14


@pytest.mark.parametrize("shape", [(32,), (16, 24)])
def test_advection_mode_travels_exactly(shape):
    grid = Grid(shape, (2 * np.pi, 4 * np.pi)[: len(shape)])
    mesh = grid.mesh()
    ks = (2.0, 1.5)[: len(shape)]  # 1.5 = mode 3 on the 4 pi axis
    c = (0.7, -0.4)[: len(shape)]
    t = 2.3
    u = run(Advection(grid, c=c), np.sin(sum(k * x for k, x in zip(ks, mesh)))[..., None], t / 5, 5)
    exact = np.sin(sum(k * (x - ci * t) for k, x, ci in zip(ks, mesh, c)))
    assert rms(u[..., 0] - exact) < 1e-13


def test_kdv_soliton_travels_at_its_speed():
    # box of 80 with the soliton >= 36 from the edges: periodic images below 1e-20
    # (512 points: the sech^2 spectrum ~ exp(-pi k) is below 1e-18 at the dealiasing cut-off)
    length, c, t = 80.0, 1.0, 4.0
    grid = Grid((512,), (length,))
    (x,) = grid.coordinates()
    u = run(KdV(grid), kdv_soliton(x, 0, c, length / 2 - 2)[:, None], t / 800, 800)
    err = rms(u[:, 0] - kdv_soliton(x, t, c, length / 2 - 2))
    assert err < 1e-9
    # and the mass int u dx = 2 sqrt(c) is conserved
    assert abs(u.mean() * length - 2 * math.sqrt(c)) < 1e-12


def test_burgers_1d_matches_cole_hopf():
    # measured: 192 points, 800 steps: 3.3e-13 (128 points: 1e-9, the spatial error)
    nu, t = 0.1, 1.0
    grid = Grid((192,))
    (x,) = grid.coordinates()
    u = run(Burgers(grid, nu=nu), np.sin(x)[:, None], t / 800, 800)
    assert rms(u[:, 0] - burgers_sin(x, t, nu)) < 1e-12


def test_burgers_2d_matches_two_cole_hopf_solutions():
    # u = (f(x, t), g(y, t)) with f, g 1-D Burgers solutions solves the 2-D vector Burgers equation
    nu, t = 0.1, 0.6
    grid = Grid((96, 96))  # measured 1-D error on 96 points: 5e-11 (64 points: 6e-8)
    x, y = grid.mesh()
    u0 = np.stack([np.sin(x), np.sin(y + 1.0)], axis=-1)
    u = run(Burgers(grid, nu=nu), u0, t / 240, 240)
    exact = np.stack([burgers_sin(x, t, nu), burgers_sin(y + 1.0, t, nu)], axis=-1)
    assert rms(u - exact) < 1e-10


def test_navier_stokes_taylor_green_decays_exactly():
    # w = 2 sin x sin y is an exact eigenfunction: the nonlinear term vanishes, w decays as exp(-2 nu t)
    nu, t = 0.05, 2.0
    grid = Grid((32, 32))
    x, y = grid.mesh()
    w0 = 2 * np.sin(x) * np.sin(y)
    w = run(NavierStokes2D(grid, nu=nu), w0[..., None], t / 10, 10)
    assert rms(w[..., 0] - w0 * np.exp(-2 * nu * t)) < 1e-13


def test_navier_stokes_kolmogorov_laminar_state_is_steady():
    # forcing -n cos(n y) balances nu Lap w for w = -cos(n y) / (nu n): a steady shear flow
    nu, n = 0.1, 4
    grid = Grid((32, 32))
    _, y = grid.mesh()
    w0 = -np.cos(n * y) / (nu * n)
    w = run(NavierStokes2D(grid, nu=nu, forcing="kolmogorov", forcing_mode=n), w0[..., None], 0.1, 20)
    assert rms(w[..., 0] - w0) < 1e-13


@pytest.mark.parametrize("shape", [(16,), (8, 8)])
def test_allen_cahn_uniform_state_follows_the_logistic_ode(shape):
    grid = Grid(shape)
    u0, t = 0.2, 3.0
    u = run(AllenCahn(grid, eps=0.1), np.full((*shape, 1), u0), t / 1200, 1200)
    assert np.max(np.abs(u - allen_cahn_uniform(u0, t))) < 1e-12  # RK4-like: 5e-11 at 300 steps


def test_gray_scott_uniform_state_matches_scipy():
    f, k = 0.04, 0.06
    grid = Grid((16,))
    uv0 = np.array([0.6, 0.3])
    t = 20.0
    u = run(GrayScott(grid, f=f, k=k), np.broadcast_to(uv0, (16, 2)), t / 400, 400)

    def rhs(_, w):
        a, b = w
        return [-a * b * b + f * (1 - a), a * b * b - (f + k) * b]

    ref = solve_ivp(rhs, (0, t), uv0, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
    assert np.max(np.abs(u - ref)) < 1e-11


def test_kuramoto_sivashinsky_uniform_state_is_steady():
    grid = Grid((32,), (22.0,))
    u = run(KuramotoSivashinsky(grid), np.full((32, 1), 0.7), 0.5, 10)
    assert np.max(np.abs(u - 0.7)) < 1e-14
