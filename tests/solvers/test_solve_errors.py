"""``solve``'s failure modes: an unresolved grid (refine or ResolutionError naming the grid, the tail
energy and the grid needed), blow-up (SolverDivergedError with the time reached), bad arguments
(ValueError naming the argument and its value, or the pde when it is not semi-linear)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from tests.solvers._exact import burgers_sin, frame_rms
from solvers import (Burgers, Diffusion, Grid, ResolutionError, SemiLinearPDE, Solution, SolverDivergedError,
                     solve)
from solvers._pde import pytree_dataclass, static_field

NU = 0.1
GRID = Grid((64,))
(X,) = GRID.coordinates()
U0 = np.sin(X)[:, None]
TS = np.linspace(0, 1, 3)


def test_refine_false_raises_resolution_error_naming_grid_tail_and_need():
    # 64 points hold Burgers (nu=0.1, T=1) to ~1e-6 only; rtol=1e-9 needs more (192 measured: 3e-13)
    with pytest.raises(ResolutionError) as info:
        solve(Burgers(GRID, nu=NU), U0, TS, rtol=1e-9, atol=1e-12, refine=False)
    msg = str(info.value)
    assert "grid (64,)" in msg and "tail energy" in msg and "refine=False" in msg
    need = int(msg.split("grid shape (")[1].split(",")[0])
    assert need in (128, 256, 512)


def test_refine_true_solves_on_a_finer_grid_and_returns_the_requested_points():
    sol = solve(Burgers(GRID, nu=NU), U0, TS, rtol=1e-9, atol=1e-12)
    assert sol.grid == GRID and sol.solve_grid.shape[0] in (128, 256)
    assert sol.u.shape == (3, 64, 1) and sol.stats["refinements"] >= 1
    exact = np.stack([burgers_sin(X, t, NU) for t in TS])[..., None]
    true = frame_rms(np.asarray(sol.u) - exact)
    assert np.all(true <= np.asarray(sol.error)) and np.all(np.asarray(sol.error) <= np.asarray(sol.tolerance))
    # and the 64-point fixed-grid answer would have been ~1e-6 off: refinement was needed
    with pytest.raises(ResolutionError, match="max_refinements=0"):
        solve(Burgers(GRID, nu=NU), U0, TS, rtol=1e-9, atol=1e-12, max_refinements=0)


def test_unresolved_initial_condition_is_caught():
    rng = np.random.default_rng(1)
    noisy = U0 + 1e-3 * rng.standard_normal(U0.shape)  # energy up to the Nyquist mode
    with pytest.raises(ResolutionError, match="near t=0"):
        solve(Diffusion(GRID, nu=NU), noisy, TS, rtol=1e-8, refine=False)


@pytest.mark.parametrize("kw,match", [
    ({"u0": np.zeros((32, 1))}, r"u0 must have shape \(64, 1\)"),
    ({"u0": np.full((64, 1), np.nan)}, "u0 must be finite"),
    ({"t": [0.0, 0.5, 0.2]}, "t must be strictly increasing"),
    ({"t": [0.0, np.nan]}, "t must be finite"),
    ({"t": [[0.0, 1.0]]}, "t must be a 1-D array"),
    ({"rtol": -1e-6}, "rtol must be a finite number >= 0, got -1e-06"),
    ({"atol": float("nan")}, "atol must be"),
    ({"rtol": 0.0, "atol": 0.0}, "must not both be 0"),
    ({"method": "rk45"}, "method must be one of"),
    ({"max_steps": 0}, "max_steps must be a positive integer, got 0"),
    ({"max_refinements": -1}, "max_refinements must be"),
])
def test_bad_arguments_raise_value_error_naming_them(kw, match):
    args = dict(u0=U0, t=TS)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        solve(Diffusion(GRID, nu=NU), **args)


@pytree_dataclass
class _BlowUp(SemiLinearPDE):
    """Test-only: ``u_t = nu u_xx + u^2``; a uniform ``u0 > 0`` blows up at ``t = 1 / u0``."""

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    nu: float = 0.1

    def linear(self):
        return self.nu * self.grid.laplacian_symbol()[..., None]

    def nonlinear(self, u_hat):
        u = self.to_physical(u_hat)
        return self.to_fourier(u**2)


def test_blow_up_raises_solver_diverged_error_with_the_time_reached():
    grid = Grid((16,))
    with pytest.raises(SolverDivergedError) as info:
        solve(_BlowUp(grid), np.full((16, 1), 2.0), [0.0, 1.0], rtol=1e-6, atol=1e-8)
    msg = str(info.value)
    reached = float(msg.split("stopped at t=")[1].split(" ")[0])
    assert 0.3 < reached <= 0.5  # blow-up at t = 1/2


def test_max_steps_raises_solver_diverged_error():
    with pytest.raises(SolverDivergedError, match="max_steps=3"):
        solve(Burgers(GRID, nu=NU), U0, TS, rtol=1e-6, max_steps=3)


def test_a_steady_problem_is_refused_with_a_pointer_to_solve_steady():
    calls = []

    class Steady:
        def solve_steady(self, rtol, atol):
            calls.append((rtol, atol))
            return "solution"

    with pytest.raises(ValueError, match=r"semi-linear PDE.*got Steady.*solve_steady\(rtol, atol\)"):
        solve(Steady(), rtol=1e-7, atol=1e-9)
    assert calls == []


def test_first_frame_is_the_initial_condition_and_single_time_works():
    sol = solve(Diffusion(GRID, nu=NU), U0, [0.5], rtol=1e-8)
    assert isinstance(sol, Solution) and sol.u.shape == (1, 64, 1)
    np.testing.assert_array_equal(np.asarray(sol.u[0]), U0)
    assert float(sol.error[0]) < 1e-12 and sol.rtol == 1e-8 and sol.u.dtype == jnp.float64


@pytree_dataclass
class _Lorenz(SemiLinearPDE):
    """Test-only: the Lorenz system at every grid point (L = 0), chaotic (Lyapunov exponent ~0.9)."""

    grid: Grid = static_field()
    channels = 3

    def linear(self):
        return jnp.zeros((*self.grid.spectral_shape, 3))

    def nonlinear(self, u_hat):
        u = self.grid.ifft(u_hat)
        x, y, z = u[..., 0], u[..., 1], u[..., 2]
        return self.grid.fft(jnp.stack([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z], axis=-1))


def test_chaotic_error_growth_is_caught_and_bounded():
    # local errors grow ~exp(0.9 t): the step controller reads the growth from the carried global error
    # (it holds more than the local errors committed) and shrinks the local tolerance in the same pass;
    # the bound still holds
    from scipy.integrate import solve_ivp

    grid = Grid((4,))
    x0 = np.array([1.0, 1.0, 20.0])
    ts = np.linspace(0, 6, 4)
    sol = solve(_Lorenz(grid), np.broadcast_to(x0, (4, 3)), ts, rtol=1e-6, atol=1e-8)
    assert sol.stats["integrations"] == 1

    def rhs(_, w):
        return [10 * (w[1] - w[0]), w[0] * (28 - w[2]) - w[1], w[0] * w[1] - 8 / 3 * w[2]]

    ref = solve_ivp(rhs, (0, 6), x0, t_eval=ts, method="DOP853", rtol=1e-13, atol=1e-13).y.T
    true = frame_rms(np.asarray(sol.u) - ref[:, None, :])
    assert np.all(true <= np.asarray(sol.error)) and np.all(np.asarray(sol.error) <= np.asarray(sol.tolerance))


@pytree_dataclass
class _DipAndRecover(SemiLinearPDE):
    """Test-only linear PDE, per Fourier mode ``m``: ``u_t = rate(m) u`` with mode 1 decaying (-2), mode 2
    growing (+1) and everything else decaying at -3, so RMS(u) first drops ~5x, then recovers."""

    grid: Grid = static_field()

    def linear(self):
        m = np.abs(self.grid._mode_numbers()[0])
        rate = np.where(m == 1, -2.0, np.where(m == 2, 1.0, -3.0))
        return jnp.asarray(rate, dtype=jnp.float64)[..., None]

    def nonlinear(self, u_hat):
        return jnp.zeros_like(u_hat)


def test_resolution_error_states_an_estimate_above_the_limit_it_was_compared_with():
    # the top-band mode (m = 10 of 32 points) passes the per-step check (2 x tail <= tol/2 at every step)
    # but the frame check takes the running maximum of the tail: at t = 1, where RMS(u) has dipped,
    # 2 x tail(t=0) > tol/2. The tolerance at the last frame is back near tol(0), so a message quoting
    # the tail and the last frame's limit read "0.2 tol0 exceeds 0.25 tol0".
    grid = Grid((32,))
    (x,) = grid.coordinates()
    rtol = 1e-6
    tol0 = rtol * np.sqrt(np.mean((np.sin(x) + 0.05 * np.sin(2 * x)) ** 2))
    tail = 0.2 * tol0
    u0 = (np.sin(x) + 0.05 * np.sin(2 * x) + tail * np.sqrt(2) * np.sin(10 * x))[:, None]
    with pytest.raises(ResolutionError) as info:
        solve(_DipAndRecover(grid), u0, np.linspace(0, 3, 4), rtol=rtol, atol=1e-14, refine=False)
    msg = str(info.value)
    estimate = float(msg.split("space error estimate ")[1].split(" ")[0])
    limit = float(msg.split("half of the tolerance, ")[1].split(";")[0])
    stated_tail = float(msg.split("the RMS of the top modes, ")[1].split(")")[0])
    assert estimate > limit
    assert estimate == pytest.approx(2 * stated_tail, rel=1e-2)  # SPACE_SAFETY x tail at stride 1
    assert stated_tail == pytest.approx(tail, rel=1e-2)
    assert "near t=1 " in msg  # the frame where the dip made the running tail too large


@pytest.mark.parametrize("rtol", [1e-14, 1e-15])
def test_tolerance_below_rounding_is_reported_as_such_not_as_a_collapsed_step(rtol):
    # asked for local errors below the rounding noise of the error estimate, the error-per-unit-step
    # rule used to shrink h until "the step size collapsed"; now no step is asked to beat rounding and
    # the global check says the tolerance cannot be met
    with pytest.raises(SolverDivergedError) as info:
        solve(Burgers(GRID, nu=NU), 0.5 * U0, TS, rtol=rtol, atol=0.0)
    msg = str(info.value)
    assert "collapsed" not in msg
    assert "below rounding" in msg or "re-integrations" in msg
