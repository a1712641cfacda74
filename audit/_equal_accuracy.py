"""The solver at equal accuracy (McGreivy & Hakim, "Weak baselines and reporting biases lead to
overoptimism in machine learning for fluid-related PDEs", Nature Machine Intelligence 6, 2024).

A surrogate's speedup means something only against a solver run at the
*same* accuracy, not against the high-precision solver that made the data.
:func:`search` reruns the solver from the test initial conditions at cheaper
settings (a coarser grid, fewer and larger steps, a lower-order method), measures
each setting's error with the requirement's metric and aggregation, and picks
the cheapest setting whose error is no larger than the surrogate's.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import numpy as np

import solvers

from ._config import AuditError, EqualAccuracyConfig
from ._progress import bar


@dataclasses.dataclass(frozen=True)
class Setting:
    """One solver setting: the grid (data grid coarsened by ``coarsen``), ``substeps`` per save interval, ``method``.

    The "save interval" is the ``dt`` the search is given: one stepper step, which spans ``stride`` saved
    frames for a surrogate trained with ``[model] stride`` (``audit.run`` compares it with every
    ``stride``-th frame), so the solver always runs over the surrogate's own interval."""

    coarsen: int
    substeps: int
    method: str

    def as_dict(self, grid_shape) -> dict:
        return {"adaptive": False, "coarsen": self.coarsen, "grid": [n // self.coarsen for n in grid_shape],
                "substeps": self.substeps, "method": self.method}


def default_factory(pde, dt: float, method: str):
    """The solver's fixed-step integrator: ``solvers.stepper(pde, dt, method)``."""
    return solvers.stepper(pde, dt, method)


def check_repeats(repeats) -> int:
    """``repeats`` when it is a number of timed runs (an integer >= 1), else ``solvers.InputError`` naming it."""
    if isinstance(repeats, bool) or not isinstance(repeats, int | np.integer) or repeats < 1:
        raise solvers.InputError(f"repeats: must be >= 1, got {repeats!r}")
    return int(repeats)


def time_call(f: Callable, *args, repeats: int = 3, min_seconds: float = 0.02,
              tick: Callable[[], object] | None = None) -> tuple[float, object]:
    """Wall time (s) of one call ``f(*args)``: the fastest of ``repeats`` timings after an untimed (compiling) call.

    A call faster than ``min_seconds`` is timed in loops of ``k`` calls (``k`` up to 1000,
    chosen so that a loop lasts about ``min_seconds``, as ``timeit`` does) and the loop
    time divided by ``k``, so sub-millisecond calls are not lost in the clock's noise.
    ``tick()`` (a progress bar's ``update``) is called after the compiling call, the first
    timed call and each repeat, ``repeats + 2`` times in all, each time outside the timed interval.
    """
    tick = tick or (lambda: None)
    out = jax.block_until_ready(f(*args))  # compiles
    tick()
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args))
    once = time.perf_counter() - t0
    tick()
    loops = int(min(1000, max(1, np.ceil(min_seconds / max(once, 1e-9)))))
    best = once if loops == 1 else np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            out = f(*args)
        out = jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / loops)
        tick()
    return float(best), out


def time_call_ticks(repeats: int) -> int:
    """The ticks :func:`time_call` gives a progress bar: ``repeats + 2``."""
    return repeats + 2


