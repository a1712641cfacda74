"""The guarded hybrid stepper, tested without trained models.

The "surrogate" is the solver's own step plus a known perturbation, so the
error each surrogate step adds is known exactly and every count below is
predictable.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers import Diffusion, Grid, rollout, stepper
from surrogates import HybridStepper

N_STEPS = 12


@pytest.fixture(scope="module")
def setup():
    grid = Grid(shape=(32,), length=(2 * np.pi,))
    solver = stepper(Diffusion(grid, nu=0.1), dt=0.05)
    (x,) = grid.coordinates()
    u0 = jnp.asarray((np.sin(x) + 0.5 * np.cos(3 * x))[:, None])
    bump = jnp.asarray(np.sin(2 * x)[:, None])  # RMS 1/sqrt(2)
    return solver, u0, bump


def rms(a):
    return jnp.sqrt(jnp.mean(jnp.square(a)))


def perturbed(solver, bump, eps):
    """A surrogate that adds exactly ``eps`` RMS error to the solver's step."""
    return lambda u: solver(u) + eps * np.sqrt(2) * bump


def oracle_guard(solver, per_step):
    """Measures the true one-step error; accepts it when it is <= per_step."""
    def guard(u, proposed):
        e = rms(proposed - solver(u))
        return e <= per_step, e
    return guard


def constant_guard(bound):
    """Like the audit's conformal guard: always accepts, with a fixed per-step bound."""
    return lambda u, proposed: (jnp.array(True), jnp.array(bound))


def test_perfect_surrogate_takes_every_step(setup):
    solver, u0, _ = setup
    hybrid = HybridStepper(solver, solver, oracle_guard(solver, 1e-12), tolerance=1e-8)
    traj = jax.jit(hybrid.rollout, static_argnums=1)(u0, N_STEPS)
    assert int(traj.final.surrogate_steps) == N_STEPS and int(traj.final.solver_steps) == 0
    assert bool(jnp.all(traj.surrogate)) and not bool(traj.final.exhausted)
    np.testing.assert_allclose(traj.u, rollout(solver, u0, N_STEPS), atol=1e-14)


def test_too_poor_surrogate_ends_solver_only(setup):
    solver, u0, bump = setup
    hybrid = HybridStepper(solver, perturbed(solver, bump, 0.1), oracle_guard(solver, 1e-3), tolerance=1e-2)
    traj = hybrid.rollout(u0, N_STEPS)
    assert int(traj.final.surrogate_steps) == 0 and int(traj.final.solver_steps) == N_STEPS
    assert int(traj.final.rejected) == N_STEPS
    assert not bool(jnp.any(traj.surrogate))
    # the solver's own steps, one call at a time (rollout of an ETDStepper itself stays in Fourier
    # space between steps, which differs at rounding level)
    np.testing.assert_array_equal(traj.u, rollout(lambda u: solver(u), u0, N_STEPS))
    assert float(traj.error[-1]) == 0.0


def test_budget_exhaustion_falls_back_for_the_rest(setup):
    solver, u0, bump = setup
    eps, tol = 1e-3, 3.5e-3  # room for exactly 3 surrogate steps
    hybrid = HybridStepper(solver, perturbed(solver, bump, eps), constant_guard(eps), tolerance=tol)
    traj = hybrid.rollout(u0, N_STEPS)
    np.testing.assert_array_equal(np.asarray(traj.surrogate), [True] * 3 + [False] * (N_STEPS - 3))
    assert bool(traj.final.exhausted)
    assert int(traj.final.rejected) == 0  # the guard never refused: the budget did
    np.testing.assert_allclose(traj.error[-1], 3 * eps, rtol=1e-12)
    assert float(jnp.max(traj.error)) <= tol
    # the carried estimate bounds the true error (diffusion does not amplify perturbations)
    true = jax.vmap(rms)(traj.u - rollout(solver, u0, N_STEPS))
    assert bool(jnp.all(true <= traj.error + 1e-15))
    assert float(true[-1]) > 0.5 * eps  # the perturbation is really there


