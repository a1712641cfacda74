"""What the audit does per problem kind: the horizon rule, the physics it audits, the equal-accuracy search.

A test file's problem kind (``datasets.problem_of``) selects a :class:`ProblemAudit`
by the kind's type (:data:`AUDITS`, through :func:`problem_audit`); the audit then
calls its methods and never tests a kind's name:

* :class:`TrajectoryAudit` (``datasets.Trajectory``): the stepper advances one save
  interval (``stride`` of them: ``audit.run`` then hands it every ``stride``-th frame,
  so ``dt`` below is the stepper's step); the horizon is any number of steps the test and calibration time axes
  hold; the physics is the one-step PDE residual against the solver's fine step and
  the drift of the quantities the PDE conserves; equal accuracy reruns the solver at
  cheaper settings (:func:`audit._equal_accuracy.search`). Both need the PDE, given
  or rebuilt from the test file's attributes; when neither is possible (imported
  data) both are reported ``"unknown"``.
* :class:`SteadyMapAudit` (``datasets.SteadyMap``, Darcy ``a -> u``): the stepper is
  the map, applied once to stage 0 (the coefficient), so the horizon is 1; the physics
  is the discrete residual ``RMS(f - A_h u)``; equal accuracy solves on coarser cells
  with looser CG tolerances (:func:`audit._equal_accuracy.search_steady`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Literal, final

import jax
import jax.numpy as jnp
import numpy as np

import datasets
import solvers
from datasets import Problem, SteadyMap, Trajectory

from . import _equal_accuracy, _metrics, _physics
from ._config import AuditError, EqualAccuracyConfig, Requirement


def score_name(req: Requirement) -> str:
    """The quantity a requirement bounds: its metric, or the metric over the solver tolerance."""
    if req.threshold_kind == "tolerance_multiple":
        return f"{req.metric} / solver tolerance"
    return req.metric


# ------------------------------------------------------------------------------------------ results
@dataclasses.dataclass(frozen=True)
class Residual:
    """A per-frame physics residual of the predictions and of the reference, ``(sample, horizon + 1)`` each
    (frame 0, the input, is 0), and the prediction's in units of the solver tolerance when known."""

    definition: str
    prediction: np.ndarray
    reference: np.ndarray
    tolerance_multiple: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Physics:
    """The physics stage: the residual, which quantities the PDE conserves and their drift
    (``name -> (prediction, reference)``, ``(sample, horizon + 1)`` each); ``residual`` is None
    and ``reason`` says why when the audit knows no PDE."""

    residual: Residual | None
    conserved: dict | None = None
    drift: dict = dataclasses.field(default_factory=dict)
    reason: str | None = None

    def to_json(self, horizon: int) -> dict:
        """``report.json["physics"]``."""
        if self.residual is None:
            return {"status": "unknown", "reason": self.reason}
        r = self.residual
        residual = {"definition": r.definition, "prediction": _metrics.summarize_steps(r.prediction, horizon),
                    "reference": _metrics.summarize_steps(r.reference, horizon)}
        if r.tolerance_multiple is not None:
            residual["tolerance_multiple"] = _metrics.summarize_steps(r.tolerance_multiple, horizon)
        return {"residual": residual, "conserved": self.conserved,
                "drift": {q: {"prediction": _metrics.summarize_steps(p, horizon),
                              "reference": _metrics.summarize_steps(ref, horizon)}
                          for q, (p, ref) in self.drift.items()}}


_NOTES = {"exact": "the cheapest solver setting tried that is at least as accurate as the surrogate",
          "upper": "the cheapest setting tried already matches: a cheaper solver may too, so the speedup "
                   "is an upper bound",
          "lower": "no setting tried reached the surrogate's accuracy: the most accurate one is given and the "
                   "speedup is a lower bound"}


