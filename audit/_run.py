"""``audit.run``: roll a stepper out from the test initial conditions and judge it against a requirement."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import datasets
import solvers

from . import _conformal, _equal_accuracy, _metrics, _physics
from ._config import ABSOLUTE_METRICS, RELATIVE_METRICS, AuditConfig, AuditError, Requirement


@dataclasses.dataclass(frozen=True)
class Report:
    """The result of :func:`run`.

    Attributes:
        passed: whether the requirement holds (see :class:`Requirement`).
        summary: the content of ``report.json`` (plain JSON types).
        predictions: ``(sample, horizon + 1, *space, C)`` float64 rollouts from the test
            initial conditions, the initial frame included.
        metrics: ``name -> (sample, horizon + 1)`` per-frame metrics on the test split
            (frame 0 is the initial condition; summaries exclude it).
        files: paths written (``report.json``, ``report.html``, ``predictions.h5``), if any.
    """

    passed: bool
    summary: dict
    predictions: np.ndarray
    metrics: dict
    files: dict


# ----------------------------------------------------------------------------------------- input
def _attrs(ds) -> dict:
    return dict(getattr(ds, "attrs", {}) or {})


def _split_arrays(ds, name: str):
    """``u`` as float64 ``(S, T, *space, C)``, the time axis, and the ``error_estimate`` (or None)."""
    if "u" not in getattr(ds, "variables", {}):
        raise AuditError(f"the {name} split has no variable 'u'")
    u_var = ds["u"]
    dims = tuple(u_var.dims)
    if len(dims) < 4 or dims[0] != "sample" or dims[1] not in ("time", "stage") or dims[-1] != "channel":
        raise AuditError(f"{name} 'u' must have dims (sample, time, x[, y], channel) (a steady map: stage for "
                         f"time), got {dims}")
    u = np.asarray(u_var.values, dtype=np.float64)
    if u.shape[0] < 1 or u.shape[1] < 2:
        raise AuditError(f"{name} 'u' needs at least one sample and two frames (a rollout to audit), got shape "
                         f"{u.shape}")
    if not np.all(np.isfinite(u)):
        raise AuditError(f"the {name} split holds non-finite values in 'u'")
    t = np.asarray(ds[dims[1]].values if dims[1] in ds.coords else np.arange(u.shape[1]), dtype=np.float64)
    est = None
    if "error_estimate" in getattr(ds, "variables", {}):
        est = np.asarray(ds["error_estimate"].values, dtype=np.float64)
        if est.shape != u.shape[:2]:
            raise AuditError(f"{name} 'error_estimate' must have shape {u.shape[:2]}, got {est.shape}")
    return u, t, est


def _tolerance(attrs) -> tuple[float, float] | None:
    """``(rtol, atol)`` of the reference data, or None when unknown (imported data)."""
    known = attrs.get("tolerance_known", 1)
    try:
        rtol, atol = float(attrs.get("rtol", np.nan)), float(attrs.get("atol", np.nan))
    except (TypeError, ValueError):
        return None
    if not int(np.asarray(known)) or not (math.isfinite(rtol) and math.isfinite(atol)) or rtol < 0 or atol < 0:
        return None
    if rtol == 0 and atol == 0:
        return None
    return rtol, atol


def _pde_for(test, pde):
    """``(pde, per_sample, reason)``: the PDE of the test split, from ``pde`` or the file's attributes."""
    if pde is not None:
        return pde, False, None
    fn = datasets.pde_from_attrs
    try:
        if "params" in getattr(test, "variables", {}):
            pdes = [fn(test, sample=i)[0] for i in range(test.sizes["sample"])]
            stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float64) for x in xs]), *pdes)
            return stacked, True, None
        return fn(test)[0], False, None
    except Exception as e:  # an imported file or a PDE the solvers do not know: physics is unknown
        return None, False, f"the test file's PDE could not be rebuilt ({' '.join(str(e).split())})"