def solver_rollout(pde, grid, setting: Setting, dt: float, horizon: int, *, per_sample_pde: bool = False,
                   factory: Callable = default_factory) -> Callable:
    """A jitted ``f(pde, u0s) -> (S, horizon + 1, *grid.shape, C)`` running ``setting`` from each ``u0``.

    The initial condition is resampled (spectrally) onto the coarse grid, the
    solver advances ``substeps`` steps of ``dt / substeps`` per save interval,
    and every saved frame is resampled back onto ``grid`` for comparison; the
    resampling is part of the cost.
    """
    coarse = solvers.Grid(tuple(n // setting.coarsen for n in grid.shape), grid.length)

    def one(p, u0):
        pc = p if coarse == grid else p.with_grid(coarse)
        step = factory(pc, dt / setting.substeps, setting.method)
        traj = solvers.rollout(step, solvers.resample(u0, grid, coarse), horizon, every=setting.substeps)
        return jax.vmap(lambda u: solvers.resample(u, coarse, grid))(traj)

    return jax.jit(jax.vmap(one, in_axes=(0 if per_sample_pde else None, 0)))


def adaptive_rollout(pde, u0s, t, rtol: float, *, per_sample_pde: bool = False) -> Callable:
    """``f() -> (S, len(t), *shape, C)``: ``solvers.solve`` at ``rtol`` (``atol = 1e-3 rtol``) per sample."""
    u0s = np.asarray(u0s)
    pdes = [jax.tree.map(lambda x: x[i], pde) if per_sample_pde else pde for i in range(u0s.shape[0])]

    def run():
        return np.stack([np.asarray(solvers.solve(p, u, t, rtol=rtol, atol=1e-3 * rtol).u)
                         for p, u in zip(pdes, u0s)])

    return run


def search(pde, grid, u0s, dt: float, horizon: int, score: Callable, target: float,
           config: EqualAccuracyConfig, *, repeats: int = 3, per_sample_pde: bool = False, t=None,
           factory: Callable = default_factory, progress: Callable | None = None, quiet: bool = True) -> dict:
    """Find the cheapest solver setting whose ``score`` is ``<= target``.

    Args:
        pde: the PDE on ``grid`` (leaves with a leading sample axis when ``per_sample_pde``).
        grid: the data grid.
        u0s: ``(S, *grid.shape, C)`` test initial conditions.
        dt: the save interval.
        horizon: rollout steps.
        score: ``score(traj) -> float`` of a ``(S, horizon + 1, *grid.shape, C)`` rollout, the
            requirement's aggregate (lower is better); NaN counts as worse than any target.
        target: the surrogate's score.
        config: the settings to try.
        repeats: timed runs per setting (the fastest is kept; compilation is excluded).
        t: the save times (from ``t[0]``); needed for the adaptive settings (``config.rtols``).
        factory: ``factory(pde, dt, method) -> stepper`` building the solver's step.
        progress: ``progress(point)`` after each setting is measured.
        quiet: no progress bar (one tick per setting tried, out of every setting the search may try;
            it stops early once a setting matches).

    Returns:
        ``{"points": [...], "chosen": point or None, "bound": "exact" | "upper" | "lower"}``
        where a point is ``{"setting": {...}, "seconds": float, "error": float}`` (plus
        ``"failed"``, the reason, when the adaptive solver gave up). For each
        coarsening and method the step count grows until the target is met (more steps only
        cost more). ``bound`` is ``"upper"`` when the chosen setting is the cheapest tried (a
        cheaper untried setting might match too: the speedup is at most the reported one),
        ``"lower"`` when no setting matched (``chosen`` is then the most accurate one: the
        solver needs at least its cost, so the speedup is at least the reported one).
    """
    points = []
    coarsen = sorted({c for c in config.coarsen if _coarsen_problem(c, grid.shape, MIN_POINTS, False) is None},
                     reverse=True) or [1]
    substeps = sorted(set(config.substeps))
    rtols = sorted(set(config.rtols), reverse=True) if t is not None else []
    total = len(coarsen) * len(config.methods) * len(substeps) + len(rtols)
    with bar(total, "equal-accuracy search", quiet, unit="setting") as ticks:
        for c in coarsen:
            for method in config.methods:
                for s in substeps:
                    setting = Setting(c, s, method)
                    f = solver_rollout(pde, grid, setting, dt, horizon, per_sample_pde=per_sample_pde,
                                       factory=factory)
                    seconds, traj = time_call(f, pde, u0s, repeats=repeats)
                    matched = _add(points, setting.as_dict(grid.shape), seconds, _error(score, traj),
                                   target, progress)
                    ticks.update()
                    if matched:
                        break
        for rtol in rtols:
            f = adaptive_rollout(pde, u0s, np.asarray(t)[:horizon + 1], rtol, per_sample_pde=per_sample_pde)
            setting = {"adaptive": True, "rtol": rtol, "atol": 1e-3 * rtol, "grid": list(grid.shape),
                       "method": "etdrk4"}
            try:
                seconds, traj = time_call(f, repeats=repeats)
                err = _error(score, traj)
            except (solvers.SolverDivergedError, solvers.ResolutionError) as e:
                points.append({"setting": setting, "seconds": float("inf"), "error": float("inf"),
                               "failed": " ".join(str(e).split())[:200]})
                ticks.update()
                continue
            matched = _add(points, setting, seconds, err, target, progress)
            ticks.update()
            if matched:
                break
    return _choose(points, target)


MIN_POINTS = 8  # grid points per axis a coarsened trajectory solve keeps at least
MIN_CELLS = 4  # cells per side a coarsened Darcy solve keeps at least


def check_coarsen(coarsen, grid_shape: tuple[int, ...], *, minimum: int, divides: bool) -> None:
    """``AuditError`` naming ``audit.equal_accuracy.coarsen`` and its limit when a factor cannot coarsen the grid.

    A factor ``c`` must leave ``n // c >= minimum`` points on every axis (and divide ``n`` when
    ``divides``: the Darcy cells are block-averaged). :func:`search` and :func:`search_steady` skip
    such factors; the audit refuses them before any rollout instead of reporting fewer settings than
    were asked for.
    """
    for c in coarsen:
        why = _coarsen_problem(c, grid_shape, minimum, divides)
        if why is not None:
            usable = [f for f in range(1, max(grid_shape) + 1)
                      if _coarsen_problem(f, grid_shape, minimum, divides) is None]
            limit = (f"use factors from {usable}" if divides else f"use factors up to {max(usable)}") if usable \
                else "set audit.equal_accuracy.enabled = false"
            raise AuditError(f"audit.equal_accuracy.coarsen: factor {c} {why}; {limit}")


def _coarsen_problem(c: int, grid_shape: tuple[int, ...], minimum: int, divides: bool) -> str | None:
    """Why ``c`` cannot coarsen a grid of ``grid_shape`` (None when it can)."""
    if divides and any(n % c for n in grid_shape):
        return f"does not divide the {'x'.join(map(str, grid_shape))} grid"
    if min(grid_shape) // c < minimum:
        return (f"leaves {min(grid_shape) // c} points per axis of the {'x'.join(map(str, grid_shape))} grid, "
                f"fewer than the {minimum} a coarse solve needs")
    return None


def _error(score: Callable, traj) -> float:
    """``score`` of a candidate's rollout; a setting unstable at its step blows up to inf or nan, which only
    means it does not match (numpy's overflow warnings about it would say nothing to the user)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(score(np.asarray(traj)))


def _add(points: list, setting: dict, seconds: float, err: float, target: float, progress) -> bool:
    """Record a measured setting (a NaN error counts as infinite); whether it reaches ``target``."""
    points.append({"setting": setting, "seconds": seconds, "error": err if np.isfinite(err) else float("inf")})
    if progress is not None:
        progress(points[-1])
    return bool(np.isfinite(err) and err <= target * (1 + 1e-9))


def _choose(points: list, target: float) -> dict:
    """The cheapest point within ``target`` (else the most accurate) and what its speedup bounds."""
    matched = [p for p in points if p["error"] <= target * (1 + 1e-9)]
    if matched:
        chosen = min(matched, key=lambda p: p["seconds"])
        bound = "upper" if chosen["seconds"] <= min(p["seconds"] for p in points) else "exact"
    else:
        chosen = min(points, key=lambda p: (p["error"], p["seconds"]))
        bound = "lower"
    return {"points": points, "chosen": chosen, "bound": bound}


# --------------------------------------------------------------------------------- steady maps
DATA_CG_RTOL = 1e-10  # solvers.Darcy's default CG tolerance, the one the reference data was solved with


@dataclasses.dataclass(frozen=True)
class SteadySetting:
    """A cheaper Darcy solve: ``coarsen`` times coarser cells and CG stopped at ``cg_rtol``."""

    coarsen: int
    cg_rtol: float

    def as_dict(self, grid_shape) -> dict:
        return {"adaptive": False, "coarsen": self.coarsen, "grid": [n // self.coarsen for n in grid_shape],
                "cg_rtol": self.cg_rtol, "method": "fv-pcg",
                "transfer": "coefficient: block means; solution: bilinear to the test cell centres (wall 0)"}


def steady_solve(grid, source: float, setting: SteadySetting) -> Callable:
    """A jitted ``f(a (S, n, n)) -> (S, 2, n, n, 1)``: ``[a, u]`` with ``u`` solved at ``setting``.

    The coefficient is averaged onto the coarse cells (``Darcy.coarsened``), the
    system solved by PCG to ``cg_rtol``, and the solution interpolated back to
    the test grid's cell centres (``Darcy.interpolate``; cell-centred grids do
    not nest). Both transfers are part of the cost and of the error.
    """
    n = grid.shape[0]

    def one(a):
        fine = solvers.Darcy(grid, coefficient=a, source=source, cg_rtol=setting.cg_rtol)
        coarse = fine if setting.coarsen == 1 else fine.coarsened(setting.coarsen)
        u = coarse.solve_cg()[0]
        if setting.coarsen != 1:
            u = coarse.interpolate(u, n)
        return jax.numpy.stack([a, u])[..., None]

    return jax.jit(jax.vmap(one))


def search_steady(a, source: float, score: Callable, target: float, config: EqualAccuracyConfig, *,
                  repeats: int = 3, progress: Callable | None = None, quiet: bool = True) -> dict:
    """Equal accuracy for a steady map ``a -> u`` (Darcy): the cheapest (grid, CG tolerance) at the surrogate's error.

    Settings: every coarsening of ``config.coarsen`` that divides ``n`` and leaves at
    least 4 cells per side (coarsest first) with the CG tolerances ``config.rtols``
    and the data's own ``1e-10`` (loosest first; a tighter one only costs more,
    so the loop stops at the first that matches). ``score`` takes the
    ``(S, 2, n, n, 1)`` ``[a, u]`` array; each setting is timed ``repeats`` times (the fastest is
    kept); ``progress`` and ``quiet`` as in :func:`search`. Returns what :func:`search` returns.
    """
    a = jax.numpy.asarray(a)
    n = a.shape[1]
    grid = solvers.Grid((n, n), (1.0, 1.0))
    points = []
    coarsen = sorted({c for c in config.coarsen if _coarsen_problem(c, (n, n), MIN_CELLS, True) is None},
                     reverse=True) or [1]
    rtols = sorted(set(config.rtols) | {DATA_CG_RTOL}, reverse=True)
    with bar(len(coarsen) * len(rtols), "equal-accuracy search", quiet, unit="setting") as ticks:
        for c in coarsen:
            for r in rtols:
                setting = SteadySetting(c, float(r))
                seconds, out = time_call(steady_solve(grid, source, setting), a, repeats=repeats)
                matched = _add(points, setting.as_dict(grid.shape), seconds, _error(score, out), target,
                               progress)
                ticks.update()
                if matched:
                    break
    return _choose(points, target)
