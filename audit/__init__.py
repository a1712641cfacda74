"""The precision audit: does a surrogate meet an accuracy requirement, measured against the solver's tolerance?

``audit.run(stepper, test, calibration, requirement)`` rolls a stepper out from
every test initial condition, measures PDEBench / The Well metrics per sample
and step, states them as multiples of the reference solver's tolerance, gives a
split-conformal error bound with its coverage, compares with the solver at
equal accuracy (McGreivy & Hakim 2024) and audits the physics. It runs in
stages, each returning a frozen result that :class:`Report` holds: load and
validate, rollouts, scores (metrics, tolerance multiples, conformal bounds, the
verdict), physics, equal accuracy; ``report.json`` is ``Report.summary``.
``one_step_bound`` is the calibrated one-step RMS error bound that
``conformal_guard`` takes; ``conformal_guard`` and ``residual_guard`` build the
guards the hybrid stepper (``surrogates.hybrid``) takes, and ``state_guard`` (calibrated by
``calibrate_state_guard``) one whose bound depends on the proposed step; ``time_call`` is
byai's one timing routine (compilation excluded). ``audit.crossover(spec, models, shapes=...)``
maps where a surrogate pays: its real error and cost across grid sizes against the solver at equal
accuracy, the fitted cost scaling and where the speedup crosses 1 (``audit._crossover``).
``audit.run_predictions(pred, test, ...)``
audits rollouts any model made (arrays, or a file in byai's ``u`` or PDEBench's ``tensor``
layout) through the same stages; without calibration predictions ``conformal.status`` is
``"no calibration predictions"`` and the verdict is the test quantile's alone; without the
surrogate's wall time ``equal_accuracy.speedup`` is None with ``speedup_reason``.

The verdict (:class:`Requirement`): each test sample's score is the worst value
of the requirement's metric over rollout steps ``1..horizon``; the requirement
holds when the ``quantile`` (an upper order statistic) of the test scores AND
the split-conformal bound of the score at level ``1 - alpha`` (the
``ceil((n + 1)(1 - alpha))``-th smallest of the ``n`` calibration scores) are
both at most the threshold. ``"rel_l2<=300x"`` states the threshold as 300
times the reference solver's per-frame tolerance ``rtol * RMS(u_ref) + atol``.

Problem kinds: the test file's kind (``datasets.problem_of``: a ``Trajectory``
or a ``SteadyMap``; both splits must be of the same kind) picks the audit's
per-kind behaviour by its type (``audit._kinds``):

``Trajectory`` (``u`` dims ``(sample, time, ...)``)
    the stepper advances one save interval; the horizon is ``requirement.horizon``
    or the whole test time axis; ``physics`` is the one-step PDE residual
    ``RMS(u[n+1] - S_dt(u[n]))`` against the solver's fine step and the drift of
    the quantities the PDE conserves; ``equal_accuracy`` reruns the solver on
    coarser grids, with fewer steps, lower-order methods and the adaptive solver
    at looser tolerances. Both need the PDE (given, or rebuilt from the test
    file's attributes); without it both are ``"unknown"``.
``SteadyMap`` (``u`` dims ``(sample, stage, x, y, channel)``, e.g. Darcy ``a -> u``)
    the stepper is the map itself, applied once to stage 0 (the coefficient);
    the horizon is 1; every metric, tolerance multiple (against the file's
    ``rtol``/``atol`` and each sample's stored error bound) and the conformal
    bound are those of the predicted solution; ``physics`` holds the discrete
    residual ``RMS(f - A_h u)`` of prediction and reference; ``equal_accuracy``
    reruns the Darcy solver on coarser cells (coefficient block-averaged,
    solution interpolated bilinearly back to the test cell centres, both counted
    in cost and error) with looser CG tolerances.

``problem`` in ``report.json`` is the kind's name (``"trajectory"``, ``"steady_map"``).

``report.json`` (written by ``run(..., out_dir=...)`` and ``byai audit``):

``passed``, ``verdict``
    the decision.
``requirement``
    metric, threshold, threshold_kind, horizon, quantile, alpha, text.
``score``
    per-sample scores, their ``quantile`` (``test_quantile``) and the worst sample.
``metrics``
    per metric (see ``audit._metrics``: rmse, rel_l2, nrmse, max_error, vrmse,
    mass_error, energy_error where conserved, low/mid/high_freq, correlation,
    tolerance_multiple) ``mean``, ``q50``, ``q95``, ``max`` over test samples and
    steps ``1..horizon`` and ``per_step`` curves (``mean``, ``q95``, ``max``);
    ``correlation_time`` in steps.
``solver_tolerance``
    the reference's ``rtol``, ``atol`` (``known: false`` for imported data).
``tolerance_multiple``
    every metric in the units of ``u`` divided by the per-frame tolerance, and
    ``rel_l2``/``nrmse`` by the relative tolerance; ``error_estimate_multiple``:
    rmse over the reference's stored error estimate; ``"unknown"`` when the
    data states no tolerance.
``conformal``
    ``alpha``, ``bound`` (whole horizon), ``coverage_calibration``,
    ``coverage_test``, ``per_step`` bounds and coverages, and
    ``one_step_rmse_bound`` (the calibrated one-step RMS error a
    ``conformal_guard`` takes).
``equal_accuracy``
    ``surrogate_seconds``, ``solver_seconds``, ``speedup`` (solver / surrogate wall
    time for the whole test split, compilation excluded; may be < 1),
    ``speedup_bound`` (``exact``/``upper``/``lower``), ``solver_setting`` and every
    cost-accuracy ``point``; ``status`` ``unknown`` when the PDE cannot be rebuilt.
``time``
    ``dt`` (one stepper step), ``t0``, ``horizon`` (in stepper steps), ``stride`` (saved frames per step:
    the reference frames compared are every ``stride``-th), ``save_interval`` (the data's), ``window``
    (states a window stepper carries; the rollout starts from the first ``window`` frames, ``t0`` is the
    newest). ``equal_accuracy`` adds ``step_interval`` and ``stride``: its ``substeps`` are per stepper step.
``cost``
    what the surrogate cost to make (``generation_seconds``: the train, val and
    calibration files' recorded wall time; ``training_seconds``: the model's),
    the per-rollout seconds of the surrogate and of the solver at equal accuracy,
    and ``breakeven``: the rollouts after which the surrogate has paid back
    generation + training, ``ceil(upfront / (solver - surrogate))``, or null with
    the ``reason`` (it is slower per rollout: never; a cost is unknown).
``physics``
    the one-step PDE residual of prediction and reference, which quantities the
    PDE conserves, and their drift.
``pdebench``
    PDEBench's table metrics (rmse, nrmse, crmse, max_error, brmse, frmse_low/mid/high) aggregated
    over samples as its ``metric_func`` does, ``value`` (mean over steps) and ``per_step``, with
    ``definitions`` (:func:`audit._metrics.pdebench_metrics`).
``metric_definitions``
    the formula of every per-sample metric.
``provenance``
    sha256 of the test and calibration data, the model's training-data sha256 and
    checkpoint hash, and whether they match.
"""