def _check_model_info(info: dict | None, test_attrs: dict) -> dict:
    """Refuse a model trained on another PDE; return the provenance entries of ``info``."""
    if not info:
        return {}
    out = {}
    names = {"pde": "model_pde", "dataset_sha256": "dataset_sha256", "checkpoint_sha256": "checkpoint_sha256",
             "checkpoint": "checkpoint", "step": "model_step", "model": "model_config"}
    for key, name in names.items():
        if key in info:
            out[name] = _jsonable(info[key])
    mp, dp = info.get("pde"), test_attrs.get("pde")
    if mp is not None and dp is not None and str(mp).strip().lower() != str(dp).strip().lower():
        raise AuditError(f"the model was trained on PDE {mp!r} but the test data is {dp!r}; "
                         "audit a model with data of its own PDE")
    for key in ("pde_params", "grid_shape", "grid_length"):
        if key in info and key in test_attrs and _norm(info[key]) != _norm(test_attrs[key]):
            raise AuditError(f"the model's {key} {info[key]!r} differs from the test data's {test_attrs[key]!r}")
    return out


def _norm(v):
    """A comparable form of an attribute: JSON text decoded, numbers as 1-D float lists, dicts recursively."""
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return v.strip().lower()
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items()}
    try:
        return [float(x) for x in np.atleast_1d(np.asarray(v, dtype=np.float64))]
    except (TypeError, ValueError):
        return str(v)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode(errors="replace")
    if isinstance(v, (np.generic, np.ndarray)):
        return _jsonable(np.asarray(v).tolist())
    if isinstance(v, float):
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


# -------------------------------------------------------------------------------------- rollouts
def _check_stepper(f, state_shape, n_params: int):
    spec = jax.ShapeDtypeStruct(state_shape, jnp.float64)
    try:
        out = jax.eval_shape(f, spec, jax.ShapeDtypeStruct((n_params,), jnp.float64))
    except Exception as e:
        raise AuditError(f"the stepper fails on a state of shape {state_shape} "
                         f"(*grid.shape, channels): {' '.join(str(e).split())[:300]}") from None
    shape = getattr(out, "shape", None)
    if shape is None or tuple(shape) != tuple(state_shape):
        raise AuditError(f"the stepper must return a state of shape {state_shape}, got "
                         f"{tuple(shape) if shape is not None else type(out).__name__}")


def _bind(stepper, with_params: bool):
    """``f(u, p)``: the stepper with the sample's physics parameters ``p`` (ignored unless ``with_params``)."""
    if with_params:
        return lambda u, p: stepper(u, p).astype(jnp.float64)
    return lambda u, p: stepper(u).astype(jnp.float64)


def _params(ds, name: str, with_params: bool) -> np.ndarray:
    """``(S, P)`` physics parameters per sample (``P = 0`` unless ``with_params``)."""
    n = ds["u"].shape[0]
    if not with_params:
        return np.zeros((n, 0))
    if "params" not in getattr(ds, "variables", {}):
        raise AuditError(f"the stepper takes per-sample physics parameters but the {name} split has no 'params'")
    p = np.asarray(ds["params"].values, dtype=np.float64).reshape(n, -1)
    if not np.all(np.isfinite(p)):
        raise AuditError(f"the {name} split's 'params' are not finite")
    return p


def _rollout_fn(f, horizon: int):
    def one(u0, p):
        return solvers.rollout(lambda u: f(u, p), u0, horizon)

    return jax.jit(jax.vmap(one))


def _first_nonfinite(pred, name):
    bad = ~np.all(np.isfinite(pred.reshape(*pred.shape[:2], -1)), axis=-1)
    if np.any(bad):
        i, n = np.argwhere(bad)[0]
        raise AuditError(f"the stepper returned non-finite values on the {name} split (first at sample {i}, "
                         f"rollout step {n} of {pred.shape[1] - 1}): the surrogate diverged, no verdict is possible")


