"""``audit.compare_hybrid``: the guarded hybrid stepper against the solver alone, on a dataset's test split.

The comparison depends on the test file's problem kind (``datasets.problem_of``):

* a trajectory (:mod:`audit._hybrid_trajectory`): solver alone and hybrid
  (``surrogates.HybridStepper`` with a conformal, residual or state guard) rolled out
  from every test initial condition, errors against the reference frames,
  wall times and a per-step cost model;
* a steady map (:mod:`audit._hybrid_steady`): the surrogate's prediction as a
  residual-guarded shortcut of the linear solve.

Each kind supplies ``check_config``, ``compare``, ``line`` and ``plot``; the
table :data:`KINDS` maps a kind's type to them.

The conformal guard's one-step bound is the audit's
(``report.json["conformal"]["one_step_rmse_bound"]``): read from the report of
an audit folder when that report is of the same model, calibration data and
alpha, computed with :func:`audit.one_step_bound` otherwise. The state guard's
conformal factor is calibrated on the calibration split's one-step pairs
(:func:`audit.calibrate_state_guard`).

Each ``[hybrid] guard`` name is a :class:`GuardKind` (the table :data:`GUARDS`):
what it needs (the calibration split or not), how it is calibrated and built,
and what it writes into ``hybrid.json``'s ``guard`` field.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, ClassVar, final

import numpy as np

import datasets
import solvers
import surrogates
from datasets import Problem, SteadyMap, Trajectory

from . import _hybrid_steady, _hybrid_trajectory
from ._config import AuditError
from ._equal_accuracy import check_repeats
from ._guards import conformal_guard, proposal_residual, residual_guard, state_guard
from ._hybrid_trajectory import HybridCurves, StepCosts, state_guard_summary
from ._run import (_check_model_info, _jsonable, _params, check_finite, check_model_step, check_step, one_step_bound,
                   save_interval, strided)
from ._state_guard import StateGuardCalibration, calibrate_state_guard, one_step_pairs, state_guard_coverage

__all__ = ["GUARDS", "ConformalGuard", "GuardKind", "HybridResult", "ResidualGuard", "StateGuard",
           "check_hybrid_config", "compare_hybrid", "guard_kind"]

# problem kind -> the module holding its comparison (check_config, compare, line, plot)
KINDS = {Trajectory: _hybrid_trajectory, SteadyMap: _hybrid_steady}


def _kind(problem: Problem):
    try:
        return KINDS[type(problem)]
    except KeyError:
        raise AuditError(f"byai hybrid has no comparison for a {problem.name} dataset") from None


class GuardKind(abc.ABC):
    """One ``[hybrid] guard``: what it needs, how it is calibrated and built, what ``hybrid.json`` says of it.

    A subclass is final and a frozen dataclass holding its calibration; :meth:`calibrate`
    (on the class) makes one from the splits, so an instance is always ready to guard.
    """

    name: ClassVar[str]  # the ``[hybrid] guard`` value
    needs_calibration: ClassVar[bool]  # calibrated on the calibration split (at the [audit] alpha)
    guards_steady_map: ClassVar[bool]  # a steady map's prediction can be guarded by it

    @classmethod
    @abc.abstractmethod
    def calibrate(cls, stepper: Callable, calibration, test, alpha: float, *, with_params: bool,
                  checkpoint_sha256, audit_dir, pde_classes: tuple, say: Callable[[str], None],
                  window: int = 1) -> GuardKind:
        """The guard calibrated on ``calibration`` (``None`` when :attr:`needs_calibration` is False); ``window``:
        the states the stepper's state holds (a window stepper's one-step errors are of its newest state)."""

    @abc.abstractmethod
    def make_guard(self, pde, dt: float, tolerance: float) -> Callable:
        """The jit-able ``guard(u, u_proposed) -> (ok, error_estimate)`` of one sample's PDE (:mod:`audit._guards`)."""

    def one_step_bound(self) -> float | None:
        """``hybrid.json``'s ``conformal_one_step_bound``: the constant bound per step, if the guard has one."""
        return None

    def describe(self, stepper: Callable, u, pdes: list, dt: float, params, costs: StepCosts, final,
                 window: int = 1) -> str | dict:
        """``hybrid.json``'s ``guard`` field for a trajectory run: the guard's name unless it reports more.

        Args:
            stepper: the surrogate (``step(u, p)`` when ``params`` is not None).
            u: the test frames run, ``(S, T, *space, C)``; ``pdes``, ``dt``: their PDEs and save interval.
            params: ``(S, P)`` physics parameters the stepper takes (``None``: it takes none).
            costs: the per-call step costs; final: the hybrid rollout's final state.
            window: the states the stepper's state holds (``u`` then includes the first window's older frames).
        """
        return self.name


