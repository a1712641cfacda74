"""Darcy flow: exact (manufactured) solution, second-order convergence, honest error bound,
discontinuous coefficients against a much finer reference, input validation, CG behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import solvers
from solvers import Grid, ResolutionError
from solvers._darcy import Darcy, _to_coarse, cell_centres

PI = np.pi


def grid(n):
    return Grid((n, n), (1.0, 1.0))


# Manufactured solution u = sin(pi x) sin(pi y) with a = 1 + 0.5 sin(2 pi x) cos(pi y) (min 0.5).
def a_smooth(x, y):
    return 1 + 0.5 * np.sin(2 * PI * x) * np.cos(PI * y)


def u_exact(x, y):
    return np.sin(PI * x) * np.sin(PI * y)


def f_manufactured(x, y):
    """f = -div(a grad u) = -(a_x u_x + a_y u_y + a Lap u), derived by hand."""
    ax = PI * np.cos(2 * PI * x) * np.cos(PI * y)
    ay = -0.5 * PI * np.sin(2 * PI * x) * np.sin(PI * y)
    ux = PI * np.cos(PI * x) * np.sin(PI * y)
    uy = PI * np.sin(PI * x) * np.cos(PI * y)
    return -(ax * ux + ay * uy - 2 * PI**2 * a_smooth(x, y) * u_exact(x, y))


def manufactured(n, **kw):
    return Darcy(grid(n), coefficient=a_smooth, source=f_manufactured, **kw)


def true_error(n, u):
    x, y = cell_centres(n)
    return float(np.sqrt(np.mean((np.asarray(u).reshape(n, n) - u_exact(x, y)) ** 2)))


def test_manufactured_solution_converges_at_second_order():
    ns = np.array([8, 16, 32, 64])
    errs = np.array([true_error(n, manufactured(n).solve_linear()[0]) for n in ns])
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert 1.8 <= slope <= 2.2, (slope, errs)
    assert errs[-1] < 2e-4  # sin(pi x) sin(pi y) to about 1e-4 on 64^2 cells


def test_reported_error_bounds_true_error_and_is_tight():
    for n in (16, 32):
        sol = manufactured(n).solve_steady(rtol=1e-2, atol=0.0)
        assert sol.u.shape == (1, n, n, 1) and sol.u.dtype == jnp.float64
        np.testing.assert_array_equal(sol.t, [0.0])
        assert sol.grid == grid(n) and sol.solve_grid == grid(n)
        err = true_error(n, sol.u)
        assert err <= float(sol.error[0]) <= 3 * err, (n, err, sol.error)
        assert float(sol.error[0]) <= float(sol.tolerance[0])
        assert 1.8 <= sol.stats["observed_order"] <= 2.0


def test_too_tight_tolerance_raises_resolution_error_naming_grids():
    with pytest.raises(ResolutionError, match=r"\(16, 16\).*\(\d+, \d+\)"):
        manufactured(16).solve_steady(rtol=1e-8, atol=0.0)


def test_discontinuous_coefficient_bound_holds_against_fine_reference():
    n, k = 16, 16  # reference on 256^2 cells, the same piecewise-constant field
    x, y = cell_centres(n)
    a = np.where((np.abs(x - 0.5) < 0.25) & (np.abs(y - 0.5) < 0.25), 10.0, 1.0)  # square inclusion
    sol = Darcy(grid(n), coefficient=a, source=1.0).solve_steady(rtol=1.0, atol=0.0)
    ref = Darcy(grid(n * k), coefficient=np.kron(a, np.ones((k, k))), source=1.0)
    u_ref, iters, _ = ref.solve_linear()
    while u_ref.shape[0] > n:  # to the coarse cell centres (4th-order interpolation)
        u_ref = _to_coarse(u_ref)
    err = float(solvers.rms(sol.u[0, ..., 0] - u_ref))
    assert np.isfinite(sol.error[0]) and err > 0
    assert err <= float(sol.error[0]) <= 3 * err, (err, sol.error)
    assert iters < 200


def test_constant_coefficient_cg_converges_in_one_step_and_variable_is_grid_independent():
    d = Darcy(grid(32), coefficient=2.0, source=lambda x, y: np.sin(3 * x) + y)
    u, iters, res = d.solve_linear()
    assert iters <= 2  # the preconditioner is the exact inverse for constant a
    assert res <= 1e-10 * float(solvers.rms(d.source))
    its = [manufactured(n).solve_linear()[1] for n in (16, 64)]
    assert max(its) <= 15 and its[1] <= its[0] + 3, its


def test_operator_is_symmetric_positive_definite_and_matches_5_point_stencil():
    n = 8
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 3.0, (n, n))
    d = Darcy(grid(n), coefficient=a)
    u, v = rng.normal(size=(2, n, n))
    assert np.isclose(np.vdot(d.apply(u), v), np.vdot(u, d.apply(v)), rtol=1e-12)
    assert np.vdot(d.apply(u), u) > 0
    # One interior cell by hand: harmonic-mean fluxes over h^2.
    i, j = 3, 4
    hm = lambda p, q: 2 * p * q / (p + q)  # noqa: E731
    by_hand = n**2 * (hm(a[i, j], a[i + 1, j]) * (u[i, j] - u[i + 1, j]) + hm(a[i, j], a[i - 1, j]) * (u[i, j] - u[i - 1, j])
                      + hm(a[i, j], a[i, j + 1]) * (u[i, j] - u[i, j + 1]) + hm(a[i, j], a[i, j - 1]) * (u[i, j] - u[i, j - 1]))
    assert np.isclose(d.apply(u)[i, j], by_hand, rtol=1e-12)
    # A wall cell: the ghost holds -u, so the wall face adds 2 a u / h^2.
    wall = n**2 * (2 * a[0, j] * u[0, j] + hm(a[0, j], a[1, j]) * (u[0, j] - u[1, j])
                   + hm(a[0, j], a[0, j + 1]) * (u[0, j] - u[0, j + 1]) + hm(a[0, j], a[0, j - 1]) * (u[0, j] - u[0, j - 1]))
    assert np.isclose(d.apply(u)[0, j], wall, rtol=1e-12)


def test_array_callable_and_number_inputs_agree():
    n = 8
    x, y = cell_centres(n)
    a = a_smooth(x, y)
    d1 = Darcy(grid(n), coefficient=a, source=2.5)
    d2 = Darcy(grid(n), coefficient=a[..., None], source=lambda x, y: 2.5 + 0 * x)
    np.testing.assert_array_equal(d1.coefficient, d2.coefficient)
    np.testing.assert_array_equal(d1.source, d2.source)
    # Arrays are piecewise constant: the refined problem repeats each cell value.
    np.testing.assert_array_equal(d1.refined(2).coefficient[:2, :2], np.full((2, 2), a[0, 0]))
    # Callables are re-evaluated at the finer cell centres.
    xf, yf = cell_centres(2 * n)
    np.testing.assert_allclose(manufactured(n).refined(2).coefficient, a_smooth(xf, yf))


def test_is_a_pytree_usable_under_jit():
    d = manufactured(8)
    leaves, tree = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    u = jnp.ones((8, 8))
    np.testing.assert_allclose(jax.jit(lambda p: p.apply(u))(d), d.apply(u), rtol=1e-14)


@pytest.mark.parametrize("kwargs, match", [
    ({"coefficient": -1.0}, "coefficient"),
    ({"coefficient": 0.0}, "coefficient"),
    ({"coefficient": np.full((8, 8), np.nan)}, "coefficient"),
    ({"coefficient": np.ones((8, 9))}, "coefficient"),
    ({"coefficient": lambda x, y: np.where(x > 0.5, -1.0, 1.0)}, "coefficient"),
    ({"coefficient": "one"}, "coefficient"),
    ({"source": np.full((8, 8), np.inf)}, "source"),
    ({"source": np.ones((4, 4))}, "source"),
    ({"cg_rtol": 0.0}, "cg_rtol"),
    ({"cg_rtol": 2.0}, "cg_rtol"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Darcy(grid(8), **kwargs)


@pytest.mark.parametrize("g", [Grid((8, 8)), Grid((8, 16), (1.0, 1.0)), Grid((8,), (1.0,))])
def test_bad_grids_raise(g):
    with pytest.raises(ValueError, match="grid"):
        Darcy(g, coefficient=1.0)


def test_bad_tolerances_raise():
    d = manufactured(8)
    with pytest.raises(ValueError, match="rtol"):
        d.solve_steady(rtol=-1.0, atol=0.0)
    with pytest.raises(ValueError, match="rtol"):
        d.solve_steady(rtol=0.0, atol=0.0)


def test_solve_steady_is_deterministic_and_bounds_true_error():
    d = solvers.Darcy(grid(16), coefficient=a_smooth, source=f_manufactured)
    sol = d.solve_steady(rtol=1e-2, atol=0.0)
    direct = d.solve_steady(rtol=1e-2, atol=0.0)
    np.testing.assert_array_equal(sol.u, direct.u)
    np.testing.assert_array_equal(sol.error, direct.error)
    assert true_error(16, sol.u) <= float(sol.error[0])


def test_generic_solve_refuses_darcy_and_names_solve_steady():
    d = solvers.Darcy(grid(16), coefficient=a_smooth, source=f_manufactured)
    with pytest.raises(ValueError, match=r"pde must be a semi-linear PDE.*got Darcy.*Darcy\.solve_steady"):
        solvers.solve(d, rtol=1e-2, atol=0.0)