from ._config import AuditConfig, AuditError, EqualAccuracyConfig, Requirement
from ._conformal import conformal_bound, conformal_bounds, coverage, min_calibration_size
from ._crossover import (CrossoverConfig, CrossoverModel, CrossoverResult, crossover, find_crossing,
                         fit_power_law, model_grid_problem, model_stride)
from ._cost import breakeven, generation_cost, training_cost
from ._equal_accuracy import time_call
from ._guards import conformal_guard, proposal_residual, residual_guard, state_guard
from ._hybrid import GuardKind, HybridResult, check_hybrid_config, compare_hybrid, guard_kind
from ._metrics import band_errors, correlation, correlation_time, field_metrics, radial_spectrum, summarize
from ._physics import conserved_quantities, defects, drift
from ._predictions import read_predictions, run_predictions
from ._run import Report, one_step_bound, run
from ._state_guard import StateGuardCalibration, calibrate_state_guard, one_step_pairs, state_guard_coverage

__all__ = [
    "AuditConfig", "AuditError", "EqualAccuracyConfig", "Requirement", "Report", "run", "one_step_bound", "time_call",
    "run_predictions", "read_predictions",
    "conformal_bound", "conformal_bounds", "coverage", "min_calibration_size",
    "conformal_guard", "residual_guard", "state_guard", "proposal_residual",
    "StateGuardCalibration", "calibrate_state_guard", "one_step_pairs", "state_guard_coverage",
    "HybridResult", "compare_hybrid", "check_hybrid_config", "GuardKind", "guard_kind",
    "field_metrics", "band_errors", "correlation", "correlation_time", "radial_spectrum", "summarize",
    "conserved_quantities", "defects", "drift",
    "breakeven", "generation_cost", "training_cost",
    "crossover", "CrossoverConfig", "CrossoverModel", "CrossoverResult", "fit_power_law", "find_crossing",
    "model_grid_problem", "model_stride",
]