@final
@dataclasses.dataclass(frozen=True)
class ConformalGuard(GuardKind):
    """The audit's constant one-step bound (:func:`audit.conformal_guard`)."""

    bound: float

    name: ClassVar[str] = "conformal"
    needs_calibration: ClassVar[bool] = True
    guards_steady_map: ClassVar[bool] = False

    @classmethod
    def calibrate(cls, stepper, calibration, test, alpha, *, with_params, checkpoint_sha256, audit_dir,
                  pde_classes, say, window=1) -> ConformalGuard:
        return cls(_conformal_bound(stepper, calibration, alpha, with_params=with_params,
                                    checkpoint_sha256=checkpoint_sha256, audit_dir=audit_dir, say=say, window=window))

    def make_guard(self, pde, dt, tolerance):
        return conformal_guard(self.bound, tolerance)

    def one_step_bound(self) -> float:
        return self.bound


@final
@dataclasses.dataclass(frozen=True)
class ResidualGuard(GuardKind):
    """The PDE residual of the proposed step (:func:`audit.residual_guard`); needs no calibration."""

    name: ClassVar[str] = "residual"
    needs_calibration: ClassVar[bool] = False
    guards_steady_map: ClassVar[bool] = True

    @classmethod
    def calibrate(cls, stepper, calibration, test, alpha, *, with_params, checkpoint_sha256, audit_dir,
                  pde_classes, say, window=1) -> ResidualGuard:
        return cls()

    def make_guard(self, pde, dt, tolerance):
        return residual_guard(pde, dt, tolerance)


@final
@dataclasses.dataclass(frozen=True)
class StateGuard(GuardKind):
    """A conformal factor times the proposal's residual score (:func:`audit.state_guard`)."""

    calibration: StateGuardCalibration

    name: ClassVar[str] = "state"
    needs_calibration: ClassVar[bool] = True
    guards_steady_map: ClassVar[bool] = False

    def __post_init__(self):
        if not isinstance(self.calibration, StateGuardCalibration):
            raise AuditError("the state guard needs its calibration (audit.calibrate_state_guard)")

    @classmethod
    def calibrate(cls, stepper, calibration, test, alpha, *, with_params, checkpoint_sha256, audit_dir,
                  pde_classes, say, window=1) -> StateGuard:
        return cls(_state_calibration(stepper, calibration, test, alpha, with_params=with_params,
                                      pde_classes=tuple(pde_classes), say=say, window=window))

    def make_guard(self, pde, dt, tolerance):
        return state_guard(proposal_residual(pde, dt), self.calibration.quantile, tolerance)

    def describe(self, stepper, u, pdes, dt, params, costs, final, window=1) -> dict:
        """The table of :func:`audit._hybrid_trajectory.state_guard_summary`: coverage on the test steps run, cost,
        acceptance."""
        errors, scores = one_step_pairs(stepper, u, pdes, dt, params, window=window)
        return state_guard_summary(self.calibration, state_guard_coverage(errors, scores, self.calibration.quantile),
                                   int(errors.size), costs, final)


# [hybrid] guard -> its kind
GUARDS: dict[str, type[GuardKind]] = {"conformal": ConformalGuard, "residual": ResidualGuard, "state": StateGuard}


def guard_kind(config: surrogates.HybridConfig) -> type[GuardKind]:
    """The :class:`GuardKind` that ``config.guard`` names (``HybridConfig`` has checked the name)."""
    return GUARDS[config.guard]


@dataclasses.dataclass(frozen=True)
class HybridResult:
    """What :func:`compare_hybrid` returns.

    Attributes:
        problem: the test file's problem kind.
        summary: the content of ``hybrid.json`` (plain JSON types, in its key order).
        curves: per-frame errors, carried estimate and step choice (a trajectory;
            ``None`` for a steady map).
    """

    problem: Problem
    summary: dict
    curves: HybridCurves | None = None

    def to_json(self) -> dict:
        """The content of ``hybrid.json``."""
        return copy.deepcopy(self.summary)

    def line(self) -> str:
        """One line: the error against the tolerance, the steps each side took and the speedup."""
        return _kind(self.problem).line(self.summary)

    def plot(self, path) -> None:
        """Write ``hybrid.png``: error and step choice against time (a trajectory) or CG iterations per
        sample (a steady map)."""
        _kind(self.problem).plot(self.summary, self.curves, Path(path))


