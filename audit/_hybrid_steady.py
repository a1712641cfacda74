"""The guarded hybrid on a steady map (Darcy ``a -> u``): the surrogate as a guarded shortcut of one linear solve.

A steady problem has no time steps to replace; what a surrogate can replace is
(part of) the solve. For every test coefficient ``a``:

* the solver alone: PCG from zero to the data's stopping tolerance
  ``|f - A u| <= 1e-10 |f|`` (``solvers.Darcy`` default, the one the reference
  was solved with);
* the hybrid: the surrogate predicts ``u_s`` (all samples in one batch); the
  guard computes the residual bound ``RMS(u_s - A^{-1} f) <= RMS(f - A u_s) /
  lambda_min(A)`` (``Darcy.discrete_error_bound``, rigorous for the distance to
  the discrete solution); when it is ``<= tolerance`` the prediction is the
  answer, otherwise PCG runs to the same stopping tolerance as the solver,
  started from ``u_s`` when ``u_s`` has a smaller residual than 0 (else from 0).

A refused prediction still saves the CG iterations its warm start saves; the
hybrid's time counts the surrogate, the guard and every solve it still does.
Both runs go sample by sample (``lax.map``) so that ``lax.cond`` really skips the
solve of an accepted sample. The norm is the trajectory hybrid's: RMS over the
grid of the answer minus the test file's reference solution, worst over samples.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import datasets
import solvers
import surrogates

from ._config import AuditError
from ._equal_accuracy import DATA_CG_RTOL, time_call, time_call_ticks
from ._progress import bar

if TYPE_CHECKING:
    from ._hybrid import GuardKind

# [hybrid] keys that mean something for time stepping only; a steady map's config must leave them out
TIME_KEYS = ("correct_every", "growth", "steps", "solver_substeps", "solver_method")


def check_config(cfg: surrogates.HybridConfig, guard: type[GuardKind] | GuardKind) -> None:
    """Refuse ``[hybrid]`` settings that do not apply to a steady map (errors name the key).

    ``guard`` is the kind ``cfg.guard`` names (``audit._hybrid.guard_kind``), or that kind calibrated.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    if not guard.guards_steady_map:
        raise AuditError(f"hybrid.guard: a steady map is guarded by the residual of the prediction; set guard = "
                         f"\"residual\", got {cfg.guard!r}")
    for key in TIME_KEYS:
        if getattr(cfg, key) != defaults[key]:
            raise AuditError(f"hybrid.{key}: does not apply to a steady map (no time steps); leave it out, got "
                             f"{getattr(cfg, key)!r}")


