"""The precision audit: does a surrogate meet an accuracy requirement, measured against the solver's tolerance?

``audit.run(stepper, test, calibration, requirement)`` rolls a stepper out from
every test initial condition, measures PDEBench / The Well metrics per sample
and step, states them as multiples of the reference solver's tolerance, gives a
split-conformal error bound with its coverage, compares with the solver at
equal accuracy (McGreivy & Hakim 2024) and checks the PDE residual and
conservation. ``conformal_guard`` and ``residual_guard`` build the guards the
hybrid stepper (``surrogates.hybrid``) takes.
"""

from ._config import AuditConfig, AuditError, EqualAccuracyConfig, Requirement
from ._conformal import conformal_bound, conformal_bounds, coverage, min_calibration_size
from ._guards import conformal_guard, residual_guard
from ._metrics import band_errors, correlation, correlation_time, field_metrics, radial_spectrum, summarize
from ._physics import conserved_quantities, defects, drift
from ._run import Report, run

__all__ = [
    "AuditConfig", "AuditError", "EqualAccuracyConfig", "Requirement", "Report", "run",
    "conformal_bound", "conformal_bounds", "coverage", "min_calibration_size",
    "conformal_guard", "residual_guard",
    "field_metrics", "band_errors", "correlation", "correlation_time", "radial_spectrum", "summarize",
    "conserved_quantities", "defects", "drift",
]