@dataclasses.dataclass(frozen=True)
class EqualAccuracy:
    """The equal-accuracy stage: the surrogate's wall time and score, and the solver's search result
    (``{"points", "chosen", "bound"}`` of :func:`audit._equal_accuracy.search`) when ``status`` is
    ``"measured"``; ``reason`` says why it is ``"unknown"``. ``surrogate_seconds`` is None when the
    surrogate's wall time is unknown (predictions audited without it; ``seconds_reason`` says so): the
    solver's side is still measured and the speedup is unknown."""

    surrogate_seconds: float | None
    surrogate_error: float
    error_definition: str
    status: Literal["measured", "skipped", "unknown"]
    search: dict | None = None
    reason: str | None = None
    seconds_reason: str | None = None

    def to_json(self) -> dict:
        """``report.json["equal_accuracy"]``."""
        out = {"surrogate_seconds": self.surrogate_seconds, "surrogate_error": self.surrogate_error,
               "error_definition": self.error_definition, "status": self.status}
        if self.surrogate_seconds is None:
            out.update(speedup_status="unknown", speedup_reason=self.seconds_reason or "the surrogate's wall time "
                                                                                       "is unknown")
        if self.search is None:
            if self.reason is not None:
                out["reason"] = self.reason
            return {**out, "solver_seconds": None, "speedup": None, "solver_setting": None}
        chosen, bound = self.search["chosen"], self.search["bound"]
        speedup = None if self.surrogate_seconds is None else chosen["seconds"] / self.surrogate_seconds
        return {**out, "solver_seconds": chosen["seconds"], "solver_error": chosen["error"],
                "speedup": speedup, "speedup_bound": bound,
                "note": _NOTES[bound], "solver_setting": chosen["setting"], "points": self.search["points"]}


def _setting_lines(say: Callable[[str], None]) -> Callable[[dict], None]:
    """``progress(point)`` for the search: one message line per setting measured (its time and error)."""
    return lambda p: say(f"  {p['setting']}: {p['seconds']:.3g} s, error {p['error']:.3g}")


# -------------------------------------------------------------------------------------------- kinds
class ProblemAudit(abc.ABC):
    """The audit of one problem kind. Subclasses are final frozen dataclasses built by :meth:`build`."""

    @classmethod
    @abc.abstractmethod
    def build(cls, test, pde, pde_classes: tuple = ()) -> ProblemAudit:
        """The audit of the ``test`` split (``pde``: the reference PDE given to ``audit.run``, or None;
        ``pde_classes``: the classes besides the built-ins the file may name)."""

    @abc.abstractmethod
    def horizon(self, req: Requirement, test_frames: int, calibration_frames: int) -> int:
        """The rollout steps audited for ``req`` on splits of that many frames; AuditError when impossible."""

    @property
    @abc.abstractmethod
    def conserves_energy(self) -> bool:
        """Whether the PDE conserves the energy (the ``energy_error`` metric is then measured)."""

    @abc.abstractmethod
    def physics(self, pred, ref, dt: float, tol, substeps: int, say: Callable[[str], None]) -> Physics:
        """The physics of ``(S, horizon + 1, *space, C)`` predictions and reference (``tol``: per-frame
        solver tolerance ``(S, horizon + 1)`` or None; ``substeps``: solver steps per save interval)."""

    @abc.abstractmethod
    def error_definition(self, req: Requirement) -> str:
        """What the equal-accuracy error of the surrogate and of each solver setting is."""

    @abc.abstractmethod
    def check_equal_accuracy(self, config: EqualAccuracyConfig, grid_shape: tuple[int, ...]) -> None:
        """``AuditError`` naming the key when the search could not try every setting of ``config`` on this grid."""

    @abc.abstractmethod
    def equal_accuracy(self, req: Requirement, ref, t, dt: float, score: Callable, surrogate_seconds: float,
                       surrogate_error: float, config: EqualAccuracyConfig, factory: Callable | None,
                       say: Callable[[str], None], *, repeats: int, quiet: bool = True) -> EqualAccuracy:
        """The cheapest solver run at the surrogate's error (``score(traj)``, the requirement's aggregate
        of a ``(S, horizon + 1, *space, C)`` run against ``ref``; ``t``: the ``horizon + 1`` frame times;
        each setting timed ``repeats`` times; ``quiet``: no progress bar over the settings)."""