# --------------------------------------------------------------------------------------- metrics
def _with_multiples(m: dict, ref, tol) -> dict:
    """Each metric divided by the per-frame tolerance (absolute metrics) or relative tolerance (relative)."""
    ax = tuple(range(2, ref.ndim))
    rms_ref = np.sqrt(np.mean(ref**2, axis=ax))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_tol = tol / rms_ref
        out = {k: m[k] / tol for k in ABSOLUTE_METRICS if k in m}
        out.update({k: m[k] / rel_tol for k in RELATIVE_METRICS if k in m})
    return out


def _requirement_values(req: Requirement, metrics: dict, multiples: dict | None) -> np.ndarray:
    if req.metric == "tolerance_multiple" or req.threshold_kind == "tolerance_multiple":
        key = "rmse" if req.metric == "tolerance_multiple" else req.metric
        if multiples is None:
            raise AuditError(f"the requirement {req} is a multiple of the solver tolerance, but the test data's "
                             "tolerance is unknown (imported data); state an absolute threshold instead")
        return multiples[key]
    if req.metric not in metrics:
        raise AuditError(f"the metric {req.metric!r} is not available for this PDE "
                         "(energy_error needs a PDE that conserves energy)")
    return metrics[req.metric]


def _curves(values, horizon) -> dict:
    v = np.asarray(values)[:, 1:horizon + 1]
    return {"mean": np.mean(v, axis=0).tolist(), "q95": np.quantile(v, 0.95, axis=0).tolist(),
            "max": np.max(v, axis=0).tolist()}


def _metric_block(values, horizon) -> dict:
    out = _metrics.summarize(np.asarray(values)[:, 1:horizon + 1])
    out["per_step"] = _curves(values, horizon)
    return out


def _one_step_rmse(f, ref, params, horizon: int) -> np.ndarray:
    """``(S, horizon)`` RMS error of one stepper step from each reference frame ``n = 0..horizon-1``."""
    frames = jnp.asarray(ref[:, :horizon])
    s = jax.jit(jax.vmap(lambda fr, p: jax.vmap(lambda u: f(u, p))(fr)))(frames, jnp.asarray(params))
    return np.sqrt(np.mean((np.asarray(s) - ref[:, 1:horizon + 1]) ** 2, axis=tuple(range(2, ref.ndim))))


