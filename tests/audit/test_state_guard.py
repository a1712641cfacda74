"""The state guard: a per-step bound ``q * score(u, proposal)`` calibrated by split conformal prediction."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import solvers
import surrogates
from audit import (AuditError, calibrate_state_guard, conformal_bound, one_step_pairs, proposal_residual,
                   state_guard, state_guard_coverage)
from audit._hybrid_trajectory import step_costs
from tests.audit.conftest import DT, N, NU, make_split

ALPHA = 0.1


@pytest.fixture(scope="module")
def burgers_pairs():
    """Burgers (32 points, nu = 0.05, dt = 0.1): 40 calibration and 40 test trajectories of 8 steps."""
    pde = solvers.Burgers(solvers.Grid((N,)), nu=NU)
    cal, test = make_split(pde, 40, 8, seed=2), make_split(pde, 40, 8, seed=3)
    return pde, cal["u"].values, test["u"].values


@pytest.mark.parametrize("method", ["etdrk1", "etdrk2"])
def test_coverage_on_the_test_split(burgers_pairs, method):
    """An analytic surrogate (one coarse ETDRK step per save interval, its error state-dependent)."""
    pde, u_cal, u_test = burgers_pairs
    surrogate = solvers.stepper(pde, DT, method)
    cal = calibrate_state_guard(surrogate, u_cal, pde, DT, ALPHA)
    assert cal.pairs == 40 * 8 and cal.alpha == ALPHA and cal.quantile > 0
    errors, scores = one_step_pairs(surrogate, u_test, pde, DT)
    coverage = state_guard_coverage(errors, scores, cal.quantile)
    assert coverage >= 1 - ALPHA - 0.1
    # the bound follows the state: most steps get a bound far below the constant (worst-step) conformal bound
    e_cal, _ = one_step_pairs(surrogate, u_cal, pde, DT)
    constant = conformal_bound(e_cal.max(axis=1), ALPHA)
    assert np.median(cal.quantile * scores) < constant / 3


def test_guard_runs_inside_the_hybrid_stepper(burgers_pairs):
    pde, u_cal, u_test = burgers_pairs
    surrogate = solvers.stepper(pde, DT, "etdrk2")
    cal = calibrate_state_guard(surrogate, u_cal, pde, DT, ALPHA)
    fine = solvers.stepper(pde, DT / 8)
    solver = lambda u: jax.lax.fori_loop(0, 8, lambda _, v: fine(v), u)  # noqa: E731
    tol = 0.02
    hybrid = surrogates.HybridStepper(solver, surrogate, state_guard(proposal_residual(pde, DT), cal.quantile, tol),
                                      tolerance=tol)
    traj = jax.jit(jax.vmap(lambda u0: hybrid.rollout(u0, 8)))(jnp.asarray(u_test[:, 0]))
    taken = np.asarray(traj.surrogate)
    assert 0 < taken.mean() < 1  # accepted where the state is easy, refused where it is not
    error = np.sqrt(np.mean((np.asarray(traj.u) - u_test) ** 2, axis=(2, 3)))
    assert np.mean(error <= tol) >= 0.9


def test_non_finite_proposal_is_refused(burgers_pairs):
    pde, _, u_test = burgers_pairs
    guard = state_guard(proposal_residual(pde, DT), 1.0, 1.0)
    u = jnp.asarray(u_test[0, 0])
    ok, est = jax.jit(guard)(u, u.at[3, 0].set(jnp.nan))
    assert not bool(ok) and np.isinf(float(est))


@pytest.mark.parametrize("q, error", [(np.inf, AuditError), (-1.0, AuditError)])
def test_bad_quantile_is_refused(burgers_pairs, q, error):
    with pytest.raises(error, match="quantile"):
        state_guard(proposal_residual(burgers_pairs[0], DT), q, 1e-3)


def test_bad_tolerance_and_dt_are_refused(burgers_pairs):
    with pytest.raises(solvers.InputError, match="tolerance"):
        state_guard(proposal_residual(burgers_pairs[0], DT), 1.0, 0.0)
    with pytest.raises(solvers.InputError, match="dt"):
        proposal_residual(burgers_pairs[0], -0.1)


def test_too_few_calibration_pairs_are_refused(burgers_pairs):
    pde, u_cal, _ = burgers_pairs
    with pytest.raises(AuditError, match="too few"):
        calibrate_state_guard(solvers.stepper(pde, DT, "etdrk1"), u_cal[:2, :3], pde, DT, 0.01)


def test_hybrid_config_selects_it():
    assert surrogates.HybridConfig(tolerance=1e-3, guard="state").guard == "state"
    with pytest.raises(ValueError, match="'conformal', 'residual' or 'state'"):
        surrogates.HybridConfig(tolerance=1e-3, guard="constant")


FNO_GRID, FNO_WIDTH, FNO_MODES = 256, 64, 16


def test_cost_below_a_tenth_of_an_fno_step():
    """Burgers on 256 points; the surrogate an FNO (width 64, 16 modes, ModelConfig's other defaults; untrained,
    its cost does not depend on its weights), float32 inside, float64 in and out."""
    pde = solvers.Burgers(solvers.Grid((FNO_GRID,)), nu=NU)
    model = surrogates.build_model(surrogates.ModelConfig(kind="fno", width=FNO_WIDTH, modes=(FNO_MODES,)),
                                   ndim=1, channels=1, input_steps=1, num_params=0)
    stepper = surrogates.as_stepper(model, types.SimpleNamespace(mean=np.zeros(1), std=np.ones(1)))
    (x,) = pde.grid.coordinates()
    u0 = jnp.asarray(np.sin(x)[:, None])
    costs = step_costs(solvers.stepper(pde, DT), stepper, state_guard(proposal_residual(pde, DT), 1.0, 1.0), u0,
                       repeats=3)
    assert costs.guard / costs.surrogate < 0.1, costs
