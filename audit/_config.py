"""The accuracy requirement and the ``[audit]`` config section (pure data, frozen dataclasses)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Literal

from solvers import ByaiError

METHODS = ("etdrk4", "etdrk2", "etdrk1")

# Error metrics a requirement may name (lower is better), see ``audit._metrics``.
ERROR_METRICS = ("rel_l2", "nrmse", "rmse", "max_error", "vrmse", "mass_error", "energy_error",
                 "low_freq", "mid_freq", "high_freq", "tolerance_multiple")
# Metrics with the units of ``u`` (divided by the per-frame tolerance) or relative to ``RMS(u)``
# (divided by the per-frame relative tolerance): the ones a tolerance multiple is defined for.
ABSOLUTE_METRICS = ("rmse", "max_error", "mass_error", "low_freq", "mid_freq", "high_freq")
RELATIVE_METRICS = ("rel_l2", "nrmse")


class AuditError(ByaiError, ValueError):
    """The audit cannot give a verdict on this input (the message says why and what to change)."""


def _check(cond: bool, name: str, msg: str, value) -> None:
    if not cond:
        raise ValueError(f"{name}: {msg}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """An accuracy requirement: ``quantile`` of the samples keep ``metric <= threshold`` up to ``horizon``.

    The score of one test sample is the worst (largest) value of ``metric``
    over rollout steps ``1..horizon`` (the initial frame is excluded). The
    requirement holds when both

    * the ``quantile``-quantile of the test scores (the order statistic
      ``ceil(quantile * n)``) is ``<= threshold``, and
    * the split-conformal bound of the score at level ``1 - alpha``, computed
      on the calibration split, is ``<= threshold`` (so a new initial
      condition from the same distribution meets the threshold with
      probability at least ``1 - alpha``).

    Args:
        metric: one of ``ERROR_METRICS`` (``"rel_l2"``, ``"rmse"``, ...).
        threshold: the largest acceptable value (> 0).
        threshold_kind: ``"absolute"`` (the metric's own units) or
            ``"tolerance_multiple"``: the threshold is a multiple of the
            reference solver's tolerance, i.e. the metric is divided by the
            per-frame tolerance ``tol_n = rtol * RMS(u_ref[n]) + atol`` (metrics
            in the units of ``u``) or by the per-frame relative tolerance
            ``tol_n / RMS(u_ref[n])`` (relative metrics ``rel_l2``, ``nrmse``).
            ``"rel_l2<=300x"`` reads "at most 300 times less precise than the
            reference data". Only defined for ``ABSOLUTE_METRICS`` and
            ``RELATIVE_METRICS``.
        horizon: rollout steps (save intervals) audited; ``None`` = every
            step of the test file.
        quantile: fraction of test samples that must meet the threshold (0.5 .. 1).
        alpha: conformal miscoverage (0 < alpha < 1); needs at least
            ``ceil(1/alpha) - 1`` calibration samples. Good values: 0.05 .. 0.2.
    """

    metric: str
    threshold: float
    threshold_kind: Literal["absolute", "tolerance_multiple"] = "absolute"
    horizon: int | None = None
    quantile: float = 0.95
    alpha: float = 0.1

    def __post_init__(self):
        _check(self.metric in ERROR_METRICS, "metric", f"must be one of {', '.join(ERROR_METRICS)}",
               self.metric)
        _check(math.isfinite(self.threshold) and self.threshold > 0, "threshold", "must be > 0 and finite",
               self.threshold)
        _check(self.threshold_kind in ("absolute", "tolerance_multiple"), "threshold_kind",
               "must be 'absolute' or 'tolerance_multiple'", self.threshold_kind)
        if self.threshold_kind == "tolerance_multiple":
            _check(self.metric in ABSOLUTE_METRICS + RELATIVE_METRICS, "metric",
                   "a threshold in tolerance multiples is defined only for "
                   f"{', '.join(ABSOLUTE_METRICS + RELATIVE_METRICS)}", self.metric)
        _check(self.horizon is None or (isinstance(self.horizon, int) and self.horizon >= 1), "horizon",
               "must be a positive number of steps", self.horizon)
        _check(0.5 <= self.quantile <= 1, "quantile", "must be in [0.5, 1]", self.quantile)
        _check(0 < self.alpha < 1, "alpha", "must be in (0, 1)", self.alpha)

    @classmethod
    def parse(cls, text: str, *, horizon: int | None = None, quantile: float = 0.95,
              alpha: float = 0.1) -> "Requirement":
        """Parse ``"METRIC<=VALUE"`` (absolute) or ``"METRIC<=VALUEx"`` (a multiple of the solver tolerance).

        Examples: ``"rel_l2<=0.05"``, ``"rmse<=1e-3"``, ``"rel_l2<=300x"``.
        ``"tolerance_multiple<=300"`` is the same as ``"rmse<=300x"``.
        """
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*<=\s*([^\sxX]+)\s*([xX]?)\s*", str(text))
        if not m:
            raise ValueError(f"requirement must look like 'rel_l2<=0.05' or 'rel_l2<=300x', got {text!r}")
        metric, value, mult = m.groups()
        try:
            threshold = float(value)
        except ValueError:
            raise ValueError(f"requirement threshold must be a number, got {value!r} in {text!r}") from None
        kind = "tolerance_multiple" if mult else "absolute"
        if metric == "tolerance_multiple":
            if mult:
                raise ValueError(f"write 'tolerance_multiple<=300' or 'rmse<=300x', not {text!r}")
            metric, kind = "rmse", "tolerance_multiple"
        return cls(metric, threshold, kind, horizon, quantile, alpha)

    def __str__(self) -> str:
        x = "x" if self.threshold_kind == "tolerance_multiple" else ""
        return f"{self.metric}<={self.threshold:g}{x}"


@dataclasses.dataclass(frozen=True)
class EqualAccuracyConfig:
    """The cheaper solver settings tried at equal accuracy (McGreivy & Hakim, Nature Mach. Intell. 2024).

    Every combination of a grid coarsening factor, a number of solver steps
    per save interval and an ETDRK method is tried (fixed steps, all test
    initial conditions in one ``vmap``), and then the adaptive
    ``solvers.solve`` at each looser tolerance of ``rtols`` (one sample after
    the other, on the data grid, refining it when the tolerance needs it); the
    cheapest setting whose error is no larger than the surrogate's (same metric
    and aggregation as the requirement) is the solver at equal accuracy.

    Args:
        enabled: run the search (it costs a few solver rollouts of the test split).
        coarsen: grid coarsening factors (1 = the data grid, 2 = half the points per axis, ...).
        substeps: solver steps per save interval (the solver step is ``dt_save / substeps``).
        methods: ETDRK methods tried.
        rtols: tolerances of the adaptive solver tried, loosest first (``atol = 1e-3 * rtol``);
            empty to skip it.

    How often each setting is timed is an argument of the search (``audit.run``'s ``repeats``).
    """

    enabled: bool = True
    coarsen: tuple[int, ...] = (1, 2, 4)
    substeps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    methods: tuple[Literal["etdrk4", "etdrk2", "etdrk1"], ...] = ("etdrk4", "etdrk2", "etdrk1")
    rtols: tuple[float, ...] = (1e-2, 1e-4)

    def __post_init__(self):
        _check(len(self.coarsen) > 0 and all(isinstance(c, int) and c >= 1 for c in self.coarsen), "coarsen",
               "must be a non-empty list of integers >= 1", self.coarsen)
        _check(len(self.substeps) > 0 and all(isinstance(s, int) and s >= 1 for s in self.substeps),
               "substeps", "must be a non-empty list of integers >= 1", self.substeps)
        _check(len(self.methods) > 0 and all(m in METHODS for m in self.methods), "methods",
               f"must be a non-empty list of {', '.join(METHODS)}", self.methods)
        _check(all(0 < r < 1 for r in self.rtols), "rtols", "must be tolerances in (0, 1)", self.rtols)


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """The ``[audit]`` section of an experiment TOML.

    Args:
        requirement: ``"METRIC<=VALUE"`` or ``"METRIC<=VALUEx"`` (see :meth:`Requirement.parse`).
        horizon: rollout steps audited (``None``: the whole test time axis).
        quantile: fraction of test samples that must meet the threshold.
        alpha: conformal miscoverage level (the bound holds with probability >= 1 - alpha).
        band_edges: integer mode numbers ``(low, high)`` splitting the error spectrum into
            low ``|m| < low``, mid ``low <= |m| < high`` and high ``|m| >= high`` bands
            (PDEBench's ``iLow=4, iHigh=12`` by default; ``|m|`` is radial in 2-D/3-D).
        correlation_threshold: the correlation time is the number of steps the Pearson
            correlation with the reference stays >= this value (0.8 as in The Well / PDEArena).
        residual_substeps: solver steps per save interval of the fine step ``S_dt`` used for the
            PDE residual ``u_{n+1} - S_dt(u_n)`` of the surrogate's rollout.
        equal_accuracy: the equal-accuracy search settings.
    """

    requirement: str = "rel_l2<=0.05"
    horizon: int | None = None
    quantile: float = 0.95
    alpha: float = 0.1
    band_edges: tuple[int, int] = (4, 12)
    correlation_threshold: float = 0.8
    residual_substeps: int = 4
    equal_accuracy: EqualAccuracyConfig = EqualAccuracyConfig()

    def __post_init__(self):
        _check(self.horizon is None or (isinstance(self.horizon, int) and self.horizon >= 1), "horizon",
               "must be a positive number of steps", self.horizon)
        _check(0.5 <= self.quantile <= 1, "quantile", "must be in [0.5, 1]", self.quantile)
        _check(0 < self.alpha < 1, "alpha", "must be in (0, 1)", self.alpha)
        self.to_requirement()  # validates the requirement text
        lo, hi = self.band_edges
        _check(isinstance(lo, int) and isinstance(hi, int) and 1 <= lo < hi, "band_edges",
               "must be two integers 1 <= low < high", self.band_edges)
        _check(-1 < self.correlation_threshold < 1, "correlation_threshold", "must be in (-1, 1)",
               self.correlation_threshold)
        _check(isinstance(self.residual_substeps, int) and self.residual_substeps >= 1, "residual_substeps",
               "must be an integer >= 1", self.residual_substeps)

    def to_requirement(self, override: str | None = None) -> Requirement:
        """The :class:`Requirement` of this config, with ``override`` (``--require``) replacing its text."""
        text = self.requirement if override is None else override
        try:
            return Requirement.parse(text, horizon=self.horizon, quantile=self.quantile, alpha=self.alpha)
        except ValueError as e:
            name = "--require" if override is not None else "requirement"
            raise ValueError(f"{name}: {e}") from None