# -------------------------------------------------------------------------------------------- run
def run(stepper: Callable, test, calibration, requirement: Requirement | str | None = None, *,
        config: AuditConfig | None = None, pde=None, out_dir=None, model_info: dict | None = None,
        provenance: dict | None = None, solver_stepper_factory: Callable | None = None,
        with_params: bool = False, quiet: bool = True) -> Report:
    """Audit ``stepper`` on the ``test`` split against ``requirement``.

    Rolls ``stepper`` out (``jax.jit`` of ``jax.vmap`` of ``solvers.rollout``)
    from every test and calibration initial condition over the requirement's
    horizon, computes the metrics of :mod:`audit._metrics` per sample and step,
    states them as multiples of the reference tolerance, bounds the error by
    split conformal prediction on the calibration split, reruns the solver at
    cheaper settings for the speedup at equal accuracy, checks the PDE residual
    and conservation, and decides the requirement (see :class:`Requirement`).
    A steady map (``problem = "steady_map"`` in the test file's attributes) is audited
    as one application of ``stepper`` to stage 0 (horizon 1), with the discrete
    Darcy residual as its physics and coarser grids / looser CG tolerances at
    equal accuracy (see the package docstring).

    Args:
        stepper: ``step(u) -> u`` on one ``(*space, C)`` state over one save interval.
        test, calibration: ``xarray.Dataset``s in the dataset layout (``u`` with dims
            ``(sample, time, x[, y], channel)``, ``error_estimate``, attrs ``pde``, ``rtol``,
            ``atol``, ``sha256``, ...), e.g. from ``datasets.open``.
        requirement: a :class:`Requirement`, a ``"METRIC<=VALUE[x]"`` string, or None for
            ``config``'s.
        config: the ``[audit]`` settings (defaults: ``AuditConfig()``).
        pde: the reference PDE on the data grid; None rebuilds it from the test file's
            attributes (``datasets.pde_from_attrs``); when that fails the physics and the
            equal-accuracy comparison are reported as ``"unknown"``.
        out_dir: when given, ``report.json``, ``report.html`` and ``predictions.h5`` are written there.
        model_info: the surrogate's info (``pde``, ``dataset_sha256``, ``checkpoint_sha256``, ...);
            a model of another PDE is refused.
        provenance: extra provenance entries for the report.
        solver_stepper_factory: ``factory(pde, dt, method) -> stepper`` for the equal-accuracy
            search (default ``solvers.stepper``).
        with_params: the stepper is ``step(u, p)`` and takes each sample's physics parameters
            ``p = split["params"][i]`` (``(P,)``), for surrogates trained with per-sample physics.
        quiet: no progress messages on stderr.

    Raises:
        AuditError: on input that allows no verdict (wrong shape or non-finite rollouts,
            calibration too small for alpha, a tolerance-multiple requirement without a
            known tolerance, a model of another PDE, too short a test file).
    """
    config = config or AuditConfig()
    if requirement is None:
        req = config.to_requirement()
    elif isinstance(requirement, str):
        req = Requirement.parse(requirement, horizon=config.horizon, quantile=config.quantile, alpha=config.alpha)
    else:
        req = requirement
    say = (lambda msg: None) if quiet else (lambda msg: print(f"byai audit: {msg}", file=sys.stderr))

    ref, t, est = _split_arrays(test, "test")
    cal_ref, cal_t, _ = _split_arrays(calibration, "calibration")
    attrs = _attrs(test)
    problem, cal_problem = datasets.problem_of(attrs), datasets.problem_of(_attrs(calibration))
    steady = problem == "steady_map"
    if steady and req.horizon not in (None, 1):
        raise AuditError(f"the requirement's horizon {req.horizon} does not apply to a steady map a -> u: it is "
                         "audited as one application (horizon 1); set audit.horizon = 1 or leave it out")
    if cal_problem != problem:
        raise AuditError(f"the calibration split is a {cal_problem} dataset, the test split a {problem}")
    if cal_ref.shape[2:] != ref.shape[2:]:
        raise AuditError(f"calibration states {cal_ref.shape[2:]} differ from test states {ref.shape[2:]}")
    horizon = req.horizon or ref.shape[1] - 1
    for name, n in (("test", ref.shape[1]), ("calibration", cal_ref.shape[1])):
        if horizon > n - 1:
            raise AuditError(f"the requirement's horizon {horizon} exceeds the {n - 1} steps of the {name} split")
    dts = np.diff(t[:horizon + 1])
    dt = float(dts[0])
    if not (dt > 0 and np.allclose(dts, dt, rtol=1e-9, atol=0)):
        raise AuditError("the test time axis must be uniformly spaced (one stepper step per save interval)")
    if len(cal_t) > 1 and not np.isclose(cal_t[1] - cal_t[0], dt, rtol=1e-9):
        raise AuditError(f"calibration save interval {cal_t[1] - cal_t[0]:g} differs from the test's {dt:g}")
    tol_pair = _tolerance(attrs)
    if req.threshold_kind == "tolerance_multiple" and tol_pair is None:
        raise AuditError(f"the requirement {req} is a multiple of the solver tolerance, but the test data's "
                         "tolerance is unknown (imported data); state an absolute threshold instead")
    prov = {"test_sha256": _jsonable(attrs.get("sha256")),
            "calibration_sha256": _jsonable(_attrs(calibration).get("sha256"))}
    prov.update(_check_model_info(model_info, attrs))
    prov.update(_jsonable(provenance or {}))
    if model_info and "dataset_sha256" in model_info:
        prov.setdefault("dataset_matches_training", None)  # the CLI fills it in from train.h5

    state_shape = ref.shape[2:]
    f = _bind(stepper, with_params)
    p_test, p_cal = _params(test, "test", with_params), _params(calibration, "calibration", with_params)
    if p_test.shape[1] != p_cal.shape[1]:
        raise AuditError(f"test and calibration splits have {p_test.shape[1]} and {p_cal.shape[1]} parameters")
    _check_stepper(f, state_shape, p_test.shape[1])

    # -------------------------------------------------------------- rollouts
    say(f"rolling out {ref.shape[0]} test and {cal_ref.shape[0]} calibration samples over {horizon} steps")
    roll = _rollout_fn(f, horizon)
    u0 = jnp.asarray(ref[:, 0])
    surrogate_seconds, pred = _equal_accuracy.time_call(roll, u0, jnp.asarray(p_test),
                                                        repeats=config.equal_accuracy.repeats)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != (ref.shape[0], horizon + 1, *state_shape):
        raise AuditError(f"the rollout has shape {pred.shape}, expected {(ref.shape[0], horizon + 1, *state_shape)}")
    _first_nonfinite(pred, "test")
    cal_pred = np.asarray(roll(jnp.asarray(cal_ref[:, 0]), jnp.asarray(p_cal)), dtype=np.float64)
    _first_nonfinite(cal_pred, "calibration")
    ref_h, cal_h = ref[:, :horizon + 1], cal_ref[:, :horizon + 1]

    # -------------------------------------------------------------- physics knowledge
    pde_, per_sample, pde_reason = (None, False, "a steady map") if steady else _pde_for(test, pde)
    conserved = None
    if pde_ is not None:
        try:
            conserved = _physics.conserved_quantities(
                jax.tree.map(lambda x: x[0], pde_) if per_sample else pde_)
        except Exception as e:
            pde_, pde_reason = None, f"the PDE could not be evaluated ({e})"
    energy = bool(conserved and conserved["energy"])

    # -------------------------------------------------------------- metrics
    m_test = _metrics.field_metrics(pred, ref_h, band_edges=config.band_edges, energy=energy)
    m_cal = _metrics.field_metrics(cal_pred, cal_h, band_edges=config.band_edges, energy=energy)
    ax = tuple(range(2, ref_h.ndim))
    tol = tol_cal = mult_test = mult_cal = None
    if tol_pair is not None:
        rtol, atol = tol_pair
        tol = rtol * np.sqrt(np.mean(ref_h**2, axis=ax)) + atol
        tol_cal = rtol * np.sqrt(np.mean(cal_h**2, axis=ax)) + atol
        mult_test = _with_multiples(m_test, ref_h, tol)
        mult_cal = _with_multiples(m_cal, cal_h, tol_cal)
        m_test["tolerance_multiple"] = mult_test["rmse"]
        m_cal["tolerance_multiple"] = mult_cal["rmse"]

    # -------------------------------------------------------------- verdict and conformal bound
    v_test = _requirement_values(req, m_test, mult_test)[:, 1:]
    v_cal = _requirement_values(req, m_cal, mult_cal)[:, 1:]
    score_test, score_cal = np.max(v_test, axis=1), np.max(v_cal, axis=1)
    bound = _conformal.conformal_bound(score_cal, req.alpha)
    per_step_bound = _conformal.conformal_bounds(v_cal, req.alpha)
    test_q = _metrics.upper_quantile(score_test, req.quantile)
    passed = bool(test_q <= req.threshold and bound <= req.threshold)
    # one-step errors from every reference frame (all calibration frames, as the hybrid stepper uses them)
    n1 = min(cal_ref.shape[1], ref.shape[1]) - 1
    one_step = _one_step_rmse(f, np.concatenate([cal_ref[:, :n1 + 1], ref[:, :n1 + 1]]),
                              np.concatenate([p_cal, p_test]), n1)
    one_step_cal, one_step_test = one_step[:cal_ref.shape[0]], one_step[cal_ref.shape[0]:]
    one_step_bound = _conformal.conformal_bound(np.max(one_step_cal, axis=1), req.alpha)
    conformal = {
        "alpha": req.alpha, "level": 1 - req.alpha, "score": f"max over steps 1..{horizon} of {_score_name(req)}",
        "n_calibration": int(score_cal.size), "bound": bound,
        "coverage_calibration": _conformal.coverage(score_cal, bound),
        "coverage_test": _conformal.coverage(score_test, bound),
        "per_step": {"bound": per_step_bound.tolist(),
                     "coverage_calibration": np.mean(v_cal <= per_step_bound, axis=0).tolist(),
                     "coverage_test": np.mean(v_test <= per_step_bound, axis=0).tolist()},
        "one_step_rmse_bound": one_step_bound,
        "one_step_rmse_score": f"max over reference frames 0..{n1 - 1} of RMS(step(u_ref[n]) - u_ref[n+1])",
        "one_step_rmse_coverage_test": _conformal.coverage(np.max(one_step_test, axis=1), one_step_bound),
    }

    # -------------------------------------------------------------- correlation time
    ctime, censored = _metrics.correlation_time(m_test["correlation"][:, 1:], config.correlation_threshold)

    # -------------------------------------------------------------- tolerance multiples
    if tol is None:
        tolerance_block = "unknown"
        solver_tol = {"rtol": None, "atol": None, "known": False,
                      "reason": "the test data does not state its solver tolerance (imported data)"}
    else:
        tolerance_block = {k: _metric_block(v, horizon) for k, v in mult_test.items()}
        tolerance_block["definition"] = (
            "metric / tol_n with tol_n = rtol * RMS(u_ref[n]) + atol for metrics in the units of u; "
            "metric / (tol_n / RMS(u_ref[n])) for rel_l2 and nrmse")
        if est is not None and np.all(np.isfinite(est[:, 1:horizon + 1])):
            with np.errstate(divide="ignore", invalid="ignore"):
                em = m_test["rmse"] / est[:, :horizon + 1]
            tolerance_block["error_estimate_multiple"] = _metric_block(np.where(np.isfinite(em), em, np.inf),
                                                                       horizon)
        solver_tol = {"rtol": tol_pair[0], "atol": tol_pair[1], "known": True,
                      "per_step_mean": np.mean(tol[:, 1:], axis=0).tolist(),
                      "mean": float(np.mean(tol[:, 1:]))}
        if est is not None:
            solver_tol["error_estimate_mean"] = float(np.nanmean(est[:, 1:horizon + 1]))

    # -------------------------------------------------------------- physics
    if steady:
        say("discrete PDE residual of the predicted solutions")
        physics = _map_physics(test, pred, ref_h, horizon)
    elif pde_ is None:
        physics = {"status": "unknown", "reason": pde_reason}
    else:
        say("PDE residual of the rollout")
        both = np.concatenate([pred, ref_h])  # one compilation for both
        pde_both = jax.tree.map(lambda x: jnp.concatenate([x, x]), pde_) if per_sample else pde_
        d_both = _physics.defects(pde_both, dt, both, config.residual_substeps, per_sample)
        d_pred, d_ref = d_both[:pred.shape[0]], d_both[pred.shape[0]:]
        dr_pred, dr_ref = _physics.drift(pred, len(state_shape) - 1), _physics.drift(ref_h, len(state_shape) - 1)
        physics = {
            "residual": {"definition": f"RMS(u[n+1] - S_dt(u[n])), S_dt = {config.residual_substeps} "
                                       "ETDRK4 steps of the reference PDE per save interval",
                         "prediction": _metric_block(np.pad(d_pred, ((0, 0), (1, 0))), horizon),
                         "reference": _metric_block(np.pad(d_ref, ((0, 0), (1, 0))), horizon)},
            "conserved": conserved,
            "drift": {q: {"prediction": _metric_block(dr_pred[q], horizon),
                          "reference": _metric_block(dr_ref[q], horizon)}
                      for q in ("mass", "energy") if conserved[q]},
        }
        if tol is not None:
            physics["residual"]["tolerance_multiple"] = _metric_block(
                np.pad(d_pred, ((0, 0), (1, 0))) / tol, horizon)

    # -------------------------------------------------------------- equal accuracy
    if steady:
        equal = _map_equal_accuracy_block(req, config, test, ref_h, tol, surrogate_seconds, test_q, say)
    else:
        equal = _equal_accuracy_block(req, config, pde_, per_sample, pde_reason, ref_h, t[:horizon + 1], dt,
                                      horizon, tol, surrogate_seconds, test_q, solver_stepper_factory, say)

    # -------------------------------------------------------------- report
    metrics_json = {k: _metric_block(v, horizon) for k, v in m_test.items()}
    metrics_json["correlation_time"] = {
        **_metrics.summarize(ctime), "threshold": config.correlation_threshold,
        "censored_fraction": float(np.mean(censored)), "unit": "steps", "dt": dt}
    summary = {
        "passed": passed,
        "verdict": "pass" if passed else "fail",
        "requirement": {**dataclasses.asdict(req), "horizon": horizon, "text": str(req)},
        "score": {"definition": conformal["score"], "test_quantile": test_q, "quantile": req.quantile,
                  "threshold": req.threshold, "worst_sample": int(np.argmax(score_test)),
                  "per_sample": score_test.tolist()},
        "metrics": metrics_json,
        "solver_tolerance": solver_tol,
        "tolerance_multiple": tolerance_block,
        "conformal": conformal,
        "equal_accuracy": equal,
        "physics": physics,
        "samples": {"test": int(ref.shape[0]), "calibration": int(cal_ref.shape[0])},
        "time": {"dt": dt, "t0": float(t[0]), "horizon": horizon},
        "provenance": prov,
        "pde": _jsonable(attrs.get("pde")),
        "problem": problem,
    }
    summary = _jsonable(summary)
    files = {}
    if out_dir is not None:
        from ._report import write_outputs
        files = write_outputs(Path(out_dir), summary, pred, ref_h, t[:horizon + 1], test, v_test, tol,
                              score_test, score_cal)
    return Report(passed, summary, pred, m_test, files)


