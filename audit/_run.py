"""``audit.run``: roll a stepper out from the test initial conditions and judge it against a requirement.

:func:`run` is five stages, each returning a frozen result: :func:`_load` (:class:`Inputs`: the validated
splits, requirement, horizon, tolerance, provenance and the problem kind's audit with its PDE),
:func:`_roll_out` (:class:`Rollouts`), :func:`_score` (:class:`Scores`: metrics, tolerance multiples,
conformal bounds and coverages, the verdict), the kind's physics (:class:`audit._kinds.Physics`) and
:func:`_equal_accuracy_stage` (:class:`audit._kinds.EqualAccuracy`). :class:`Report` holds them all;
``report.json`` is :attr:`Report.summary`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import datasets
import solvers
from datasets import Problem

from . import _conformal, _cost, _kinds, _metrics
from ._config import ABSOLUTE_METRICS, RELATIVE_METRICS, AuditConfig, AuditError, Requirement
from ._equal_accuracy import check_repeats, time_call, time_call_ticks
from ._kinds import EqualAccuracy, Physics, ProblemAudit, score_name
from ._progress import bar, echo


# ------------------------------------------------------------------------------------- stage results
@dataclasses.dataclass(frozen=True)
class Inputs:
    """What :func:`_load` validated: the splits, the requirement and what the audit knows of the problem.

    Attributes:
        requirement: the requirement judged.
        config: the audit settings.
        kind: the problem kind of both splits (``datasets.problem_of``).
        problem: the kind's audit (:mod:`audit._kinds`), holding the PDE when one is known.
        ref, cal_ref: ``(S, T, *space, C)`` float64 test and calibration references (every frame).
        t: ``(T,)`` the test frame coordinates (save times; a steady map's stages 0, 1).
        error_estimate: ``(S, T)`` the test reference's stored error bound, or None.
        params_test, params_cal: ``(S, P)`` per-sample physics parameters (``P = 0`` unless ``with_params``).
        horizon: rollout steps audited.
        dt: the save interval (one stepper step).
        tolerance: the reference's ``(rtol, atol)``, None when unknown (imported data).
        provenance: the report's provenance entries.
        pde_name: the test file's ``pde`` attribute.
        stride: saved frames per stepper step (``ref``, ``t`` and ``dt`` are already every ``stride``-th frame).
        window: states the stepper's state holds (``surrogates.as_stepper`` of a model with ``input_steps``);
            with ``window > 1`` ``ref`` starts at the window's newest frame.
        init, cal_init: ``(S, window, *space, C)`` the frames the rollouts start from (``ref[:, :1]`` for a
            window of 1).
    """

    requirement: Requirement
    config: AuditConfig
    kind: Problem
    problem: ProblemAudit
    ref: np.ndarray
    cal_ref: np.ndarray
    t: np.ndarray
    error_estimate: np.ndarray | None
    params_test: np.ndarray
    params_cal: np.ndarray
    horizon: int
    dt: float
    tolerance: tuple[float, float] | None
    provenance: dict
    pde_name: object
    stride: int = 1
    window: int = 1
    init: np.ndarray | None = None
    cal_init: np.ndarray | None = None

    def frames(self) -> np.ndarray:
        """Every (strided) test reference frame, the window's older frames included."""
        return self.ref if self.window == 1 else np.concatenate([self.init[:, :-1], self.ref], axis=1)


@dataclasses.dataclass(frozen=True)
class Rollouts:
    """What :func:`_roll_out` produced (or :func:`audit.run_predictions` was given): ``(S, horizon + 1, *space, C)``
    predictions from the test and calibration initial conditions (frame 0 included; no calibration samples when
    none were given), the references cut to the horizon, and the wall time (s) of the test rollouts (fastest
    repeat, compilation excluded; None when unknown)."""

    pred: np.ndarray
    cal_pred: np.ndarray
    ref: np.ndarray
    cal_ref: np.ndarray
    seconds: float | None


@dataclasses.dataclass(frozen=True)
class Scores:
    """What :func:`_score` measured and decided.

    Attributes:
        metrics: ``name -> (S, horizon + 1)`` per-frame metrics of the test predictions (with
            ``tolerance_multiple`` when the tolerance is known).
        tolerance: ``(S, horizon + 1)`` per-frame tolerance ``rtol * RMS(u_ref) + atol`` of the test
            reference, or None.
        multiples: ``name -> (S, horizon + 1)`` test metrics in units of the tolerance, or None.
        values, cal_values: ``(S, horizon)`` the requirement's metric (or its tolerance multiple) at
            steps ``1..horizon`` on the test and calibration splits.
        score, cal_score: ``(S,)`` each sample's worst value over the steps.
        test_quantile: the requirement's quantile of ``score``.
        bound: the split-conformal bound of the score at level ``1 - alpha``.
        per_step_bound: ``(horizon,)`` conformal bounds of each step's value.
        one_step_bound: :func:`one_step_bound` of the stepper on the calibration split.
        one_step_frames: the reference frames ``0..one_step_frames-1`` one-step errors start from.
        one_step_coverage_test: the fraction of test samples whose one-step score is within it.
        correlation_time, censored: ``(S,)`` steps the correlation stays above the threshold, and
            whether it never drops.
        passed: the verdict (see :class:`Requirement`).
        pdebench: ``name -> (horizon + 1,)`` PDEBench's metrics aggregated over test samples
            (:func:`audit._metrics.pdebench_metrics`).
        conformal_reason: None when the conformal bound was calibrated; else why there is none (no
            calibration predictions: ``bound`` is NaN and the verdict rests on ``test_quantile`` alone).
        one_step_reason: None when the one-step bound was measured; else why not (``one_step_bound`` NaN).
    """

    metrics: dict
    tolerance: np.ndarray | None
    multiples: dict | None
    values: np.ndarray
    cal_values: np.ndarray
    score: np.ndarray
    cal_score: np.ndarray
    test_quantile: float
    bound: float
    per_step_bound: np.ndarray
    one_step_bound: float
    one_step_frames: int
    one_step_coverage_test: float
    correlation_time: np.ndarray
    censored: np.ndarray
    passed: bool
    pdebench: dict = dataclasses.field(default_factory=dict)
    conformal_reason: str | None = None
    one_step_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    """The result of :func:`run`: every stage's result; :attr:`summary` is ``report.json``.

    Attributes:
        inputs, rollouts, scores, physics, equal_accuracy: the stage results.
        files: paths written (``json``, ``html``, ``predictions``), if any.
        generation_cost, training_cost: what the surrogate cost to make, as recorded (see :func:`run`).
    """

    inputs: Inputs
    rollouts: Rollouts
    scores: Scores
    physics: Physics
    equal_accuracy: EqualAccuracy
    files: dict = dataclasses.field(default_factory=dict)
    generation_cost: dict | None = None
    training_cost: dict | None = None

    @property
    def passed(self) -> bool:
        """Whether the requirement holds (see :class:`Requirement`)."""
        return self.scores.passed

    @property
    def predictions(self) -> np.ndarray:
        """``(sample, horizon + 1, *space, C)`` float64 rollouts from the test initial conditions."""
        return self.rollouts.pred

    @property
    def metrics(self) -> dict:
        """``name -> (sample, horizon + 1)`` per-frame test metrics (frame 0 is the initial condition)."""
        return self.scores.metrics

    @functools.cached_property
    def summary(self) -> dict:
        """The content of ``report.json`` (plain JSON types; keys in the package docstring)."""
        i, s = self.inputs, self.scores
        req, h = i.requirement, i.horizon
        conformal = _conformal_json(i, s)
        return _jsonable({
            "passed": s.passed,
            "verdict": "pass" if s.passed else "fail",
            "requirement": {**dataclasses.asdict(req), "horizon": h, "text": str(req)},
            "score": {"definition": conformal["score"], "test_quantile": s.test_quantile, "quantile": req.quantile,
                      "threshold": req.threshold, "worst_sample": int(np.argmax(s.score)),
                      "per_sample": s.score.tolist()},
            "metrics": _metrics_json(i, s),
            "solver_tolerance": _solver_tolerance_json(i, s),
            "tolerance_multiple": _tolerance_multiple_json(i, s),
            "conformal": conformal,
            "equal_accuracy": {**self.equal_accuracy.to_json(), "step_interval": i.dt, "stride": i.stride},
            "physics": self.physics.to_json(h),
            "samples": {"test": int(i.ref.shape[0]), "calibration": int(i.cal_ref.shape[0])},
            "time": {"dt": i.dt, "t0": float(i.t[0]), "horizon": h, "stride": i.stride,
                     "save_interval": i.dt / i.stride, "window": i.window,
                     "unit": "one stepper step: dt = stride x the data's save interval; the reference frames "
                             "compared are every stride-th, from t0 (the newest of the window's frames)"},
            "provenance": i.provenance,
            "pde": _jsonable(i.pde_name),
            "problem": i.kind.name,
            "cost": _cost.cost_json(self.generation_cost, self.training_cost, self.equal_accuracy.to_json(),
                                    int(i.ref.shape[0]), h),
            "metric_definitions": _metrics.DEFINITIONS,
            "pdebench": _pdebench_json(i, s),
        })


# ----------------------------------------------------------------------------------------------- run
def run(stepper: Callable, test, calibration, requirement: Requirement | str | None = None, *,
        config: AuditConfig | None = None, pde=None, pde_classes: tuple = (), out_dir=None,
        model_info: dict | None = None, provenance: dict | None = None,
        solver_stepper_factory: Callable | None = None, with_params: bool = False, repeats: int = 3,
        quiet: bool = True, generation_cost: dict | None = None, training_cost: dict | None = None,
        stride: int = 1, window: int = 1) -> Report:
    """Audit ``stepper`` on the ``test`` split against ``requirement``.

    Rolls ``stepper`` out (``jax.jit`` of ``jax.vmap`` of ``solvers.rollout``)
    from every test and calibration initial condition over the requirement's
    horizon, computes the metrics of :mod:`audit._metrics` per sample and step,
    states them as multiples of the reference tolerance, bounds the error by
    split conformal prediction on the calibration split, decides the requirement
    (see :class:`Requirement`), audits the physics and reruns the solver at
    cheaper settings for the speedup at equal accuracy. The test file's problem
    kind decides the horizon rule, the physics and the search (:mod:`audit._kinds`):
    a steady map is one application of ``stepper`` to stage 0 (horizon 1), with the
    discrete Darcy residual as its physics and coarser grids / looser CG tolerances
    at equal accuracy.

    Args:
        stepper: ``step(u) -> u`` on one ``(*space, C)`` state over one save interval.
        test, calibration: ``xarray.Dataset``s in the dataset layout (``u`` with dims
            ``(sample, time, x[, y], channel)``, a steady map's ``(sample, stage, x, y, channel)``,
            ``error_estimate``, attrs ``pde``, ``rtol``, ``atol``, ``sha256``, ...), e.g. from
            ``datasets.open``.
        requirement: a :class:`Requirement`, a ``"METRIC<=VALUE[x]"`` string, or None for
            ``config``'s.
        config: the ``[audit]`` settings (defaults: ``AuditConfig()``).
        pde: the reference PDE on the data grid; None rebuilds it from the test file's
            attributes (``datasets.pde_from_attrs``); when that fails the physics and the
            equal-accuracy comparison are reported as ``"unknown"``.
        pde_classes: PDE classes besides the built-ins that the test file may name (e.g. the
            ``solvers.SemiLinearPDE`` of your own that a config names); a file's PDE is never imported.
        out_dir: when given, ``report.json``, ``report.html`` and ``predictions.h5`` are written there.
        model_info: the surrogate's info (``pde``, ``dataset_sha256``, ``checkpoint_sha256``, ...);
            a model of another PDE is refused.
        provenance: extra provenance entries for the report.
        solver_stepper_factory: ``factory(pde, dt, method) -> stepper`` for the equal-accuracy
            search (default ``solvers.stepper``).
        with_params: the stepper is ``step(u, p)`` and takes each sample's physics parameters
            ``p = split["params"][i]`` (``(P,)``), for surrogates trained with per-sample physics.
        repeats: timed runs of the surrogate's rollout and of each solver setting of the
            equal-accuracy search (the fastest is kept; compilation is excluded). Good values 2-5.
        quiet: no progress messages on stderr, and no progress bars (shown only when stderr is a terminal)
            over the rollouts and the equal-accuracy search.
        generation_cost: ``{split: cost}`` of the files the surrogate was made from
            (:func:`audit.generation_cost` of their folder), for ``report.json["cost"]``; None: unknown.
        training_cost: the model's recorded cost (:func:`audit.training_cost`); None: unknown.
        stride: saved frames one step of ``stepper`` spans (a model trained with ``model.stride = k``:
            ``info["stride"]`` of ``surrogates.load``). The splits are compared at every ``stride``-th frame:
            the horizon counts the stepper's steps, ``dt`` is ``stride`` save intervals, and the equal-accuracy
            search runs the solver over that interval (its ``substeps`` per stepper step). A steady map takes 1.
        window: states the stepper's state holds (``info["input_steps"]``): a window stepper of
            ``surrogates.as_stepper`` maps the last ``window`` states ``(window, *space, C)`` to the next window.
            Its rollouts start from the first ``window`` (strided) reference frames and are audited from the
            newest of them (frame 0 of the predictions), so the horizon has ``window - 1`` fewer steps to use.

    Raises:
        AuditError: on input that allows no verdict (wrong shape or non-finite rollouts,
            calibration too small for alpha, a tolerance-multiple requirement without a
            known tolerance, a model of another PDE, too short a test file).
    """
    config = config or AuditConfig()
    repeats = check_repeats(repeats)
    say = (lambda msg: None) if quiet else (lambda msg: echo(f"byai audit: {msg}"))
    stride, window = check_step(stride, window, test)
    test, calibration = strided(test, stride), strided(calibration, stride)
    inputs = _load(test, calibration, _requirement(requirement, config), config, pde=pde,
                   pde_classes=tuple(pde_classes), model_info=model_info,
                   provenance=provenance, with_params=with_params, stride=stride, window=window)
    rollouts = _roll_out(stepper, inputs, with_params, repeats, say, quiet)
    scores = _score(inputs, rollouts, stepper, calibration, with_params)
    physics = inputs.problem.physics(rollouts.pred, rollouts.ref, inputs.dt, scores.tolerance,
                                     config.residual_substeps, say)
    equal = _equal_accuracy_stage(inputs, rollouts, scores, solver_stepper_factory, repeats, say, quiet=quiet)
    report = Report(inputs, rollouts, scores, physics, equal, generation_cost=generation_cost,
                    training_cost=training_cost)
    if out_dir is None:
        return report
    from ._report import write_outputs

    files = write_outputs(Path(out_dir), report.summary, rollouts.pred, rollouts.ref, inputs.t[:inputs.horizon + 1],
                          test, scores.values, scores.tolerance, scores.score, scores.cal_score)
    return dataclasses.replace(report, files=files)


def one_step_bound(stepper: Callable, calibration, alpha: float, *, horizon: int | None = None,
                   with_params: bool = False, stride: int = 1, window: int = 1) -> float:
    """The split-conformal bound (level ``1 - alpha``) of the stepper's one-step RMS error.

    A calibration sample's score is ``max_n RMS(step(u_ref[n]) - u_ref[n+1])`` over its
    reference frames ``n = 0..horizon-1``; the bound is the ``ceil((S + 1)(1 - alpha))``-th
    smallest of the ``S`` scores (:func:`audit.conformal_bound`). It is
    ``report.json["conformal"]["one_step_rmse_bound"]`` and what :func:`audit.conformal_guard` takes.

    Args:
        stepper: ``step(u) -> u`` (``step(u, p)`` with ``with_params``) over one save interval.
        calibration: the calibration split, an ``xarray.Dataset`` as from ``datasets.open``.
        alpha: miscoverage in ``(0, 1)``, e.g. 0.1.
        horizon: the frames one-step errors start from (``0..horizon-1``); None: every frame but the last.
        with_params: the stepper takes each sample's physics parameters ``params[i]``.
        stride, window: as in :func:`run`: the split is seen at every ``stride``-th frame (``u_ref[n]`` is
            frame ``n * stride``), and a window stepper steps from the ``window`` frames ending at ``u_ref[n]``
            (``n = window-1 .. window-2+horizon``); the error is that of its newest state.

    Raises:
        AuditError: a malformed split, a horizon beyond its frames, or too few samples for ``alpha``.
    """
    stride, window = check_step(stride, window, calibration)
    calibration = strided(calibration, stride)
    ref, _, _ = _split_arrays(calibration, "calibration", datasets.problem_of(calibration.attrs))
    most = ref.shape[1] - window  # one-step pairs a sample holds
    n = most if horizon is None else horizon
    if not 1 <= n <= most:
        if window == 1:
            raise AuditError(f"one-step errors from frames 0..{n - 1}: the calibration split has frames "
                             f"0..{ref.shape[1] - 1}; pass a horizon from 1 to {ref.shape[1] - 1}")
        raise AuditError(f"one-step errors from {n} windows of {window} frames: the calibration split has "
                         f"{ref.shape[1]} frames, {max(most, 0)} such windows; pass a horizon from 1 to {most}")
    _conformal.check_calibration_size(ref.shape[0], alpha)  # before any rollout
    scores = _one_step_scores(_bind(stepper, with_params), ref[:, :n + window],
                              _params(calibration, "calibration", with_params), window)
    return _conformal.conformal_bound(scores, alpha)


def check_step(stride, window, ds=None) -> tuple[int, int]:
    """``(stride, window)`` as integers when each is a positive integer (and ``ds``'s kind takes the stride),
    else ``solvers.InputError`` naming it."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise solvers.InputError(f"window: must be a positive integer (states the stepper's state holds), "
                                 f"got {window!r}")
    kind = datasets.Trajectory() if ds is None else datasets.problem_of(ds.attrs)
    if ds is None:
        return kind.check_stride(stride, "the data"), int(window)
    stride = kind.check_stride(stride, ds.encoding.get("source") or "the test split")
    if int(window) != 1:
        kind.check_windows(ds.encoding.get("source") or "the test split", int(window), 1)
    return stride, int(window)


def strided(ds, stride: int):
    """A split seen at every ``stride``-th frame (``datasets.Problem.strided``); ``ds`` itself for 1 or None."""
    if ds is None or stride == 1:
        return ds
    try:
        return datasets.problem_of(ds.attrs).strided(ds, stride)
    except solvers.InputError as e:
        raise AuditError(str(e)) from None


def _requirement(requirement: Requirement | str | None, config: AuditConfig) -> Requirement:
    if requirement is None:
        return config.to_requirement()
    if isinstance(requirement, str):
        return Requirement.parse(requirement, horizon=config.horizon, quantile=config.quantile, alpha=config.alpha)
    return requirement


# ----------------------------------------------------------------------------------- 1. load, validate
def _load(test, calibration, req: Requirement, config: AuditConfig, *, pde, pde_classes: tuple,
          model_info: dict | None,
          provenance: dict | None, with_params: bool, frames: int | None = None, stride: int = 1,
          window: int = 1) -> Inputs:
    """Read and check both splits, the time axis, the tolerance and the model; build the kind's audit.

    ``calibration`` None (predictions without calibration predictions) leaves no calibration samples;
    ``frames`` (the frames the predictions hold) caps the horizon. The splits are already strided
    (:func:`strided`); with ``window > 1`` the audited frames start at frame ``window - 1``.
    """
    attrs = dict(test.attrs)
    kind = datasets.problem_of(attrs)
    if calibration is not None and (cal_kind := datasets.problem_of(calibration.attrs)) != kind:
        raise AuditError(f"the calibration split is a {cal_kind.name} dataset, the test split a {kind.name}")
    ref, t, est = _split_arrays(test, "test", kind, window)
    if calibration is None:
        cal_ref, cal_t = np.zeros((0, *ref.shape[1:])), t
    else:
        cal_ref, cal_t, _ = _split_arrays(calibration, "calibration", kind, window)
        if cal_ref.shape[2:] != ref.shape[2:]:
            raise AuditError(f"calibration states {cal_ref.shape[2:]} differ from test states {ref.shape[2:]}")
        _conformal.check_calibration_size(cal_ref.shape[0], req.alpha)  # before any rollout
    init, cal_init = ref[:, :window], cal_ref[:, :window]
    if window > 1:  # the audited frames start at the window's newest
        ref, t, cal_ref, cal_t = ref[:, window - 1:], t[window - 1:], cal_ref[:, window - 1:], cal_t[window - 1:]
        est = None if est is None else est[:, window - 1:]
    problem = _kinds.problem_audit(kind, test, pde, pde_classes)
    if config.equal_accuracy.enabled:  # a setting the search would drop is refused before any rollout
        problem.check_equal_accuracy(config.equal_accuracy, ref.shape[2:-1])
    test_frames = ref.shape[1] if frames is None else min(ref.shape[1], frames)
    horizon = problem.horizon(req, test_frames, ref.shape[1] if calibration is None else cal_ref.shape[1])
    dt = save_interval(test, t[:horizon + 1], "test")
    if calibration is not None and len(cal_t) > 1:
        cal_dt = save_interval(calibration, cal_t[:horizon + 1], "calibration")
        if not np.isclose(cal_dt, dt, rtol=1e-9):
            raise AuditError(f"calibration save interval {cal_dt:g} differs from the test's {dt:g}")
    check_model_step(model_info, dt, stride)
    tol = _tolerance(attrs)
    if req.threshold_kind == "tolerance_multiple" and tol is None:
        raise AuditError(f"the requirement {req} is a multiple of the solver tolerance, but the test data's "
                         "tolerance is unknown (imported data); state an absolute threshold instead")
    prov = {"test_sha256": _jsonable(attrs.get("sha256")),
            "calibration_sha256": None if calibration is None else _jsonable(calibration.attrs.get("sha256"))}
    prov.update(_check_model_info(model_info, attrs))
    prov.update(_jsonable(provenance or {}))
    if model_info and "dataset_sha256" in model_info:
        prov.setdefault("dataset_matches_training", None)  # the CLI fills it in from train.h5
    p_test = _params(test, "test", with_params)
    p_cal = np.zeros((0, p_test.shape[1])) if calibration is None else _params(calibration, "calibration",
                                                                               with_params)
    if p_test.shape[1] != p_cal.shape[1]:
        raise AuditError(f"test and calibration splits have {p_test.shape[1]} and {p_cal.shape[1]} parameters")
    return Inputs(req, config, kind, problem, ref, cal_ref, t, est, p_test, p_cal, horizon, dt, tol, prov,
                  attrs.get("pde"), stride, window, init, cal_init)


def save_interval(ds, t, name: str) -> float:
    """The save interval of a split's frame axis ``t``: uniform up to the rounding of the dtype it is stored in
    (``datasets.uniform_spacing``: a float32 axis of PDEBench's counts as uniform); ``AuditError`` otherwise."""
    axis = ds["u"].dims[1]
    dtype = ds[axis].dtype if axis in ds.coords and ds[axis].dtype.kind == "f" else np.float64
    try:
        return datasets.uniform_spacing(t, dtype=dtype, name=f"the {name} time axis")
    except solvers.InputError as e:
        raise AuditError(f"{e} (one stepper step per save interval)") from None


def _split_arrays(ds, name: str, kind: Problem, window: int = 1):
    """``u`` as float64 ``(S, T, *space, C)``, its frame axis, and the ``error_estimate`` (or None); ``T`` must
    exceed ``window`` (a rollout of one step after the window's frames)."""
    if "u" not in ds.variables:
        raise AuditError(f"the {name} split has no variable 'u'")
    dims = tuple(ds["u"].dims)
    if len(dims) < 4 or dims[0] != "sample" or dims[1] != kind.frame_axis or dims[-1] != "channel":
        raise AuditError(f"{name} 'u' must have dims (sample, {kind.frame_axis}, x[, y], channel) in a "
                         f"{kind.name} dataset, got {dims}")
    u = np.asarray(ds["u"].values, dtype=np.float64)
    if u.shape[0] < 1 or u.shape[1] < 1 + window:
        frames = "two frames" if window == 1 else f"{window + 1} frames (a window of {window} and one step)"
        raise AuditError(f"{name} 'u' needs at least one sample and {frames} (a rollout to audit), got shape "
                         f"{u.shape}")
    check_finite(u, ds, name)
    t = np.asarray(ds[dims[1]].values if dims[1] in ds.coords else np.arange(u.shape[1]), dtype=np.float64)
    est = None
    if "error_estimate" in ds.variables:
        est = np.asarray(ds["error_estimate"].values, dtype=np.float64)
        if est.shape != u.shape[:2]:
            raise AuditError(f"{name} 'error_estimate' must have shape {u.shape[:2]}, got {est.shape}")
    return u, t, est


def check_finite(u: np.ndarray, ds, name: str) -> None:
    """``AuditError`` naming the file and the first sample when the reference ``u`` holds NaN or inf.

    A reference with non-finite values cannot judge a surrogate: without this check the first
    symptom is a non-finite error that blames the surrogate for the file's fault.
    """
    bad = ~np.isfinite(u.reshape(*u.shape[:2], -1)).all(axis=-1)
    if bad.any():
        i, frame = (int(v) for v in np.argwhere(bad)[0])
        where = ds.encoding.get("source") or f"the {name} split"
        count = int(bad.any(axis=1).sum())
        raise AuditError(f"{where}: sample {i} holds non-finite values (NaN or inf) in 'u' at frame {frame} "
                         f"({count} of {u.shape[0]} samples do); the {name} split cannot serve as a reference, "
                         "regenerate it")


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


def check_model_step(info: dict | None, dt: float, stride: int) -> None:
    """Refuse (``AuditError``) a model whose recorded step (``info["stride"]``, ``info["dt"]`` of
    ``surrogates.load``) is not the one it is audited or paired at: ``stride`` save intervals of ``dt`` in all."""
    if not info:
        return
    model_stride, model_dt = info.get("stride"), info.get("dt")
    if model_stride is not None and int(model_stride) != stride:
        raise AuditError(f"the model steps {model_stride} saved frames at a time (stride {model_stride}) but is "
                         f"compared at stride {stride}; pass stride={model_stride}")
    if model_dt is not None and not math.isclose(float(model_dt), dt, rel_tol=1e-6):
        raise AuditError(f"the model's step is dt = {float(model_dt):g} but {stride} save interval(s) of the test "
                         f"data span {dt:g}; audit it on data saved at the interval it was trained on")


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
    """``v`` with plain JSON types: numpy to lists and floats, bytes decoded, non-finite floats as strings."""
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


def _params(ds, name: str, with_params: bool) -> np.ndarray:
    """``(S, P)`` physics parameters per sample (``P = 0`` unless ``with_params``)."""
    n = ds["u"].shape[0]
    if not with_params:
        return np.zeros((n, 0))
    if "params" not in ds.variables:
        raise AuditError(f"the stepper takes per-sample physics parameters but the {name} split has no 'params'")
    p = np.asarray(ds["params"].values, dtype=np.float64).reshape(n, -1)
    if not np.all(np.isfinite(p)):
        raise AuditError(f"the {name} split's 'params' are not finite")
    return p


# ------------------------------------------------------------------------------------------ 2. rollouts
def _roll_out(stepper: Callable, inputs: Inputs, with_params: bool, repeats: int, say,
              quiet: bool = True) -> Rollouts:
    """Check the stepper's output shape, then roll it out from every test (timed, fastest of ``repeats``) and
    calibration state; a progress bar (unless ``quiet``) ticks after each batched run."""
    f = _bind(stepper, with_params)
    h, frame_shape, w = inputs.horizon, inputs.ref.shape[2:], inputs.window
    state_shape = frame_shape if w == 1 else (w, *frame_shape)
    _check_stepper(f, state_shape, inputs.params_test.shape[1])
    say(f"rolling out {inputs.ref.shape[0]} test and {inputs.cal_ref.shape[0]} calibration samples over {h} steps")
    if w == 1:
        roll = jax.jit(jax.vmap(lambda u0, p: solvers.rollout(lambda u: f(u, p), u0, h)))
        start, cal_start = jnp.asarray(inputs.ref[:, 0]), jnp.asarray(inputs.cal_ref[:, 0])
    else:  # a window stepper: its states are windows, the trajectory their newest frames
        roll = jax.jit(jax.vmap(lambda w0, p: solvers.rollout(lambda u: f(u, p), w0, h)[:, -1]))
        start, cal_start = jnp.asarray(inputs.init), jnp.asarray(inputs.cal_init)
    with bar(time_call_ticks(repeats) + 1, "rollouts", quiet, unit="run") as ticks:
        seconds, pred = time_call(roll, start, jnp.asarray(inputs.params_test), repeats=repeats, tick=ticks.update)
        pred = np.asarray(pred, dtype=np.float64)
        state_shape = frame_shape
        if pred.shape != (inputs.ref.shape[0], h + 1, *state_shape):
            raise AuditError(f"the rollout has shape {pred.shape}, expected "
                             f"{(inputs.ref.shape[0], h + 1, *state_shape)}")
        _first_nonfinite(pred, "test")
        cal_pred = np.asarray(roll(cal_start, jnp.asarray(inputs.params_cal)), dtype=np.float64)
        ticks.update()
    _first_nonfinite(cal_pred, "calibration")
    return Rollouts(pred, cal_pred, inputs.ref[:, :h + 1], inputs.cal_ref[:, :h + 1], seconds)


def _bind(stepper, with_params: bool):
    """``f(u, p)``: the stepper with the sample's physics parameters ``p`` (ignored unless ``with_params``)."""
    if with_params:
        return lambda u, p: stepper(u, p).astype(jnp.float64)
    return lambda u, p: stepper(u).astype(jnp.float64)


def _check_stepper(f, state_shape, n_params: int):
    """AuditError unless ``f`` maps a ``state_shape`` state to one of the same shape (traced, not run)."""
    spec = jax.ShapeDtypeStruct(state_shape, jnp.float64)
    try:
        out = jax.eval_shape(f, spec, jax.ShapeDtypeStruct((n_params,), jnp.float64))
    except (TypeError, ValueError, IndexError, AttributeError) as e:  # shapes that do not fit, or not an array
        raise AuditError(f"the stepper fails on a state of shape {state_shape} "
                         f"(*grid.shape, channels): {' '.join(str(e).split())[:300]}") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or tuple(out.shape) != tuple(state_shape):
        got = tuple(out.shape) if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
        raise AuditError(f"the stepper must return a state of shape {state_shape}, got {got}")


def _first_nonfinite(pred, name):
    bad = ~np.all(np.isfinite(pred.reshape(*pred.shape[:2], -1)), axis=-1)
    if np.any(bad):
        i, n = np.argwhere(bad)[0]
        raise AuditError(f"the stepper returned non-finite values on the {name} split (first at sample {i}, "
                         f"rollout step {n} of {pred.shape[1] - 1}): the surrogate diverged, no verdict is possible")


# -------------------------------------------------------------------------------------------- 3. scores
def _score(inputs: Inputs, rollouts: Rollouts, stepper: Callable, calibration, with_params: bool) -> Scores:
    """Metrics and tolerance multiples of both splits, the requirement's scores, the conformal bounds with
    their coverages, the one-step bound and the verdict."""
    # one-step errors from every reference frame both splits hold (not only the horizon's)
    n1 = min(inputs.cal_ref.shape[1], inputs.ref.shape[1]) - 1
    w = inputs.window
    one_bound = one_step_bound(stepper, calibration, inputs.requirement.alpha, horizon=n1, with_params=with_params,
                               window=w)  # ``calibration`` is already strided
    one_test = _one_step_scores(_bind(stepper, with_params), inputs.frames()[:, :n1 + w], inputs.params_test, w)
    return _score_rollouts(inputs, rollouts, (one_bound, n1, _conformal.coverage(one_test, one_bound)))


def _score_rollouts(inputs: Inputs, rollouts: Rollouts, one_step: tuple[float, int, float] | None,
                    one_step_reason: str | None = None, conformal_reason: str | None = None) -> Scores:
    """:func:`_score` from the rollouts alone: ``one_step`` is ``(bound, frames, test coverage)`` measured
    with the stepper, or None (``one_step_reason`` says why); without calibration rollouts
    (``conformal_reason`` says why) there is no conformal bound and the verdict is the test quantile's."""
    req, config, r = inputs.requirement, inputs.config, rollouts
    energy = inputs.problem.conserves_energy
    m_test = _metrics.field_metrics(r.pred, r.ref, band_edges=config.band_edges, energy=energy)
    m_cal = _metrics.field_metrics(r.cal_pred, r.cal_ref, band_edges=config.band_edges, energy=energy)
    tol = mult_test = mult_cal = None
    if inputs.tolerance is not None:
        tol = _frame_tolerance(r.ref, inputs.tolerance)
        mult_test = _with_multiples(m_test, r.ref, tol)
        mult_cal = _with_multiples(m_cal, r.cal_ref, _frame_tolerance(r.cal_ref, inputs.tolerance))
        m_test["tolerance_multiple"] = mult_test["rmse"]
        m_cal["tolerance_multiple"] = mult_cal["rmse"]
    v_test = _requirement_values(req, m_test, mult_test)[:, 1:]
    v_cal = _requirement_values(req, m_cal, mult_cal)[:, 1:]
    score_test, score_cal = np.max(v_test, axis=1), np.max(v_cal, axis=1)
    test_q = _metrics.upper_quantile(score_test, req.quantile)
    if conformal_reason is None:
        bound = _conformal.conformal_bound(score_cal, req.alpha)
        per_step_bound = _conformal.conformal_bounds(v_cal, req.alpha)
        passed = bool(test_q <= req.threshold and bound <= req.threshold)
    else:
        bound, per_step_bound = math.nan, np.full(v_test.shape[1], np.nan)
        passed = bool(test_q <= req.threshold)
    one_bound, n1, one_cov = one_step if one_step is not None else (math.nan, 0, math.nan)
    ctime, censored = _metrics.correlation_time(m_test["correlation"][:, 1:], config.correlation_threshold)
    return Scores(m_test, tol, mult_test, v_test, v_cal, score_test, score_cal, test_q, bound, per_step_bound,
                  one_bound, n1, one_cov, ctime, censored, passed, _metrics.pdebench_metrics(r.pred, r.ref),
                  conformal_reason, one_step_reason)


def _frame_tolerance(ref, tolerance: tuple[float, float]) -> np.ndarray:
    """``(S, T)`` per-frame tolerance ``rtol * RMS(u_ref) + atol``."""
    rtol, atol = tolerance
    return rtol * np.sqrt(np.mean(ref**2, axis=tuple(range(2, ref.ndim)))) + atol


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
    """``(S, T)`` the requirement's metric, or its tolerance multiple, per frame."""
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


def _one_step_scores(f, ref, params, window: int = 1) -> np.ndarray:
    """``(S,)`` max over frames ``n = 0..T-2`` of ``RMS(f(ref[:, n]) - ref[:, n+1])`` of ``(S, T, ...)`` references.

    A window stepper (``window > 1``) steps from the windows ``ref[:, n-window+1..n]`` (``n = window-1..T-2``)
    and its newest state is compared with ``ref[:, n+1]``.
    """
    if window == 1:
        s = jax.jit(jax.vmap(lambda fr, p: jax.vmap(lambda u: f(u, p))(fr)))(jnp.asarray(ref[:, :-1]),
                                                                             jnp.asarray(params))
    else:
        s = jax.jit(jax.vmap(lambda fr, p: jax.vmap(lambda w: f(w, p)[-1])(fr)))(jnp.asarray(sliding(ref, window)),
                                                                                 jnp.asarray(params))
    rms = np.sqrt(np.mean((np.asarray(s) - ref[:, window:]) ** 2, axis=tuple(range(2, ref.ndim))))
    return np.max(rms, axis=1)


def sliding(ref: np.ndarray, window: int) -> np.ndarray:
    """``(S, T - window, window, *space, C)``: the windows of frames ``n .. n+window-1`` of ``(S, T, *space, C)``
    frames, ``n = 0..T-window-1`` (each one step before a frame of ``ref``)."""
    n = ref.shape[1] - window
    return np.stack([ref[:, j:j + n] for j in range(window)], axis=2)


# ------------------------------------------------------------------------------------ 5. equal accuracy
def _equal_accuracy_stage(inputs: Inputs, rollouts: Rollouts, scores: Scores, factory: Callable | None,
                          repeats: int, say, *, quiet: bool = True) -> EqualAccuracy:
    """The kind's equal-accuracy search at the surrogate's error (``skipped`` when the config disables it;
    ``quiet``: no progress bar over the settings)."""
    req, config, problem = inputs.requirement, inputs.config, inputs.problem
    if not config.equal_accuracy.enabled:
        return EqualAccuracy(rollouts.seconds, scores.test_quantile, problem.error_definition(req), "skipped")
    return problem.equal_accuracy(req, rollouts.ref, inputs.t[:inputs.horizon + 1], inputs.dt,
                                  _score_fn(req, config, rollouts.ref, scores.tolerance), rollouts.seconds,
                                  scores.test_quantile, config.equal_accuracy, factory, say, repeats=repeats,
                                  quiet=quiet)


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


# ---------------------------------------------------------------------------------------- report.json
def _conformal_json(i: Inputs, s: Scores) -> dict:
    req, n1 = i.requirement, s.one_step_frames
    if s.conformal_reason is not None:
        return {
            "status": "no calibration predictions", "reason": s.conformal_reason,
            "alpha": req.alpha, "level": 1 - req.alpha,
            "score": f"max over steps 1..{i.horizon} of {score_name(req)}",
            "n_calibration": 0, "bound": None, "coverage_calibration": None, "coverage_test": None,
            "per_step": None, "one_step_rmse_bound": None, "one_step_rmse_reason": s.one_step_reason,
            "verdict_rule": f"without a conformal bound the requirement holds when the q{req.quantile:g} of the "
                            f"test scores is at most the threshold; it bounds nothing beyond the test samples",
        }
    one_step = ({"one_step_rmse_bound": None, "one_step_rmse_reason": s.one_step_reason}
                if s.one_step_reason is not None else {
                    "one_step_rmse_bound": s.one_step_bound,
                    "one_step_rmse_score": (
                        f"max over reference frames 0..{n1 - 1} of RMS(step(u_ref[n]) - u_ref[n+1])" if i.window == 1
                        else f"max over reference frames n = {i.window - 1}..{i.window + n1 - 2} of "
                             f"RMS(step(u_ref[n-{i.window - 1}..n])[-1] - u_ref[n+1])"),
                    "one_step_rmse_coverage_test": s.one_step_coverage_test})
    return {
        "alpha": req.alpha, "level": 1 - req.alpha,
        "score": f"max over steps 1..{i.horizon} of {score_name(req)}",
        "n_calibration": int(s.cal_score.size), "bound": s.bound,
        "coverage_calibration": _conformal.coverage(s.cal_score, s.bound),
        "coverage_test": _conformal.coverage(s.score, s.bound),
        "per_step": {"bound": s.per_step_bound.tolist(),
                     "coverage_calibration": np.mean(s.cal_values <= s.per_step_bound, axis=0).tolist(),
                     "coverage_test": np.mean(s.values <= s.per_step_bound, axis=0).tolist()},
        **one_step,
        "status": "calibrated",
        "verdict_rule": f"the requirement holds when the q{req.quantile:g} of the test scores AND the conformal "
                        "bound are both at most the threshold",
    }


def _pdebench_json(i: Inputs, s: Scores) -> dict:
    """``report.json["pdebench"]``: PDEBench's table metrics, mean over steps ``1..horizon`` and per step."""
    out = {k: {"value": float(np.mean(v[1:i.horizon + 1])), "per_step": v[1:i.horizon + 1].tolist()}
           for k, v in s.pdebench.items()}
    out["definitions"] = _metrics.PDEBENCH_DEFINITIONS
    out["note"] = ("as pdebench/models/metrics.py metric_func with if_mean=True (Lx = Ly = Lz = 1, iLow = 4, "
                   f"iHigh = 12, initial_step = 1) over rollout steps 1..{i.horizon}; PDEBench's 3-D bRMSE "
                   "sums the channels inside the root (equal for one channel)")
    return out


def _metrics_json(i: Inputs, s: Scores) -> dict:
    out = {k: _metrics.summarize_steps(v, i.horizon) for k, v in s.metrics.items()}
    out["correlation_time"] = {
        **_metrics.summarize(s.correlation_time), "threshold": i.config.correlation_threshold,
        "censored_fraction": float(np.mean(s.censored)), "unit": "steps", "dt": i.dt}
    return out


def _solver_tolerance_json(i: Inputs, s: Scores) -> dict:
    if i.tolerance is None:
        return {"rtol": None, "atol": None, "known": False,
                "reason": "the test data does not state its solver tolerance (imported data)"}
    out = {"rtol": i.tolerance[0], "atol": i.tolerance[1], "known": True,
           "per_step_mean": np.mean(s.tolerance[:, 1:], axis=0).tolist(), "mean": float(np.mean(s.tolerance[:, 1:]))}
    if i.error_estimate is not None:
        out["error_estimate_mean"] = float(np.nanmean(i.error_estimate[:, 1:i.horizon + 1]))
    return out


def _tolerance_multiple_json(i: Inputs, s: Scores) -> dict | str:
    if s.multiples is None:
        return "unknown"
    h, est = i.horizon, i.error_estimate
    out = {k: _metrics.summarize_steps(v, h) for k, v in s.multiples.items()}
    out["definition"] = ("metric / tol_n with tol_n = rtol * RMS(u_ref[n]) + atol for metrics in the units of u; "
                         "metric / (tol_n / RMS(u_ref[n])) for rel_l2 and nrmse")
    if est is not None and np.all(np.isfinite(est[:, 1:h + 1])):
        with np.errstate(divide="ignore", invalid="ignore"):
            em = s.metrics["rmse"] / est[:, :h + 1]
        out["error_estimate_multiple"] = _metrics.summarize_steps(np.where(np.isfinite(em), em, np.inf), h)
    return out