@final
@dataclasses.dataclass(frozen=True)
class TrajectoryAudit(ProblemAudit):
    """A time-dependent PDE, audited through its (rebuilt) PDE.

    Attributes:
        pde: the reference PDE on the data grid, with a leading sample axis on its leaves when
            ``per_sample``; None when unknown (``reason`` says why).
        per_sample: the physics parameters vary per sample (a ``params`` variable).
        conserved: ``{"mass": bool, "energy": bool}`` from :func:`audit.conserved_quantities`.
        reason: why the PDE is unknown.
    """

    pde: object | None
    per_sample: bool = False
    conserved: dict | None = None
    reason: str | None = None

    @classmethod
    def build(cls, test, pde, pde_classes: tuple = ()) -> TrajectoryAudit:
        """The PDE given, else rebuilt from the test file (``datasets.pde_from_attrs``, per sample when the
        file has ``params``); unknown when the file names no byai PDE (``DatasetError``), lacks the grid
        attributes (``KeyError``), or states an invalid grid or per-sample PDEs of different structure
        (``ValueError``), and when the PDE given is not a ``solvers.SemiLinearPDE``."""
        per_sample = False
        if pde is None:
            try:
                if "params" in test.variables:
                    pdes = [datasets.pde_from_attrs(test, sample=i, known=pde_classes)[0]
                            for i in range(test.sizes["sample"])]
                    pde = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float64) for x in xs]), *pdes)
                    per_sample = True
                else:
                    pde = datasets.pde_from_attrs(test, known=pde_classes)[0]
            except (datasets.DatasetError, KeyError, ValueError) as e:
                return cls(None, reason=f"the test file's PDE could not be rebuilt ({' '.join(str(e).split())})")
        if not isinstance(pde, solvers.SemiLinearPDE):
            return cls(None, reason=f"the PDE could not be evaluated ({type(pde).__name__} is not a "
                                    "solvers.SemiLinearPDE u_t = L u + N(u))")
        conserved = _physics.conserved_quantities(jax.tree.map(lambda x: x[0], pde) if per_sample else pde)
        return cls(pde, per_sample, conserved)

    def horizon(self, req: Requirement, test_frames: int, calibration_frames: int) -> int:
        """``req.horizon``, or every step of the test time axis; both splits must hold it."""
        horizon = req.horizon or test_frames - 1
        for name, n in (("test", test_frames), ("calibration", calibration_frames)):
            if horizon > n - 1:
                raise AuditError(f"the requirement's horizon {horizon} exceeds the {n - 1} steps of the {name} split")
        return horizon

    @property
    def conserves_energy(self) -> bool:
        return bool(self.conserved and self.conserved["energy"])

    def physics(self, pred, ref, dt, tol, substeps, say) -> Physics:
        """``RMS(u[n+1] - S_dt(u[n]))`` of prediction and reference (:func:`audit.defects`) and the drift of
        the conserved quantities (:func:`audit.drift`)."""
        if self.pde is None:
            return Physics(None, reason=self.reason)
        say("PDE residual of the rollout")
        both = np.concatenate([pred, ref])  # one compilation for both
        pde = jax.tree.map(lambda x: jnp.concatenate([x, x]), self.pde) if self.per_sample else self.pde
        d = np.pad(_physics.defects(pde, dt, both, substeps, self.per_sample), ((0, 0), (1, 0)))
        d_pred, d_ref = d[:pred.shape[0]], d[pred.shape[0]:]
        spatial_dims = pred.ndim - 3
        dr_pred, dr_ref = _physics.drift(pred, spatial_dims), _physics.drift(ref, spatial_dims)
        residual = Residual(f"RMS(u[n+1] - S_dt(u[n])), S_dt = {substeps} ETDRK4 steps of the reference PDE per "
                            "save interval", d_pred, d_ref, None if tol is None else d_pred / tol)
        return Physics(residual, self.conserved,
                       {q: (dr_pred[q], dr_ref[q]) for q in ("mass", "energy") if self.conserved[q]})

    def error_definition(self, req: Requirement) -> str:
        return f"q{req.quantile:g} over test samples of the max over steps of {score_name(req)}"

    def check_equal_accuracy(self, config, grid_shape) -> None:
        """Every coarsening leaves at least ``MIN_POINTS`` points per axis (nothing to check without a PDE:
        the search does not run)."""
        if self.pde is not None:
            _equal_accuracy.check_coarsen(config.coarsen, grid_shape, minimum=_equal_accuracy.MIN_POINTS,
                                          divides=False)

    def equal_accuracy(self, req, ref, t, dt, score, surrogate_seconds, surrogate_error, config, factory,
                       say, *, repeats, quiet=True) -> EqualAccuracy:
        """:func:`audit._equal_accuracy.search` from the test initial conditions (``unknown`` without a PDE)."""
        head = (surrogate_seconds, surrogate_error, self.error_definition(req))
        if self.pde is None:
            return EqualAccuracy(*head, "unknown", reason=self.reason)
        say("equal-accuracy search over solver settings")
        res = _equal_accuracy.search(self.pde, self.pde.grid, jnp.asarray(ref[:, 0]), dt, ref.shape[1] - 1, score,
                                     surrogate_error, config, repeats=repeats, per_sample_pde=self.per_sample,
                                     t=t, factory=factory or _equal_accuracy.default_factory,
                                     progress=_setting_lines(say), quiet=quiet)
        return EqualAccuracy(*head, "measured", res)