def _score_name(req: Requirement) -> str:
    if req.threshold_kind == "tolerance_multiple":
        return f"{req.metric} / solver tolerance"
    return req.metric


def _equal_accuracy_block(req, config, pde, per_sample, reason, ref_h, t, dt, horizon, tol, surrogate_seconds,
                          surrogate_score, factory, say) -> dict:
    base = {"surrogate_seconds": surrogate_seconds, "surrogate_error": surrogate_score,
            "error_definition": f"q{req.quantile:g} over test samples of the max over steps of {_score_name(req)}"}
    if not config.equal_accuracy.enabled:
        return {**base, "status": "skipped", "solver_seconds": None, "speedup": None, "solver_setting": None}
    if pde is None:
        return {**base, "status": "unknown", "reason": reason, "solver_seconds": None, "speedup": None,
                "solver_setting": None}
    grid = pde.grid
    score = _score_fn(req, config, ref_h, tol)
    say("equal-accuracy search over solver settings")
    res = _equal_accuracy.search(pde, grid, jnp.asarray(ref_h[:, 0]), dt, horizon, score, surrogate_score,
                                 config.equal_accuracy, per_sample_pde=per_sample, t=t,
                                 factory=factory or _equal_accuracy.default_factory,
                                 progress=lambda p: say(f"  {p['setting']}: {p['seconds']:.3g} s, "
                                                        f"error {p['error']:.3g}"))
    return {**base, **_chosen_block(res, surrogate_seconds)}


