"""The equal-accuracy search on cases with a known answer."""

import jax.numpy as jnp
import numpy as np
import pytest

import audit
import solvers
from audit import _equal_accuracy
from conftest import DT, fine, initial_conditions


@pytest.mark.slow
def test_finds_the_surrogates_own_setting(burgers, splits):
    """The 'surrogate' is the solver with 4 ETDRK4 steps per save interval: the search must land on it."""
    test, cal = splits
    cfg = audit.AuditConfig(equal_accuracy=audit.EqualAccuracyConfig(
        coarsen=(1,), substeps=(1, 2, 4, 8), methods=("etdrk4",), repeats=1))
    r = audit.run(fine(burgers, DT, 4), test, cal, "rel_l2<=1", config=cfg, pde=burgers)
    eq = r.summary["equal_accuracy"]
    assert eq["status"] == "measured"
    assert eq["solver_setting"] == {"coarsen": 1, "grid": [32], "substeps": 4, "method": "etdrk4"}
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

    cfg = audit.EqualAccuracyConfig(coarsen=(1, 2, 4, 8), substeps=(1, 2), methods=("etdrk1",), repeats=1)
    res = _equal_accuracy.search(pde, grid, u0, 0.2, 3, score, 1e-12, cfg)
    # coarsen 8 would leave 4 points (< 8) and is skipped; every other grid matches at one step
    assert [p["setting"]["coarsen"] for p in res["points"]] == [4, 2, 1]
    assert all(p["setting"]["substeps"] == 1 and p["error"] < 1e-13 for p in res["points"])
    assert res["chosen"] in res["points"] and res["bound"] == "upper"


def test_no_setting_reaches_a_perfect_surrogate():
    grid = solvers.Grid((16,))
    pde = solvers.Burgers(grid, nu=0.1)
    u0 = jnp.asarray(initial_conditions(grid, 2, seed=3))
    cfg = audit.EqualAccuracyConfig(coarsen=(1,), substeps=(1, 2), methods=("etdrk1",), repeats=1)
    res = _equal_accuracy.search(pde, grid, u0, 0.1, 2, lambda traj: float(np.sum(traj**2)) + 1.0, 0.0, cfg)
    assert res["bound"] == "lower" and len(res["points"]) == 2
    assert res["chosen"]["error"] == min(p["error"] for p in res["points"])
