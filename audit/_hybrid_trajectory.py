"""The guarded hybrid against the solver alone on a trajectory dataset (a time-dependent PDE).

From every test initial condition the solver alone and the hybrid stepper
(``surrogates.HybridStepper``: surrogate steps where the guard and the error
budget allow them, solver steps otherwise) are rolled out over the test time
axis and compared with the file's high-precision reference frames.

Norm. Every error is the RMS over grid points and channels of a frame's
difference to the reference (the norm of ``solvers.Solution.error``);
``error_vs_reference`` is the worst over samples and frames, and the
tolerance is in that norm.

Cost. Both runs go sample by sample (``lax.map``) so that the hybrid's
``lax.cond`` really skips the branch not taken; timings (:func:`time_call`)
exclude compilation and keep the fastest of ``repeats``. The hybrid's time
includes every guard evaluation and every surrogate proposal that was
refused. A cost model from separately timed single steps gives the saving
(or loss) per step.

State guard. With ``guard = "state"`` the bound of each step is a conformal
factor (calibrated on the calibration split) times the proposal's residual
score, and ``hybrid.json``'s ``guard`` is a table: the factor's coverage of the
true one-step errors on the test samples run, the guard's cost as a fraction
of a surrogate step, and the fraction of guard calls that accepted the step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Bool, Float

import datasets
import solvers
import surrogates

from ._config import AuditError
from ._equal_accuracy import time_call, time_call_ticks
from ._progress import bar
from ._run import save_interval
from ._run import _params
from ._state_guard import StateGuardCalibration

if TYPE_CHECKING:
    from ._hybrid import GuardKind

COST_FORMULA = "surrogate_steps*(surrogate+guard) + rejected*(surrogate+guard+solver) + (solver_steps-rejected)*solver"
ERROR_NORM = ("RMS over grid points and channels of one frame minus the test file's reference, worst over samples "
              "and frames")
EXECUTION = ("one sample at a time (lax.map) for both runs, compiled once, fastest of repeats (XLA drops work whose "
             "result is unused, e.g. the surrogate when a constant conformal bound already refuses every step)")


@dataclasses.dataclass(frozen=True)
class HybridCurves:
    """Per-frame curves of a trajectory comparison (what ``hybrid.png`` plots).

    Attributes:
        t: ``(T,)`` times of the frames, the initial one included.
        hybrid, solver: ``(S, T)`` RMS error against the reference of the hybrid and of the solver alone.
        estimate: ``(S, T)`` the hybrid's carried error estimate.
        surrogate: ``(S, T - 1)`` True where step i (frame i to i + 1) was a surrogate step.
    """

    t: Float[np.ndarray, " t"]
    hybrid: Float[np.ndarray, "s t"]
    solver: Float[np.ndarray, "s t"]
    estimate: Float[np.ndarray, "s t"]
    surrogate: Bool[np.ndarray, "s n"]


class StepCosts(NamedTuple):
    """Seconds per call of one solver step, one surrogate step and one guard call (one sample)."""

    solver: float
    surrogate: float
    guard: float


@dataclasses.dataclass(frozen=True)
class _Test:
    """The part of the test split a comparison runs on."""

    u: Float[np.ndarray, "s t *space c"]  # reference frames, float64, initial frame included
    t: Float[np.ndarray, " t"]
    dt: float  # one step: stride save intervals of the file
    pdes: list  # one solvers PDE per sample
    params: Float[np.ndarray, "s p"]  # per-sample physics parameters (p = 0 unless the model takes them)
    frames: Float[np.ndarray, "s f *space c"]  # u with the window's older frames before it (u itself for window 1)


def check_config(cfg: surrogates.HybridConfig, guard: type[GuardKind]) -> None:
    """Every ``[hybrid]`` key and every guard applies to a trajectory: nothing to refuse."""


def _read_test(cfg: surrogates.HybridConfig, test, samples: int | None, with_params: bool,
               pde_classes: tuple = (), window: int = 1, stride: int = 1) -> _Test:
    """The first ``samples`` test samples (all when None) over ``cfg.steps`` steps, with their PDEs.

    ``test`` is already seen at every ``stride``-th frame (a step is ``stride`` save intervals); with a window
    of ``window`` states the run starts at frame ``window - 1`` and ``u`` starts there too."""
    u = np.asarray(test["u"].values, dtype=np.float64)
    t = np.asarray(test["time"].values, dtype=np.float64)
    n_samples = u.shape[0] if samples is None else min(samples, u.shape[0])
    most = u.shape[1] - window  # steps after the window's newest frame
    n_steps = most if cfg.steps is None else cfg.steps
    if n_steps > most:
        held = ("the test file's save intervals" if stride == 1 and window == 1 else
                f"steps of {stride} save interval(s) the test file holds after a window of {window} frame(s)")
        raise AuditError(f"hybrid.steps: must be <= {most} ({held}), got {n_steps}")
    dt = save_interval(test, t, "test")
    pdes = [datasets.pde_from_attrs(test, sample=i, known=pde_classes)[0] for i in range(n_samples)]
    params = _params(test, "test", with_params)[:n_samples]
    frames = u[:n_samples, : window + n_steps]
    return _Test(u=frames[:, window - 1:], t=t[window - 1: window + n_steps], dt=dt, pdes=pdes, params=params,
                 frames=frames)


def compare(cfg: surrogates.HybridConfig, test, stepper: Callable, *, guard: GuardKind, samples: int | None,
            repeats: int, alpha: float, with_params: bool, pde_classes: tuple = (),
            say: Callable[[str], None], window: int = 1, stride: int = 1,
            quiet: bool = True) -> tuple[dict, HybridCurves]:
    """Solver alone and hybrid from the test initial conditions: the content of ``hybrid.json`` and its curves.

    Args:
        cfg: the ``[hybrid]`` settings.
        test: the test split (``datasets.open``), a trajectory dataset.
        stepper: the surrogate, ``step(u)`` (or ``step(u, p)`` with ``with_params``).
        guard: the calibrated guard (``audit._hybrid.GuardKind``): it builds each sample's guard and
            says what ``hybrid.json``'s ``guard`` field holds.
        samples: the first that many test samples are run (``None``: all).
        repeats: timed runs of each side and of each single-step cost (the fastest is kept).
        alpha: the conformal level the guard was calibrated at (reported when it needs calibration).
        with_params: the stepper takes each sample's physics parameters.
        pde_classes: PDE classes besides the built-ins the test file may name.
        say: progress messages.
        window: states the surrogate's state holds (a window stepper, ``surrogates.as_stepper`` of a model with
            ``input_steps = window``): the hybrid's state is then the window, started from the test frames
            ``0..window-1``; its solver step advances the newest state and appends it, its guard judges the
            newest state of the proposal; both runs are compared from frame ``window - 1`` on.
        stride: saved frames per step (``test`` is already strided; reported in ``hybrid.json``).
        quiet: no progress bars over the timed runs of each side (one tick per run, between the timings).
    """
    data = _read_test(cfg, test, samples, with_params, pde_classes, window, stride)
    n_samples, n_steps = data.u.shape[0], data.u.shape[1] - 1
    pde_batch = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *data.pdes)

    def surrogate_for(p):
        """The surrogate stepper ``u -> u`` of a sample with physics parameters ``p``."""
        return (lambda u: stepper(u, p)) if with_params else stepper

    def solver_step(pde):
        sub = solvers.stepper(pde, data.dt / cfg.solver_substeps, method=cfg.solver_method)
        return lambda u: lax.fori_loop(0, cfg.solver_substeps, lambda _, v: sub(v), u)

    def make_guard(pde):
        return guard.make_guard(pde, data.dt, cfg.tolerance)

    def make_hybrid(pde, p):
        solver, judge = solver_step(pde), make_guard(pde)
        if window > 1:
            solver, judge = on_window(solver, judge)
        return surrogates.HybridStepper(solver, surrogate_for(p), judge,
                                        tolerance=cfg.tolerance, correct_every=cfg.correct_every, growth=cfg.growth)

    @jax.jit
    def solver_run(pde_batch, u0):
        return lax.map(lambda a: solvers.rollout(solver_step(a[0]), a[1], n_steps), (pde_batch, u0))

    @jax.jit
    def hybrid_run(pde_batch, u0, p):
        return lax.map(lambda a: make_hybrid(a[0], a[2]).rollout(a[1], n_steps), (pde_batch, u0, p))

    u0, p = jnp.asarray(data.u[:, 0]), jnp.asarray(data.params)
    w0 = u0 if window == 1 else jnp.asarray(data.frames[:, :window])  # the hybrid's first states
    say(f"solver alone: {n_samples} samples x {n_steps} steps ({cfg.solver_substeps} substeps each)")
    with bar(time_call_ticks(repeats), "solver alone", quiet, unit="run") as ticks:
        solver_seconds, solver_traj = time_call(solver_run, pde_batch, u0, repeats=repeats, tick=ticks.update)
    say(f"hybrid ({guard.name} guard): {n_samples} samples x {n_steps} steps")
    with bar(time_call_ticks(repeats), "hybrid", quiet, unit="run") as ticks:
        hybrid_seconds, traj = time_call(hybrid_run, pde_batch, w0, p, repeats=repeats, tick=ticks.update)
    one_solver, one_guard = solver_step(data.pdes[0]), make_guard(data.pdes[0])
    if window > 1:
        one_solver, one_guard = on_window(one_solver, one_guard)
    costs = step_costs(one_solver, surrogate_for(p[0]), one_guard, w0[0], repeats=repeats)

    hybrid_u = np.asarray(traj.u) if window == 1 else np.asarray(traj.u)[:, :, -1]  # the windows' newest states
    curves = HybridCurves(t=data.t, hybrid=_frame_rms(hybrid_u - data.u),
                          solver=_frame_rms(np.asarray(solver_traj) - data.u), estimate=np.asarray(traj.error),
                          surrogate=np.asarray(traj.surrogate))
    final = jax.tree.map(np.asarray, traj.final)
    described = guard.describe(stepper, data.frames, data.pdes, data.dt, data.params if with_params else None, costs,
                               final, window=window)
    summary = _summary(cfg, guard, described, curves, final, costs, solver_seconds, hybrid_seconds, alpha, data.dt)
    summary.update(stride=stride, step_interval=data.dt, window=window)
    if stride != 1:
        summary["save_interval"] = data.dt / stride  # the file's; a step (and the solver's interval) is step_interval
    return summary, curves


def on_window(solver_step: Callable, guard: Callable) -> tuple[Callable, Callable]:
    """A solver step and a guard of single states as those of a window stepper's state ``(I, *space, C)``:
    the solver advances the newest state and appends it (the oldest drops out), the guard judges the newest
    state of the current and the proposed window."""
    def step(w):
        return jnp.concatenate([w[1:], solver_step(w[-1]).astype(w.dtype)[None]])

    def judge(w, proposed):
        return guard(w[-1], proposed[-1])

    return step, judge


def state_guard_summary(state: StateGuardCalibration, coverage_test: float, test_pairs: int, costs: StepCosts,
                        final) -> dict:
    """``hybrid.json``'s ``guard`` table for the state guard."""
    surrogate, rejected, exhausted = (int(np.sum(final.surrogate_steps)), int(np.sum(final.rejected)),
                                      int(np.sum(final.exhausted)))
    calls = surrogate + rejected + exhausted  # each exhausted sample had one accepted step the budget refused
    return {
        "kind": "state",
        "coverage_test": coverage_test,
        "cost_fraction": costs.guard / costs.surrogate,
        "acceptance_rate": (surrogate + exhausted) / calls if calls else None,
        "alpha": state.alpha,
        "coverage_target": 1 - state.alpha,
        "quantile": state.quantile,
        "calibration_pairs": state.pairs,
        "test_pairs": test_pairs,
        "score": state.score,
        "bound": "quantile * score(u, proposal), per step",
        "definitions": {
            "coverage_test": "fraction of the test samples' one-step pairs whose true RMS error is <= the bound",
            "cost_fraction": "seconds per guard call / seconds per surrogate step (cost_model)",
            "acceptance_rate": "guard calls that accepted the step / guard calls",
        },
    }