def _score_fn(req, config, ref_h, tol):
    """``score(traj)``: the requirement's aggregate error of a solver run (the surrogate's score, same definition)."""
    def score(traj):
        m = _metrics.field_metrics(traj, ref_h, band_edges=config.band_edges,
                                   energy="energy_error" == req.metric)
        if tol is not None:
            mult = _with_multiples(m, ref_h, tol)
            m["tolerance_multiple"] = mult["rmse"]
        else:
            mult = None
        v = _requirement_values(req, m, mult)[:, 1:]
        v = np.where(np.isfinite(v), v, np.inf)
        return _metrics.upper_quantile(np.max(v, axis=1), req.quantile)

    return score


def _chosen_block(res, surrogate_seconds: float) -> dict:
    chosen = res["chosen"]
    notes = {"exact": "the cheapest solver setting tried that is at least as accurate as the surrogate",
             "upper": "the cheapest setting tried already matches: a cheaper solver may too, so the speedup "
                      "is an upper bound",
             "lower": "no setting tried reached the surrogate's accuracy: the most accurate one is given and the "
                      "speedup is a lower bound"}
    return {"status": "measured", "solver_seconds": chosen["seconds"],
            "solver_error": chosen["error"], "speedup": chosen["seconds"] / surrogate_seconds,
            "speedup_bound": res["bound"], "note": notes[res["bound"]],
            "solver_setting": chosen["setting"], "points": res["points"]}