def check_hybrid_config(problem: Problem, config: surrogates.HybridConfig) -> None:
    """Refuse ``[hybrid]`` settings that do not apply to ``problem`` (``AuditError`` naming the key)."""
    _kind(problem).check_config(config, guard_kind(config))


def compare_hybrid(config: surrogates.HybridConfig, test, calibration, stepper: Callable, *,
                   samples: int | None = None, repeats: int = 3, with_params: bool = False,
                   model_info: dict | None = None, alpha: float = 0.1, audit_dir=None, pde_classes: tuple = (),
                   log: Callable[[str], None] | None = None, stride: int = 1, window: int = 1,
                   quiet: bool = True) -> HybridResult:
    """Run the solver alone and the guarded hybrid on the ``test`` split and compare both with its reference.

    Args:
        config: the ``[hybrid]`` settings.
        test: the test split (``datasets.open``); its problem kind chooses the comparison.
        calibration: the calibration split, for the conformal guard's one-step bound and the
            state guard's factor (``None`` when the guard is ``"residual"``).
        stepper: the surrogate ``step(u) -> u`` over one save interval (``step(u, p)``
            with ``with_params``).
        samples: the first that many test samples are run (``None``: all of them); more than the
            test split holds is refused (an ``AuditError`` naming the limit), not quietly run on fewer.
        repeats: timed runs of each side (the fastest is kept; compilation is excluded). Good values 2-5.
        with_params: the stepper takes each sample's physics parameters ``params``.
        model_info: the model's info (``pde``, ``pde_params``, ``grid_shape``, ...,
            ``checkpoint_sha256``); a model of another PDE or grid is refused.
        alpha: the conformal level of the one-step bound and of the state guard (the ``[audit]`` alpha).
        audit_dir: an audit output folder whose ``report.json`` gives the one-step
            bound when it audited this model on this calibration data at this alpha.
        pde_classes: PDE classes besides the built-ins the test file may name (never imported).
        log: progress messages (``None``: silent); :func:`audit._progress.echo` writes them above the bars.
        stride: saved frames one surrogate step spans (``info["stride"]`` of ``surrogates.load``): the splits
            are seen at every ``stride``-th frame, so the solver's interval (and every guard's) is ``stride``
            save intervals, ``hybrid.steps`` counts surrogate steps, and a model whose recorded ``dt`` is not
            that interval is refused. A steady map takes 1.
        window: states the surrogate's state holds (``info["input_steps"]``; a window stepper of
            ``surrogates.as_stepper``): both runs start at the (strided) frame ``window - 1``, the hybrid from
            the window of frames ``0..window-1``; its solver steps and guards act on the newest state.
        quiet: no progress bars over the timed runs of the solver alone and of the hybrid (bars show only when
            stderr is a terminal).

    Raises:
        AuditError: a setting that does not apply to the test file's problem kind, a model
            of another PDE, more samples or steps than the test file holds, non-finite values in
            the test or calibration file, or an unreadable report.
        solvers.InputError: ``samples`` or ``repeats`` below 1.
    """
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise solvers.InputError(f"samples: must be >= 1, got {samples!r}")
    repeats = check_repeats(repeats)
    say = log or (lambda message: None)
    problem = datasets.problem_of(test.attrs)
    kind = _kind(problem)
    kind.check_config(config, guard_kind(config))
    _check_model_info(model_info, dict(test.attrs))
    stride, window = check_step(stride, window, test)
    test, calibration = strided(test, stride), strided(calibration, stride)
    if problem.frame_axis in test.coords and test.sizes[problem.frame_axis] > 1:
        check_model_step(model_info, save_interval(test, np.asarray(test[problem.frame_axis].values, np.float64),
                                                   "test"), stride)
    n_test = int(test["u"].shape[0])
    if samples is not None and samples > n_test:
        where = test.encoding.get("source") or "the test split"
        raise AuditError(f"samples: {samples} requested (hybrid.samples) but {where} holds {n_test}; ask for at "
                         f"most {n_test}, or leave it out to run them all")
    check_finite(np.asarray(test["u"].values, dtype=np.float64), test, "test")  # the file's fault, not the model's
    kind_of_guard = guard_kind(config)
    if kind_of_guard.needs_calibration and calibration is None:
        raise AuditError(f"the {kind_of_guard.name} guard needs the calibration split")
    guard = kind_of_guard.calibrate(stepper, calibration, test, alpha, with_params=with_params,
                                    checkpoint_sha256=(model_info or {}).get("checkpoint_sha256"),
                                    audit_dir=audit_dir, pde_classes=tuple(pde_classes), say=say, window=window)
    summary, curves = kind.compare(config, test, stepper, guard=guard, samples=samples, repeats=repeats, alpha=alpha,
                                   with_params=with_params, pde_classes=tuple(pde_classes), say=say, window=window,
                                   stride=stride, quiet=quiet)
    return HybridResult(problem=problem, summary=summary, curves=curves)


