"""``byai hybrid CONFIG.toml --data DIR --model DIR --out DIR``: the guarded hybrid against the solver alone.

From every test initial condition (``DIR/test.h5``) the solver alone and the
hybrid stepper (surrogate steps where the guard of ``[hybrid]`` and the error
budget allow them, solver steps otherwise) are rolled out over the test time
axis and compared with the file's high-precision reference frames. Writes
``OUT/hybrid.json`` and ``OUT/hybrid.png`` (error and step choice against time).

Norm. Every error is the RMS over grid points and channels of a frame's
difference to the reference (the norm of ``solvers.Solution.error``), and
``error_vs_reference`` is the worst over samples and frames; ``tolerance`` is
in that norm.

Cost. Both runs go sample by sample (``lax.map``) so that the hybrid's
``lax.cond`` really skips the branch not taken; timings exclude compilation
and keep the fastest of ``repeats`` runs. The hybrid's time includes every
guard evaluation and every surrogate proposal that was refused. The json
also gives a cost model from separately timed single steps, so the saving
(or loss) can be read per step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from experiments._audit_cmd import load_model  # the model as byai audit loads it: (stepper, info, with_params)
from experiments._config import load_section
from experiments._toml import ConfigError, load_toml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML with a [hybrid] section (and [audit] for alpha)")
    parser.add_argument("--data", required=True, help="dataset folder with test.h5 and calibration.h5")
    parser.add_argument("--model", required=True, help="trained model folder (byai train --out)")
    parser.add_argument("--out", required=True, help="output folder for hybrid.json and hybrid.png")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="override [hybrid] tolerance (absolute RMS error)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args) -> int:
    import dataclasses

    cfg = load_section(args.config, "hybrid")
    if _steady(args.config):
        return _run_steady(cfg, args)
    if args.tolerance is not None:
        if not (math.isfinite(args.tolerance) and args.tolerance > 0):
            raise ValueError(f"--tolerance must be > 0, got {args.tolerance}")
        cfg = dataclasses.replace(cfg, tolerance=args.tolerance)
    alpha = _audit_alpha(args.config)
    data, model, out = Path(args.data), Path(args.model), Path(args.out)
    for name in ("test.h5",) + (("calibration.h5",) if cfg.guard == "conformal" else ()):
        if not (data / name).is_file():
            raise FileNotFoundError(f"--data {data}: {name} does not exist (run byai generate first)")
    if not model.is_dir():
        raise FileNotFoundError(f"--model {model} does not exist (run byai train first)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    result = compare(cfg, data, model, alpha=alpha, log=None if args.quiet else _log)
    out.mkdir(parents=True, exist_ok=True)
    curves = result.pop("_curves")
    (out / "hybrid.json").write_text(json.dumps(result, indent=2))
    plot(curves, result, out / "hybrid.png")
    if not args.quiet:
        _log(f"wrote {out / 'hybrid.json'} and {out / 'hybrid.png'}")
    print(f"hybrid: error {result['error_vs_reference']:.3g} vs tolerance {result['tolerance']:.3g} "
          f"({'within' if result['within_tolerance'] else 'NOT within'}), {result['surrogate_steps']} surrogate / "
          f"{result['solver_steps']} solver steps, speedup vs solver {result['speedup_vs_solver']:.3g}"
          + (f"; {result['note']}" if result.get("note") else ""))
    return 0


def _run_steady(cfg, args) -> int:
    """A steady map: the surrogate as a guarded shortcut of the linear solve (see ``_hybrid_steady``)."""
    import dataclasses

    from experiments import _hybrid_steady

    if args.tolerance is not None:
        if not (math.isfinite(args.tolerance) and args.tolerance > 0):
            raise ValueError(f"--tolerance must be > 0, got {args.tolerance}")
        cfg = dataclasses.replace(cfg, tolerance=args.tolerance)
    _hybrid_steady.check_config(cfg)
    data, model, out = Path(args.data), Path(args.model), Path(args.out)
    if not (data / "test.h5").is_file():
        raise FileNotFoundError(f"--data {data}: test.h5 does not exist (run byai generate first)")
    if not model.is_dir():
        raise FileNotFoundError(f"--model {model} does not exist (run byai train first)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    result = _hybrid_steady.compare(cfg, data, model, log=None if args.quiet else _log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hybrid.json").write_text(json.dumps(result, indent=2))
    _hybrid_steady.plot(result, out / "hybrid.png")
    print(f"hybrid (steady): error {result['error_vs_reference']:.3g} vs tolerance {result['tolerance']:.3g} "
          f"({'within' if result['within_tolerance'] else 'NOT within'}), {result['surrogate_steps']} surrogate / "
          f"{result['solver_steps']} solver answers, CG iterations {result['cg_iterations']['hybrid']} vs "
          f"{result['cg_iterations']['solver']}, speedup vs solver {result['speedup_vs_solver']:.3g}; {result['note']}")
    return 0


def _steady(config_path) -> bool:
    """Whether the config's ``[data]`` is a steady map (no time steps: nothing for a hybrid to replace)."""
    import datasets

    data = load_toml(config_path).get("data")
    return isinstance(data, dict) and data.get("pde") in datasets.STEADY


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _audit_alpha(config_path) -> float:
    """The conformal level of the config's ``[audit]`` section (its default when absent)."""
    raw = load_toml(config_path)
    if "audit" not in raw:
        return 0.1
    try:
        return load_section(config_path, "audit").alpha
    except ConfigError:
        raise
    except Exception:  # the audit package is not available: its default
        return float(raw["audit"].get("alpha", 0.1))


