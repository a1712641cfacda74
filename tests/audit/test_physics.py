"""Conservation detection, the PDE residual and the hybrid stepper's guards."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import audit
import solvers
from tests.audit.conftest import fine

G1 = solvers.Grid((32,))


@pytest.mark.parametrize("pde, expected", [
    (solvers.Advection(G1, c=1.0), {"mass": True, "energy": True}),
    (solvers.KdV(G1), {"mass": True, "energy": True}),
    (solvers.Burgers(G1, nu=0.1), {"mass": True, "energy": False}),
    (solvers.Diffusion(G1, nu=0.1), {"mass": True, "energy": False}),
    (solvers.KuramotoSivashinsky(solvers.Grid((32,), (22.0,))), {"mass": True, "energy": False}),
    (solvers.AllenCahn(G1, eps=0.1), {"mass": False, "energy": False}),
    (solvers.NavierStokes2D(solvers.Grid((16, 16)), nu=0.01, drag=0.1), {"mass": False, "energy": False}),
    (solvers.NavierStokes2D(solvers.Grid((16, 16)), nu=0.01), {"mass": True, "energy": False}),
])
def test_conserved_quantities(pde, expected):
    assert audit.conserved_quantities(pde) == expected


def test_drift():
    traj = np.ones((1, 3, 8, 1))
    traj[0, 1] *= 2.0  # mass +1, energy x4
    d = audit.drift(traj, 1)
    assert d["mass"][0].tolist() == [0.0, 1.0, 0.0]
    assert d["energy"][0].tolist() == [0.0, 3.0, 0.0]


def _smooth(grid):
    (x,) = grid.coordinates()
    return jnp.asarray((np.sin(x) + 0.5 * np.cos(2 * x + 1))[:, None])


def test_defects_of_reference_and_poor_stepper():
    pde = solvers.Burgers(G1, nu=0.1)
    u0 = _smooth(G1)[None]
    ref = np.asarray(jax.jit(jax.vmap(lambda u: solvers.rollout(fine(pde, 0.1, 8), u, 4)))(u0))
    coarse = solvers.stepper(pde, 0.1, "etdrk1")
    poor = np.asarray(jax.jit(jax.vmap(lambda u: solvers.rollout(coarse, u, 4)))(u0))
    d_ref = audit.defects(pde, 0.1, ref, substeps=8)
    assert d_ref.shape == (1, 4) and np.max(d_ref) < 1e-13  # the same step: round-off only
    d_poor = audit.defects(pde, 0.1, poor, substeps=8)
    one = np.sqrt(np.mean((poor[0, 1] - np.asarray(jax.jit(fine(pde, 0.1, 8))(u0[0]))) ** 2))
    assert d_poor[0, 0] == pytest.approx(one, rel=1e-10)


def test_residual_guard_exact_for_linear_pde():
    pde = solvers.Diffusion(G1, nu=0.2)
    u = _smooth(G1)
    exact = solvers.stepper(pde, 0.3)(u)  # ETD is exact for a linear PDE
    guard = jax.jit(audit.residual_guard(pde, 0.3, 1e-8))
    ok, est = guard(u, exact)
    assert bool(ok) and float(est) < 1e-14
    noise = 1e-3 * jnp.asarray(np.random.default_rng(0).normal(size=u.shape))
    ok, est = guard(u, exact + noise)
    assert not bool(ok) and float(est) == pytest.approx(float(jnp.sqrt(jnp.mean(noise**2))), rel=1e-10)
    ok, est = guard(u, exact.at[3, 0].set(jnp.nan))
    assert not bool(ok) and not np.isfinite(float(est))


def test_residual_guard_is_third_order_consistent():
    """The trapezoidal residual of an exact step shrinks like h^3 (local error of the rule)."""
    pde = solvers.Burgers(G1, nu=0.1)
    u = _smooth(G1)
    est = []
    for h in (0.05, 0.025, 0.0125):
        exact = fine(pde, h, 64)(u)
        est.append(float(audit.residual_guard(pde, h, 1.0)(u, exact)[1]))
    orders = np.log2(np.array(est[:-1]) / np.array(est[1:]))
    assert np.all((orders > 2.7) & (orders < 3.3)), orders


def test_residual_guard_etdrk4_and_vmap():
    pde = solvers.Burgers(G1, nu=0.1)
    u = _smooth(G1)
    guard = audit.residual_guard(pde, 0.1, 1e-3, method="etdrk4", substeps=4)
    prop = fine(pde, 0.1, 4)(u) + 1e-2
    ok, est = guard(u, prop)
    assert not bool(ok) and float(est) == pytest.approx(1e-2, rel=1e-9)
    oks, ests = jax.jit(jax.vmap(guard))(jnp.stack([u, u]), jnp.stack([prop, prop - 1e-2]))
    assert oks.tolist() == [False, True] and float(ests[1]) < 1e-12
    with pytest.raises(ValueError, match="method"):
        audit.residual_guard(pde, 0.1, 1e-3, method="rk4")
    with pytest.raises(ValueError, match="tolerance"):
        audit.residual_guard(pde, 0.1, 0.0)


def test_conformal_guard():
    u = jnp.zeros((8, 1))
    guard = jax.jit(audit.conformal_guard(1e-4, 1e-3))
    ok, est = guard(u, u + 1.0)
    assert bool(ok) and float(est) == 1e-4 and est.dtype == jnp.float64 and ok.shape == ()
    ok, _ = guard(u, u.at[0, 0].set(jnp.inf))
    assert not bool(ok)
    ok, est = audit.conformal_guard(1e-2, 1e-3)(u, u)
    assert not bool(ok) and float(est) == 1e-2
    with pytest.raises(ValueError, match="bound_per_step"):
        audit.conformal_guard(float("nan"), 1e-3)