def compare(cfg: surrogates.HybridConfig, test, stepper: Callable, *, guard: GuardKind, samples: int | None,
            repeats: int, alpha: float, with_params: bool, pde_classes: tuple = (),
            say: Callable[[str], None], window: int = 1, stride: int = 1, quiet: bool = True) -> tuple[dict, None]:
    """Solver alone and the guarded hybrid on the test coefficients: the content of ``hybrid.json`` (no curves).

    Args:
        cfg: the ``[hybrid]`` settings (see :func:`check_config`).
        test: the test split (``datasets.open``), a steady-map dataset.
        stepper: the surrogate ``step(a) -> u`` on one ``(n, n, 1)`` coefficient.
        window, stride: 1 (a steady map's surrogate maps its one input stage to its output in one step;
            ``audit.compare_hybrid`` refuses others before this runs).
        samples: the first that many test coefficients are run (``None``: all).
        repeats: timed runs of each side (the fastest is kept).
        guard: the guard ``cfg.guard`` names; only one that guards a steady map is taken (the residual of
            the prediction, computed here with ``Darcy.discrete_error_bound``).
        alpha: unused (a steady map is guarded by its residual).
        with_params: must be False (a Darcy map model takes the coefficient only).
        say: progress messages.
        quiet: no progress bars over the timed runs of each side (one tick per run, between the timings).
    """
    check_config(cfg, guard)
    if with_params:
        raise AuditError("the model takes per-sample physics parameters; a Darcy map model takes the coefficient "
                         "only")
    u = np.asarray(test["u"].values, dtype=np.float64)
    n_samples = u.shape[0] if samples is None else min(samples, u.shape[0])
    a, ref = u[:n_samples, 0, ..., 0], u[:n_samples, 1]
    grid = solvers.Grid(tuple(a.shape[1:]), (1.0, 1.0))
    source = datasets.map_source(test)

    def darcy(ai):
        return solvers.Darcy(grid, coefficient=ai, source=source)

    def cold(ai):
        v, k, _ = darcy(ai).solve_cg()
        return v, k

    def guarded(args):
        ai, s = args
        d = darcy(ai)
        bound = d.discrete_error_bound(s)
        accept = bound <= cfg.tolerance
        better = jnp.linalg.norm(d.residual(s)) < jnp.linalg.norm(d.source)

        def solve(_):
            v, k, _ = d.solve_cg(jnp.where(better, s, 0.0))
            return v, k.astype(jnp.int32)

        v, k = lax.cond(accept, lambda _: (s, jnp.zeros((), jnp.int32)), solve, None)
        return v, k, accept, bound, better

    @jax.jit
    def solver_run(A):
        return lax.map(cold, A)

    @jax.jit
    def hybrid_run(A):
        S = jax.vmap(lambda ai: stepper(ai[..., None])[..., 0])(A)
        return lax.map(guarded, (A, S))

    A = jnp.asarray(a)
    say(f"solver alone: PCG from zero on {n_samples} coefficients")
    with bar(time_call_ticks(repeats), "solver alone", quiet, unit="run") as ticks:
        solver_seconds, (u_solver, it_solver) = time_call(solver_run, A, repeats=repeats, tick=ticks.update)
    say(f"hybrid (residual guard, tolerance {cfg.tolerance:g}): surrogate, then PCG where refused")
    with bar(time_call_ticks(repeats), "hybrid", quiet, unit="run") as ticks:
        hybrid_seconds, (u_hybrid, it_hybrid, accepted, bounds, warm) = time_call(hybrid_run, A, repeats=repeats,
                                                                                  tick=ticks.update)
    err = np.sqrt(np.mean((np.asarray(u_hybrid)[..., None] - ref) ** 2, axis=(1, 2, 3)))
    err_solver = np.sqrt(np.mean((np.asarray(u_solver)[..., None] - ref) ** 2, axis=(1, 2, 3)))
    accepted, warm, bounds = np.asarray(accepted), np.asarray(warm), np.asarray(bounds)
    it_solver, it_hybrid = np.asarray(it_solver), np.asarray(it_hybrid)
    n_acc = int(accepted.sum())
    error = float(err.max())
    summary = {
        "problem": datasets.SteadyMap.name,
        "tolerance": cfg.tolerance,
        "error_vs_reference": error,
        "solver_error_vs_reference": float(err_solver.max()),
        "error_norm": "RMS over the grid of the answer minus the test file's reference solution, worst over samples",
        "surrogate_steps": n_acc,
        "solver_steps": n_samples - n_acc,
        "steps_definition": "one step = one test coefficient: answered by the surrogate (accepted by the guard) "
                            "or by a PCG solve (warm-started from the prediction when its residual is below f's)",
        "guard": "residual: RMS(f - A u_s) / lambda_min(A) <= tolerance (Darcy.discrete_error_bound)",
        "guard_bound": {"min": float(np.min(bounds)), "median": float(np.median(bounds)),
                        "max": float(np.max(bounds)), "per_sample": bounds.tolist()},
        "error_per_sample": err.tolist(),
        "accepted_per_sample": accepted.astype(bool).tolist(),
        "warm_started": int(np.sum(warm & ~accepted)),
        "cg_iterations": {"solver": int(it_solver.sum()), "hybrid": int(it_hybrid.sum()),
                          "solver_per_sample": it_solver.tolist(), "hybrid_per_sample": it_hybrid.tolist()},
        "cg_rtol": DATA_CG_RTOL,
        "solver_seconds": solver_seconds,
        "hybrid_seconds": hybrid_seconds,
        "speedup_vs_solver": solver_seconds / hybrid_seconds,
        "within_tolerance": bool(error <= cfg.tolerance),
        "samples": n_samples,
        "timing": "fastest of repeated runs, compilation excluded; the hybrid's time includes the batched "
                  "surrogate, every guard and every solve",
        "note": _note(n_acc, n_samples, bounds, it_solver, it_hybrid, cfg.tolerance,
                      solver_seconds / hybrid_seconds),
    }
    return summary, None


def _note(n_acc: int, n_samples: int, bounds, it_solver, it_hybrid, tolerance: float, speedup: float) -> str:
    saved = 1 - it_hybrid.sum() / max(it_solver.sum(), 1)
    if n_acc == 0:
        note = (f"the guard accepted no prediction (bounds {np.min(bounds):.3g}..{np.max(bounds):.3g} > "
                f"tolerance {tolerance:g}): every sample was solved, warm starts saved {100 * saved:.0f} % of the "
                "CG iterations")
    else:
        note = (f"{n_acc} of {n_samples} predictions accepted; the solves left saved {100 * saved:.0f} % of the "
                "solver's CG iterations")
    if speedup < 1:
        note += "; the hybrid is slower than the solver here (the surrogate costs more than it saves)"
    return note


def line(summary: dict) -> str:
    """The one-line result ``byai hybrid`` prints."""
    s = summary
    return (f"hybrid (steady): error {s['error_vs_reference']:.3g} vs tolerance {s['tolerance']:.3g} "
            f"({'within' if s['within_tolerance'] else 'NOT within'}), {s['surrogate_steps']} surrogate / "
            f"{s['solver_steps']} solver answers, CG iterations {s['cg_iterations']['hybrid']} vs "
            f"{s['cg_iterations']['solver']}, speedup vs solver {s['speedup_vs_solver']:.3g}; {s['note']}")


def plot(summary: dict, curves: None, path: Path) -> None:
    """CG iterations per sample, solver alone against hybrid (0 where the surrogate's answer was accepted)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    it = summary["cg_iterations"]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    k = np.arange(len(it["solver_per_sample"]))
    ax.plot(k, it["solver_per_sample"], "o", label="solver alone (PCG from 0)")
    ax.plot(k, it["hybrid_per_sample"], "x", label="hybrid (0 = surrogate accepted)")
    ax.set_xlabel("test sample")
    ax.set_ylabel("CG iterations to |r| <= 1e-10 |f|")
    ax.set_title(f"steady hybrid: speedup {summary['speedup_vs_solver']:.3g}, "
                 f"error {summary['error_vs_reference']:.2g} (tolerance {summary['tolerance']:.2g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
