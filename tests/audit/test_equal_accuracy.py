"""The equal-accuracy search on cases with a known answer."""

import jax.numpy as jnp
import numpy as np
import pytest

import audit
import solvers
from audit import _equal_accuracy
from tests.audit.conftest import DT, fine, initial_conditions


@pytest.mark.slow
def test_finds_the_surrogates_own_setting(burgers, splits):
    """The 'surrogate' is the solver with 4 ETDRK4 steps per save interval: the search must land on it."""
    test, cal = splits
    cfg = audit.AuditConfig(equal_accuracy=audit.EqualAccuracyConfig(
        coarsen=(1,), substeps=(1, 2, 4, 8), methods=("etdrk4",), rtols=()))
    r = audit.run(fine(burgers, DT, 4), test, cal, "rel_l2<=1", config=cfg, pde=burgers, repeats=1)
    eq = r.summary["equal_accuracy"]
    assert eq["status"] == "measured"
    assert eq["solver_setting"] == {"adaptive": False, "coarsen": 1, "grid": [32], "substeps": 4, "method": "etdrk4"}
    assert eq["solver_error"] == pytest.approx(eq["surrogate_error"], rel=1e-9)
    errors = [p["error"] for p in eq["points"]]
    assert [p["setting"]["substeps"] for p in eq["points"]] == [1, 2, 4]  # stops at the first match
    assert errors[0] > errors[1] > errors[2] > 0  # ETDRK4 converges
    assert eq["speedup"] == pytest.approx(eq["solver_seconds"] / eq["surrogate_seconds"])
    assert eq["surrogate_seconds"] > 0 and eq["speedup_bound"] in ("exact", "upper")


def test_band_limited_diffusion_is_exact_on_every_grid():
    """Diffusion of a 3-mode field: ETD is exact in time and a grid of 8 points holds the modes."""
    grid = solvers.Grid((32,))
    pde = solvers.Diffusion(grid, nu=0.1)
    u0 = jnp.asarray(initial_conditions(grid, 3, seed=5))
    ref = np.stack([np.asarray(solvers.rollout(solvers.stepper(pde, 0.2), u, 3)) for u in u0])

    def score(traj):
        return float(np.max(np.abs(traj - ref)))

    cfg = audit.EqualAccuracyConfig(coarsen=(1, 2, 4, 8), substeps=(1, 2), methods=("etdrk1",))
    res = _equal_accuracy.search(pde, grid, u0, 0.2, 3, score, 1e-12, cfg, repeats=1)
    # coarsen 8 would leave 4 points (< 8) and is skipped; every other grid matches at one step
    assert [p["setting"]["coarsen"] for p in res["points"]] == [4, 2, 1]
    assert all(p["setting"]["substeps"] == 1 and p["error"] < 1e-13 for p in res["points"])
    assert res["chosen"] in res["points"] and res["bound"] == "upper"


def test_no_setting_reaches_a_perfect_surrogate():
    grid = solvers.Grid((16,))
    pde = solvers.Burgers(grid, nu=0.1)
    u0 = jnp.asarray(initial_conditions(grid, 2, seed=3))
    cfg = audit.EqualAccuracyConfig(coarsen=(1,), substeps=(1, 2), methods=("etdrk1",))
    res = _equal_accuracy.search(pde, grid, u0, 0.1, 2, lambda traj: float(np.sum(traj**2)) + 1.0, 0.0, cfg,
                                 repeats=1)
    assert res["bound"] == "lower" and len(res["points"]) == 2
    assert res["chosen"]["error"] == min(p["error"] for p in res["points"])


def test_adaptive_solver_settings():
    """A looser tolerance of the adaptive solver: its error is within that tolerance and the search stops there."""
    grid = solvers.Grid((32,))
    pde = solvers.Burgers(grid, nu=0.2)  # resolved on 32 points for these small initial conditions
    u0 = jnp.asarray(0.3 * initial_conditions(grid, 3, seed=7))
    t = DT * np.arange(4)
    ref = np.stack([np.asarray(solvers.rollout(fine(pde, DT, 16), u, 3)) for u in u0])

    def score(traj):
        return float(np.max(np.sqrt(np.mean((traj - ref) ** 2, axis=(2, 3)))))

    cfg = audit.EqualAccuracyConfig(coarsen=(1,), substeps=(1,), methods=("etdrk1",), rtols=(1e-3, 1e-6))
    res = _equal_accuracy.search(pde, grid, u0, DT, 3, score, 1e-5, cfg, repeats=1, t=t)
    fixed, loose, *rest = res["points"]
    assert fixed["error"] > 1e-5  # one exponential-Euler step per save interval is too coarse
    assert loose["setting"]["adaptive"] and loose["setting"]["rtol"] == 1e-3
    rms = np.sqrt(np.mean(ref**2, axis=(2, 3)))
    assert loose["error"] <= np.max(1e-3 * rms + 1e-6)  # the solver's error honours its tolerance
    if loose["error"] <= 1e-5:
        assert rest == [] and res["chosen"] is loose
    else:
        assert rest[0]["setting"]["rtol"] == 1e-6 and rest[0]["error"] <= 1e-5 and res["chosen"] is rest[0]


@pytest.mark.slow
def test_adaptive_solver_failure_is_recorded(burgers, splits):
    """The shared test data (nu = 0.05 on 32 points) is under-resolved for the PDE: solve refuses it."""
    test, _ = splits
    ref = test["u"].values[:1, :4]
    cfg = audit.EqualAccuracyConfig(coarsen=(1,), substeps=(1,), methods=("etdrk4",), rtols=(1e-3,))
    res = _equal_accuracy.search(burgers, burgers.grid, jnp.asarray(ref[:, 0]), DT, 3,
                                 lambda traj: float(np.max(np.abs(traj - ref))), 0.0, cfg, repeats=1,
                                 t=test["time"].values)
    failed = res["points"][-1]
    assert failed["setting"]["adaptive"] and failed["error"] == np.inf and "cannot resolve" in failed["failed"]
    assert res["bound"] == "lower" and res["chosen"] is res["points"][0]


def test_time_call_measures_one_call():
    import time

    calls = []

    def f(x):
        calls.append(x)
        time.sleep(0.002)
        return x + 1

    seconds, out = _equal_accuracy.time_call(f, 1, repeats=2, min_seconds=0.02)
    assert out == 2 and 0.002 <= seconds < 0.02
    assert len(calls) >= 2 + 2 * 5  # compile call, probe call, then loops of ~10 calls