def _summary(cfg, guard: GuardKind, described: str | dict, curves: HybridCurves, final, costs: StepCosts,
             solver_seconds: float, hybrid_seconds: float, alpha: float, dt: float) -> dict:
    """The content of ``hybrid.json``; ``described`` is its ``guard`` field (``guard.describe``)."""
    n_samples, n_steps = curves.surrogate.shape
    sur_steps, sol_steps = int(final.surrogate_steps.sum()), int(final.solver_steps.sum())
    rejected, exhausted = int(final.rejected.sum()), int(final.exhausted.sum())
    error, solver_error = float(curves.hybrid.max()), float(curves.solver.max())
    forced = sol_steps - rejected
    modeled_hybrid = (sur_steps * (costs.surrogate + costs.guard)
                      + rejected * (costs.surrogate + costs.guard + costs.solver) + forced * costs.solver)
    modeled_solver = n_samples * n_steps * costs.solver
    return {
        "tolerance": cfg.tolerance,
        "error_vs_reference": error,
        "solver_error_vs_reference": solver_error,
        "error_norm": ERROR_NORM,
        "solver_steps": sol_steps,
        "surrogate_steps": sur_steps,
        "rejected_by_guard": rejected,
        "samples_budget_exhausted": exhausted,
        "solver_seconds": solver_seconds,
        "hybrid_seconds": hybrid_seconds,
        "speedup_vs_solver": solver_seconds / hybrid_seconds,
        "within_tolerance": bool(error <= cfg.tolerance),
        "estimate_max": float(curves.estimate.max()),
        "estimate_bounds_error": bool(np.all(curves.hybrid <= curves.estimate + curves.solver + 1e-15)),
        "guard": described,
        "conformal_one_step_bound": guard.one_step_bound(),
        "alpha": alpha if guard.needs_calibration else None,
        "correct_every": cfg.correct_every,
        "growth": cfg.growth,
        "samples": n_samples,
        "steps_per_sample": n_steps,
        "save_interval": dt,
        "solver_substeps": cfg.solver_substeps,
        "solver_method": cfg.solver_method,
        "cost_model": {
            "seconds_per_solver_step": costs.solver,
            "seconds_per_surrogate_step": costs.surrogate,
            "seconds_per_guard_call": costs.guard,
            "modeled_solver_seconds": modeled_solver,
            "modeled_hybrid_seconds": modeled_hybrid,
            "modeled_speedup": modeled_solver / modeled_hybrid if modeled_hybrid > 0 else None,
            "formula": COST_FORMULA,
        },
        "execution": EXECUTION,
        "note": _note(sur_steps, exhausted, error, solver_error, cfg.tolerance),
    }