# ----------------------------------------------------------------------------------- steady maps
def _map_physics(test, pred, ref_h, horizon) -> dict:
    """The discrete residual ``RMS(f - A_h u)`` of predicted and reference solutions of a Darcy map."""
    grid = solvers.Grid(tuple(ref_h.shape[2:-1]), (1.0, 1.0))
    source = datasets.map_source(test)

    def residual(a, u):
        return jnp.sqrt(jnp.mean(solvers.Darcy(grid, coefficient=a, source=source).residual(u) ** 2))

    f = jax.jit(jax.vmap(residual))
    a = jnp.asarray(ref_h[:, 0, ..., 0])
    d_pred = np.asarray(f(a, jnp.asarray(pred[:, 1, ..., 0])))
    d_ref = np.asarray(f(a, jnp.asarray(ref_h[:, 1, ..., 0])))
    pad = lambda d: np.stack([np.zeros_like(d), d], axis=1)  # noqa: E731 (frame 0 is the input)
    return {
        "residual": {"definition": "RMS(f - A_h u): the cell-centred finite-volume Darcy operator of the test "
                                   "file's grid applied to the predicted (or reference) solution; the reference's is "
                                   "its CG residual",
                     "prediction": _metric_block(pad(d_pred), horizon),
                     "reference": _metric_block(pad(d_ref), horizon)},
        "conserved": {"mass": False, "energy": False},
        "drift": {},
    }


def _map_equal_accuracy_block(req, config, test, ref_h, tol, surrogate_seconds, surrogate_score, say) -> dict:
    base = {"surrogate_seconds": surrogate_seconds, "surrogate_error": surrogate_score,
            "error_definition": f"q{req.quantile:g} over test samples of {_score_name(req)} of the solution"}
    if not config.equal_accuracy.enabled:
        return {**base, "status": "skipped", "solver_seconds": None, "speedup": None, "solver_setting": None}
    say("equal-accuracy search over Darcy grids and CG tolerances")
    res = _equal_accuracy.search_steady(ref_h[:, 0, ..., 0], datasets.map_source(test),
                                        _score_fn(req, config, ref_h, tol), surrogate_score, config.equal_accuracy,
                                        progress=lambda p: say(f"  {p['setting']}: {p['seconds']:.3g} s, "
                                                               f"error {p['error']:.3g}"))
    return {**base, **_chosen_block(res, surrogate_seconds)}