def test_correct_every_forces_solver_steps(setup):
    solver, u0, bump = setup
    hybrid = HybridStepper(solver, perturbed(solver, bump, 1e-6), constant_guard(1e-6), tolerance=1.0,
                           correct_every=3)
    traj = hybrid.rollout(u0, 9)
    # every 3rd step (3, 6, 9) is a forced solver step; the others are surrogate steps
    np.testing.assert_array_equal(np.asarray(traj.surrogate), [True, True, False] * 3)
    assert int(traj.final.solver_steps) == 3 and int(traj.final.rejected) == 0
    assert not bool(traj.final.exhausted)
    np.testing.assert_allclose(traj.error[-1], 6e-6, rtol=1e-12)


def test_growth_amplifies_the_carried_error(setup):
    solver, u0, bump = setup
    hybrid = HybridStepper(solver, perturbed(solver, bump, 1e-3), constant_guard(1e-3), tolerance=1.0,
                           growth=2.0, solver_error=1e-4, correct_every=2)
    traj = hybrid.rollout(u0, 4)
    # e1 = 1e-3 (surrogate), e2 = 2 e1 + 1e-4 (solver), e3 = 2 e2 + 1e-3, e4 = 2 e3 + 1e-4
    e = [0.0]
    for i in range(4):
        e.append(2 * e[-1] + (1e-3 if i % 2 == 0 else 1e-4))
    np.testing.assert_allclose(traj.error, e, rtol=1e-12)


def test_guard_refusals_counted_and_non_finite_proposal_refused(setup):
    solver, u0, _ = setup
    nan_surrogate = lambda u: u * jnp.nan  # noqa: E731
    hybrid = HybridStepper(solver, nan_surrogate, constant_guard(0.0), tolerance=1.0)
    traj = hybrid.rollout(u0, 4)
    assert int(traj.final.rejected) == 4 and int(traj.final.surrogate_steps) == 0
    assert bool(jnp.all(jnp.isfinite(traj.u)))
    assert not bool(traj.final.exhausted)


def test_plain_call_is_a_stepper_and_vmaps(setup):
    solver, u0, bump = setup
    good = HybridStepper(solver, perturbed(solver, bump, 1e-4), oracle_guard(solver, 1e-3), tolerance=1e-3)
    poor = HybridStepper(solver, perturbed(solver, bump, 1e-2), oracle_guard(solver, 1e-3), tolerance=1e-3)
    one = jax.jit(good)
    np.testing.assert_allclose(one(u0), solver(u0) + 1e-4 * np.sqrt(2) * bump, atol=1e-14)
    np.testing.assert_allclose(jax.jit(poor)(u0), solver(u0), atol=0)
    batch = jnp.stack([u0, 2 * u0, -u0])
    out = jax.jit(jax.vmap(good))(batch)
    np.testing.assert_allclose(out, jnp.stack([one(u) for u in batch]), atol=1e-14)
    traj = rollout(good, u0, 3)  # usable wherever a solver stepper is
    assert traj.shape == (4, *u0.shape)


def test_rollout_vmaps_over_initial_conditions(setup):
    solver, u0, bump = setup
    eps = 1e-3
    hybrid = HybridStepper(solver, perturbed(solver, bump, eps), oracle_guard(solver, 2e-3), tolerance=4.5e-3)
    batch = jnp.stack([u0, 0.5 * u0])
    many = jax.jit(jax.vmap(hybrid.rollout, in_axes=(0, None)), static_argnums=1)(batch, 6)
    for i in range(2):
        one = hybrid.rollout(batch[i], 6)
        np.testing.assert_allclose(many.u[i], one.u, atol=1e-14)
        np.testing.assert_array_equal(many.surrogate[i], one.surrogate)
    np.testing.assert_array_equal(many.final.surrogate_steps, [4, 4])


@pytest.mark.parametrize("kwargs, match", [
    ({"tolerance": 0.0}, "tolerance"),
    ({"tolerance": float("nan")}, "tolerance"),
    ({"tolerance": 1.0, "correct_every": 1}, "correct_every"),
    ({"tolerance": 1.0, "correct_every": -2}, "correct_every"),
    ({"tolerance": 1.0, "growth": 0.5}, "growth"),
    ({"tolerance": 1.0, "solver_error": -1.0}, "solver_error"),
])
def test_bad_arguments_name_themselves(setup, kwargs, match):
    solver, _, _ = setup
    with pytest.raises(ValueError, match=match):
        HybridStepper(solver, solver, constant_guard(0.0), **kwargs)


def test_non_callable_guard_refused(setup):
    solver, _, _ = setup
    with pytest.raises(ValueError, match="guard"):
        HybridStepper(solver, solver, 3.0, tolerance=1.0)