def _conformal_bound(stepper, calibration, alpha: float, *, with_params: bool, checkpoint_sha256, audit_dir,
                     say, window: int = 1) -> float:
    """The audit's one-step RMS error bound: from ``audit_dir/report.json`` when it matches, else computed."""
    if audit_dir is not None:
        path = Path(audit_dir) / "report.json"
        bound, mismatch = report_one_step_bound(_read_report(path), alpha=alpha,
                                                calibration_sha256=calibration.attrs.get("sha256"),
                                                checkpoint_sha256=checkpoint_sha256)
        if bound is not None:
            say(f"conformal one-step RMS error bound (alpha={alpha:g}) from {path}: {bound:.3g}")
            return bound
        say(f"{path} does not give this run's bound ({mismatch}); computing it")
    bound = float(one_step_bound(stepper, calibration, alpha, with_params=with_params, window=window))
    say(f"conformal one-step RMS error bound (alpha={alpha:g}): {bound:.3g}")
    return bound


def _state_calibration(stepper, calibration, test, alpha: float, *, with_params: bool, pde_classes: tuple,
                       say, window: int = 1) -> StateGuardCalibration:
    """The state guard's conformal factor from every one-step pair of the calibration split."""
    u = np.asarray(calibration["u"].values, dtype=np.float64)
    check_finite(u, calibration, "calibration")
    dt = _save_interval(calibration, "calibration")
    test_dt = _save_interval(test, "test")
    if not math.isclose(dt, test_dt, rel_tol=1e-9):
        raise AuditError(f"the calibration split's save interval {dt:g} differs from the test split's {test_dt:g}; "
                         "the state guard is calibrated on steps of the interval it guards")
    pdes = [datasets.pde_from_attrs(calibration, sample=i, known=pde_classes)[0] for i in range(u.shape[0])]
    params = _params(calibration, "calibration", with_params) if with_params else None
    result = calibrate_state_guard(stepper, u, pdes, dt, alpha, params, window=window)
    say(f"state guard (alpha={alpha:g}): a step's bound is {result.quantile:.3g} x its residual score "
        f"({result.pairs} calibration steps)")
    return result


def _save_interval(ds, name: str) -> float:
    t = np.asarray(ds["time"].values, dtype=np.float64)
    dts = np.diff(t)
    if dts.size == 0 or not np.allclose(dts, dts[0], rtol=1e-9):
        raise datasets.DatasetError(f"the {name} file's time axis is not uniform; hybrid needs equal save intervals")
    return float(dts[0])


def _read_report(path: Path) -> dict:
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuditError(f"{path} does not exist (run byai audit into that folder first)") from None
    except (OSError, ValueError) as e:
        raise AuditError(f"{path} is not a byai audit report ({' '.join(str(e).split())})") from None
    if not isinstance(report, dict):
        raise AuditError(f"{path} is not a byai audit report")
    return report


def report_one_step_bound(report: dict, *, alpha: float, calibration_sha256=None,
                          checkpoint_sha256=None) -> tuple[float | None, str]:
    """``(bound, "")``: a ``report.json``'s one-step RMS error bound when it applies, else ``(None, why not)``.

    It applies when the report's conformal ``alpha`` equals ``alpha`` and every
    identity the report states (``provenance.calibration_sha256``,
    ``provenance.checkpoint_sha256``) equals the one given here.
    """
    conformal = report.get("conformal")
    conformal = conformal if isinstance(conformal, dict) else {}
    bound = conformal.get("one_step_rmse_bound")
    if isinstance(bound, bool) or not isinstance(bound, int | float) or not (math.isfinite(bound) and bound >= 0):
        return None, "it states no finite one-step RMS error bound"
    report_alpha = conformal.get("alpha")
    if not isinstance(report_alpha, int | float) or not math.isclose(report_alpha, alpha, rel_tol=1e-12):
        return None, f"its alpha {report_alpha} is not {alpha:g}"
    provenance = report.get("provenance")
    provenance = provenance if isinstance(provenance, dict) else {}
    for key, ours, what in (("calibration_sha256", calibration_sha256, "calibration data"),
                            ("checkpoint_sha256", checkpoint_sha256, "model checkpoint")):
        theirs = provenance.get(key)
        if theirs is not None and (ours is None or _jsonable(theirs) != _jsonable(ours)):
            return None, f"it audited another {what}" if ours is not None else f"this {what} has no {key}"
    return float(bound), ""