def _note(surrogate_steps: int, exhausted: int, error: float, solver_error: float, tolerance: float) -> str:
    notes = []
    if surrogate_steps == 0:
        notes.append("the surrogate is too poor for this tolerance: no step was accepted, the hybrid ran "
                     "solver-only")
    elif exhausted:
        notes.append(f"the error budget ran out on {exhausted} sample(s); the solver finished those intervals")
    if solver_error > tolerance:
        notes.append(f"the solver alone misses the tolerance ({solver_error:.3g} > {tolerance:.3g}); "
                     "raise hybrid.solver_substeps")
    elif error > tolerance:
        notes.append("the hybrid missed the tolerance: its error estimate was not an upper bound here "
                     "(raise hybrid.growth or lower alpha)")
    return "; ".join(notes)


def step_costs(solver_step: Callable, surrogate: Callable, guard: Callable, u0, *, repeats: int,
               n: int = 20) -> StepCosts:
    """Seconds per call of one solver step, one surrogate step and one guard call on ``u0``.

    Each is timed as a jitted chain of ``n`` calls (``lax.fori_loop``) divided by ``n``, so
    the per-call dispatch of a small step does not dominate; the guard's output feeds the
    next call so that XLA cannot drop it.
    """
    proposal = surrogate(u0)

    def per_call(f):
        chain = jax.jit(lambda u: lax.fori_loop(0, n, lambda _, v: f(v), u))
        return time_call(chain, u0, repeats=repeats)[0] / n

    return StepCosts(solver=per_call(solver_step), surrogate=per_call(surrogate),
                     guard=per_call(lambda v: v + 0.0 * guard(v, proposal)[1]))