def compare(cfg, data: Path, model: Path, *, alpha: float = 0.1, log=None) -> dict:
    """Run solver and hybrid from the test initial conditions; the content of ``hybrid.json``."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    import audit
    import datasets
    import solvers
    import surrogates

    say = log or (lambda m: None)
    test = datasets.open(data / "test.h5")
    u_ref = np.asarray(test["u"].values, dtype=np.float64)
    t = np.asarray(test["time"].values, dtype=np.float64)
    n_samples = u_ref.shape[0] if cfg.samples is None else min(cfg.samples, u_ref.shape[0])
    n_steps = u_ref.shape[1] - 1 if cfg.steps is None else cfg.steps
    if n_steps > u_ref.shape[1] - 1:
        raise ConfigError(f"hybrid.steps: must be <= {u_ref.shape[1] - 1} (the test file's save intervals), "
                          f"got {n_steps}")
    dts = np.diff(t)
    dt = float(dts[0])
    if not np.allclose(dts, dt, rtol=1e-9):
        raise datasets.DatasetError(f"{data / 'test.h5'}: the time axis is not uniform; hybrid needs equal save "
                                    "intervals")
    u_ref = u_ref[:n_samples, : n_steps + 1]
    pdes = [datasets.pde_from_attrs(test, sample=i)[0] for i in range(n_samples)]
    pde_batch = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *pdes)

    stepper, info, with_params = load_model(model)
    _check_model(info, test.attrs)
    p_test = jnp.asarray(_params(test, with_params)[:n_samples])

    def surrogate_for(p):
        """The surrogate stepper ``u -> u`` of a sample with physics parameters ``p``."""
        return (lambda u: stepper(u, p)) if with_params else stepper

    def solver_step(pde):
        sub = solvers.stepper(pde, dt / cfg.solver_substeps, method=cfg.solver_method)

        def step(u):
            return lax.fori_loop(0, cfg.solver_substeps, lambda _, v: sub(v), u)
        return step

    bound = None
    if cfg.guard == "conformal":
        bound = one_step_bound(stepper, data / "calibration.h5", alpha, with_params=with_params)
        say(f"conformal one-step RMS error bound (alpha={alpha:g}): {bound:.3g}")

    def make_guard(pde):
        if cfg.guard == "conformal":
            return audit.conformal_guard(bound, cfg.tolerance)
        return audit.residual_guard(pde, dt, cfg.tolerance)

    def make_hybrid(pde, p):
        return surrogates.HybridStepper(solver_step(pde), surrogate_for(p), make_guard(pde),
                                        tolerance=cfg.tolerance, correct_every=cfg.correct_every, growth=cfg.growth)

    @jax.jit
    def solver_run(pde_batch, u0):
        return lax.map(lambda a: solvers.rollout(solver_step(a[0]), a[1], n_steps), (pde_batch, u0))

    @jax.jit
    def hybrid_run(pde_batch, u0, p):
        return lax.map(lambda a: make_hybrid(a[0], a[2]).rollout(a[1], n_steps), (pde_batch, u0, p))

    u0 = jnp.asarray(u_ref[:, 0])
    say(f"solver alone: {n_samples} samples x {n_steps} steps ({cfg.solver_substeps} substeps each)")
    solver_seconds, solver_traj = _time(solver_run, (pde_batch, u0), cfg.repeats)
    say(f"hybrid ({cfg.guard} guard): {n_samples} samples x {n_steps} steps")
    hybrid_seconds, traj = _time(hybrid_run, (pde_batch, u0, p_test), cfg.repeats)

    err_solver = _frame_rms(np.asarray(solver_traj) - u_ref)
    err_hybrid = _frame_rms(np.asarray(traj.u) - u_ref)
    estimate = np.asarray(traj.error)
    surrogate_mask = np.asarray(traj.surrogate)
    final = jax.tree.map(np.asarray, traj.final)
    sur_steps, sol_steps = int(final.surrogate_steps.sum()), int(final.solver_steps.sum())
    rejected, exhausted = int(final.rejected.sum()), int(final.exhausted.sum())
    error = float(err_hybrid.max())
    costs = step_costs(pdes[0], u0[0], solver_step, surrogate_for(p_test[0]), make_guard, repeats=cfg.repeats)
    forced = sol_steps - rejected
    modeled_hybrid = (sur_steps * (costs["surrogate"] + costs["guard"])
                      + rejected * (costs["surrogate"] + costs["guard"] + costs["solver"]) + forced * costs["solver"])
    modeled_solver = n_samples * n_steps * costs["solver"]

    result = {
        "tolerance": cfg.tolerance,
        "error_vs_reference": error,
        "solver_error_vs_reference": float(err_solver.max()),
        "error_norm": "RMS over grid points and channels of one frame minus the test file's reference, "
                      "worst over samples and frames",
        "solver_steps": sol_steps,
        "surrogate_steps": sur_steps,
        "rejected_by_guard": rejected,
        "samples_budget_exhausted": exhausted,
        "solver_seconds": solver_seconds,
        "hybrid_seconds": hybrid_seconds,
        "speedup_vs_solver": solver_seconds / hybrid_seconds,
        "within_tolerance": bool(error <= cfg.tolerance),
        "estimate_max": float(estimate.max()),
        "estimate_bounds_error": bool(np.all(err_hybrid <= estimate + err_solver + 1e-15)),
        "guard": cfg.guard,
        "conformal_one_step_bound": bound,
        "alpha": alpha if cfg.guard == "conformal" else None,
        "correct_every": cfg.correct_every,
        "growth": cfg.growth,
        "samples": n_samples,
        "steps_per_sample": n_steps,
        "save_interval": dt,
        "solver_substeps": cfg.solver_substeps,
        "solver_method": cfg.solver_method,
        "cost_model": {
            "seconds_per_solver_step": costs["solver"],
            "seconds_per_surrogate_step": costs["surrogate"],
            "seconds_per_guard_call": costs["guard"],
            "modeled_solver_seconds": modeled_solver,
            "modeled_hybrid_seconds": modeled_hybrid,
            "modeled_speedup": modeled_solver / modeled_hybrid if modeled_hybrid > 0 else None,
            "formula": "surrogate_steps*(surrogate+guard) + rejected*(surrogate+guard+solver) "
                       "+ (solver_steps-rejected)*solver",
        },
        "execution": "one sample at a time (lax.map) for both runs, compiled once, fastest of repeats "
                     "(XLA drops work whose result is unused, e.g. the surrogate when a constant conformal "
                     "bound already refuses every step)",
        "note": _note(sur_steps, sol_steps, rejected, exhausted, error, float(err_solver.max()), cfg),
    }
    result["_curves"] = {"t": t[: n_steps + 1], "hybrid": err_hybrid, "solver": err_solver, "estimate": estimate,
                         "surrogate": surrogate_mask}
    return result


def _note(sur, sol, rejected, exhausted, error, solver_error, cfg) -> str:
    notes = []
    if sur == 0:
        notes.append("the surrogate is too poor for this tolerance: no step was accepted, the hybrid ran "
                     "solver-only")
    elif exhausted:
        notes.append(f"the error budget ran out on {exhausted} sample(s); the solver finished those intervals")
    if solver_error > cfg.tolerance:
        notes.append(f"the solver alone misses the tolerance ({solver_error:.3g} > {cfg.tolerance:.3g}); "
                     "raise hybrid.solver_substeps")
    elif error > cfg.tolerance:
        notes.append("the hybrid missed the tolerance: its error estimate was not an upper bound here "
                     "(raise hybrid.growth or lower alpha)")
    return "; ".join(notes)


def _check_model(info, attrs) -> None:
    mp, dp = (info or {}).get("pde"), attrs.get("pde")
    if mp is not None and dp is not None and str(mp).lower() != str(dp).lower():
        raise ValueError(f"--model was trained on PDE {mp!r} but --data holds {dp!r}")


def _params(ds, with_params: bool) -> np.ndarray:
    """``(S, P)`` physics parameters per sample (``P = 0`` when the model takes none)."""
    n = ds["u"].shape[0]
    if not with_params:
        return np.zeros((n, 0))
    if "params" not in getattr(ds, "variables", {}):
        raise ValueError("the model takes per-sample physics parameters but the data has no 'params'")
    return np.asarray(ds["params"].values, dtype=np.float64).reshape(n, -1)


def one_step_bound(stepper, calibration_path: Path, alpha: float, *, with_params: bool = False) -> float:
    """Split-conformal bound (level 1 - alpha) of the surrogate's worst one-step RMS error per calibration sample.

    The score of a calibration sample is ``max_n RMS(surrogate(u_n) - u_{n+1})``
    over its reference frames, as ``report.json["conformal"]["one_step_rmse_bound"]``.
    """
    import jax
    import jax.numpy as jnp

    import audit
    import datasets

    cal = datasets.open(calibration_path)
    ref = np.asarray(cal["u"].values, dtype=np.float64)
    p = jnp.asarray(_params(cal, with_params))
    one = (lambda u, q: stepper(u, q)) if with_params else (lambda u, q: stepper(u))
    step = jax.jit(jax.vmap(lambda us, q: jax.vmap(lambda u: one(u, q).astype(jnp.float64))(us)))
    pred = np.asarray(step(jnp.asarray(ref[:, :-1]), p))
    scores = _frame_rms(pred - ref[:, 1:]).max(axis=1)
    return float(audit.conformal_bound(scores, alpha))


def step_costs(pde, u0, solver_step, surrogate, make_guard, *, repeats: int, n: int = 20) -> dict:
    """Seconds per call of one solver step, one surrogate step and one guard call (one sample)."""
    import jax
    from jax import lax

    solve = solver_step(pde)
    guard = make_guard(pde)
    proposal = surrogate(u0)

    def chain(f):
        return jax.jit(lambda u: lax.fori_loop(0, n, lambda _, v: f(v), u))

    fns = {
        "solver": chain(solve),
        "surrogate": chain(surrogate),
        # the guard's output feeds the next call so XLA cannot drop it
        "guard": chain(lambda v: v + 0.0 * guard(v, proposal)[1]),
    }
    return {k: _time(f, (u0,), repeats)[0] / n for k, f in fns.items()}


def _time(fn, args, repeats: int, min_total: float = 0.5):
    """Fastest of at least ``repeats`` runs (and of as many as fit in ``min_total`` s), compilation excluded."""
    import jax

    out = jax.block_until_ready(fn(*args))  # compile
    best, total, runs = math.inf, 0.0, 0
    while runs < repeats or (total < min_total and runs < 100):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        elapsed = time.perf_counter() - start
        best, total, runs = min(best, elapsed), total + elapsed, runs + 1
    return best, out


def _frame_rms(d: np.ndarray) -> np.ndarray:
    """RMS over all axes after (sample, time)."""
    return np.sqrt(np.mean(d**2, axis=tuple(range(2, d.ndim))))


def plot(curves: dict, result: dict, path: Path) -> None:
    """Error against time (worst sample) and the fraction of samples taking surrogate steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = curves["t"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    floor = 1e-18  # the initial frame (error 0) is left out of the log plot
    ax1.semilogy(t[1:], np.maximum(curves["hybrid"].max(axis=0)[1:], floor), label="hybrid (worst sample)")
    ax1.semilogy(t[1:], np.maximum(curves["solver"].max(axis=0)[1:], floor), label="solver alone (worst sample)")
    ax1.semilogy(t[1:], np.maximum(curves["estimate"].max(axis=0)[1:], floor), "--",
                 label="hybrid's carried estimate (worst sample)")
    ax1.axhline(result["tolerance"], color="k", lw=0.8, label="tolerance")
    ax1.set_ylabel("RMS error vs reference")
    ax1.legend(fontsize=8)
    ax1.set_title(f"hybrid ({result['guard']} guard): {result['surrogate_steps']} surrogate / "
                  f"{result['solver_steps']} solver steps, speedup {result['speedup_vs_solver']:.2f}x", fontsize=9)
    ax2.step(t[1:], curves["surrogate"].mean(axis=0), where="pre")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("surrogate\nfraction")
    ax2.set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