@final
@dataclasses.dataclass(frozen=True)
class SteadyMapAudit(ProblemAudit):
    """A steady Darcy map ``a -> u`` with the constant source ``source`` (``datasets.map_source``)."""

    source: float

    @classmethod
    def build(cls, test, pde, pde_classes: tuple = ()) -> SteadyMapAudit:
        """The map of the test file (its PDE depends on each sample's coefficient, so ``pde`` is not used)."""
        return cls(datasets.map_source(test))

    def horizon(self, req: Requirement, test_frames: int, calibration_frames: int) -> int:
        """1: the map is applied once (a requirement may leave the horizon out or state 1)."""
        if req.horizon not in (None, 1):
            raise AuditError(f"the requirement's horizon {req.horizon} does not apply to a steady map a -> u: it is "
                             "audited as one application (horizon 1); set audit.horizon = 1 or leave it out")
        return 1

    @property
    def conserves_energy(self) -> bool:
        return False

    def physics(self, pred, ref, dt, tol, substeps, say) -> Physics:
        """The discrete residual ``RMS(f - A_h u)`` of the predicted and reference solutions (stage 1) for
        each sample's coefficient (stage 0)."""
        say("discrete PDE residual of the predicted solutions")
        grid = solvers.Grid(tuple(ref.shape[2:-1]), (1.0, 1.0))

        def rms_residual(a, u):
            return jnp.sqrt(jnp.mean(solvers.Darcy(grid, coefficient=a, source=self.source).residual(u) ** 2))

        f = jax.jit(jax.vmap(rms_residual))
        a = jnp.asarray(ref[:, 0, ..., 0])
        d_pred = np.asarray(f(a, jnp.asarray(pred[:, 1, ..., 0])))
        d_ref = np.asarray(f(a, jnp.asarray(ref[:, 1, ..., 0])))
        pad = lambda d: np.stack([np.zeros_like(d), d], axis=1)  # noqa: E731 (frame 0 is the input)
        residual = Residual("RMS(f - A_h u): the cell-centred finite-volume Darcy operator of the test file's grid "
                            "applied to the predicted (or reference) solution; the reference's is its CG residual",
                            pad(d_pred), pad(d_ref))
        return Physics(residual, {"mass": False, "energy": False}, {})

    def error_definition(self, req: Requirement) -> str:
        return f"q{req.quantile:g} over test samples of {score_name(req)} of the solution"

    def check_equal_accuracy(self, config, grid_shape) -> None:
        """Every coarsening divides the grid and leaves at least ``MIN_CELLS`` cells per side."""
        _equal_accuracy.check_coarsen(config.coarsen, grid_shape, minimum=_equal_accuracy.MIN_CELLS, divides=True)

    def equal_accuracy(self, req, ref, t, dt, score, surrogate_seconds, surrogate_error, config, factory,
                       say, *, repeats, quiet=True) -> EqualAccuracy:
        """:func:`audit._equal_accuracy.search_steady` over coarser Darcy grids and looser CG tolerances."""
        say("equal-accuracy search over Darcy grids and CG tolerances")
        res = _equal_accuracy.search_steady(ref[:, 0, ..., 0], self.source, score, surrogate_error, config,
                                            repeats=repeats, progress=_setting_lines(say), quiet=quiet)
        return EqualAccuracy(surrogate_seconds, surrogate_error, self.error_definition(req), "measured", res)


AUDITS: dict[type[Problem], type[ProblemAudit]] = {Trajectory: TrajectoryAudit, SteadyMap: SteadyMapAudit}
"""The audit of each problem kind, by the kind's type."""


def problem_audit(kind: Problem, test, pde=None, pde_classes: tuple = ()) -> ProblemAudit:
    """The :class:`ProblemAudit` of ``kind`` for the ``test`` split (see :meth:`ProblemAudit.build`)."""
    try:
        cls = AUDITS[type(kind)]
    except KeyError:
        raise AuditError(f"the audit knows no problem kind {kind!r} (it audits "
                         f"{', '.join(k.name for k in AUDITS)})") from None
    return cls.build(test, pde, pde_classes)