def _frame_rms(d: np.ndarray) -> np.ndarray:
    """RMS over all axes after (sample, time)."""
    return np.sqrt(np.mean(d**2, axis=tuple(range(2, d.ndim))))


def guard_name(summary: dict) -> str:
    """The guard's kind: ``hybrid.json``'s ``guard`` is its name, or a table with ``kind`` (the state guard)."""
    guard = summary["guard"]
    return guard["kind"] if isinstance(guard, dict) else guard


def line(summary: dict) -> str:
    """The one-line result ``byai hybrid`` prints."""
    s = summary
    return (f"hybrid: error {s['error_vs_reference']:.3g} vs tolerance {s['tolerance']:.3g} "
            f"({'within' if s['within_tolerance'] else 'NOT within'}), {s['surrogate_steps']} surrogate / "
            f"{s['solver_steps']} solver steps, speedup vs solver {s['speedup_vs_solver']:.3g}"
            + _state_line(s.get("guard"))
            + (f"; {s['note']}" if s.get("note") else ""))


def _state_line(guard) -> str:
    if not isinstance(guard, dict):
        return ""
    return (f"; state guard: coverage {guard['coverage_test']:.3g} (target {guard['coverage_target']:.3g}), "
            f"cost {100 * guard['cost_fraction']:.2g}% of a surrogate step")


def plot(summary: dict, curves: HybridCurves, path: Path) -> None:
    """Error against time (worst sample) and the fraction of samples taking surrogate steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = curves.t
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    floor = 1e-18  # the initial frame (error 0) is left out of the log plot
    ax1.semilogy(t[1:], np.maximum(curves.hybrid.max(axis=0)[1:], floor), label="hybrid (worst sample)")
    ax1.semilogy(t[1:], np.maximum(curves.solver.max(axis=0)[1:], floor), label="solver alone (worst sample)")
    ax1.semilogy(t[1:], np.maximum(curves.estimate.max(axis=0)[1:], floor), "--",
                 label="hybrid's carried estimate (worst sample)")
    ax1.axhline(summary["tolerance"], color="k", lw=0.8, label="tolerance")
    ax1.set_ylabel("RMS error vs reference")
    ax1.legend(fontsize=8)
    ax1.set_title(f"hybrid ({guard_name(summary)} guard): {summary['surrogate_steps']} surrogate / "
                  f"{summary['solver_steps']} solver steps, speedup {summary['speedup_vs_solver']:.2f}x", fontsize=9)
    ax2.step(t[1:], curves.surrogate.mean(axis=0), where="pre")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("surrogate\nfraction")
    ax2.set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
