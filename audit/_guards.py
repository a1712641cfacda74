"""Guards for the hybrid stepper: may the surrogate take this step?

A guard is a pure, jit-able callable

    ``guard(u, u_proposed) -> (ok, error_estimate)``

* ``u``: the current state ``(*grid.shape, C)`` float64 (unbatched);
* ``u_proposed``: the surrogate's proposal for the state one save interval later, same shape;
* ``ok``: a 0-d bool array, True when the surrogate's step may be taken
  (``error_estimate <= tolerance`` and ``u_proposed`` is finite);
* ``error_estimate``: a 0-d float64 array, the estimated RMS error (over grid
  points and channels, the norm of the solver's tolerance) that the step adds.

The hybrid stepper accumulates ``error_estimate`` over accepted surrogate
steps and compares the sum with its budget; it calls the guard inside
``jax.jit`` / ``lax.cond``, so guards never sync with the host.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

import solvers
from solvers import InputError

from ._config import AuditError
from ._physics import fine_step


def _finite(u):
    return jnp.all(jnp.isfinite(u))


def conformal_guard(bound_per_step: float, tolerance: float):
    """A guard that trusts the audit's calibrated one-step bound.

    Args:
        bound_per_step: the split-conformal bound (level ``1 - alpha``) of the
            surrogate's one-step RMS error, e.g. ``report.json["conformal"]["one_step_rmse_bound"]``.
        tolerance: the largest RMS error one surrogate step may add (same units as ``u``).

    Returns:
        ``guard(u, u_proposed) -> (ok, error_estimate)`` with
        ``error_estimate = bound_per_step`` (independent of the state) and
        ``ok = bound_per_step <= tolerance and all(isfinite(u_proposed))``.
        The guarantee is statistical: for initial conditions from the
        calibration distribution, a step's error exceeds the bound with
        probability at most ``alpha``.
    """
    bound = float(bound_per_step)
    tol = float(tolerance)
    if not math.isfinite(bound):
        raise AuditError(f"bound_per_step must be a finite number >= 0, got {bound_per_step}: the surrogate's "
                         "predictions on the calibration split are not finite, so no step of it can be trusted")
    if not bound >= 0:
        raise AuditError(f"bound_per_step must be a finite number >= 0, got {bound_per_step}")
    if not (math.isfinite(tol) and tol > 0):
        raise InputError(f"tolerance must be > 0 and finite, got {tolerance}")

    def guard(u, u_proposed):
        est = jnp.asarray(bound, dtype=jnp.float64)
        return (est <= tol) & _finite(u_proposed), est

    return guard


def residual_guard(pde, dt: float, tolerance: float, *, method: str = "trapezoid", substeps: int = 1):
    """A guard that measures the PDE residual of the proposed step.

    For ``u_t = L u + N(u)`` (``L`` diagonal in Fourier space) the exact step satisfies
    ``u(t+h) = e^{hL} u(t) + int_0^h e^{(h-s)L} N(u(t+s)) ds``. The residual is
    this equation evaluated at ``(u, u_proposed)`` with the integral replaced by

    * ``method="trapezoid"`` (cheap, 2 evaluations of ``N``): ``N`` interpolated
      linearly between ``u`` and ``u_proposed``, i.e.
      ``r = u_prop - [E u + h phi1(hL) N(u) + h phi2(hL) (N(u_prop) - N(u))]``
      (exponential trapezoidal rule, local error ``O(h^3)``: a consistent
      residual, an *estimate* of the step's error that includes the rule's
      own truncation error for large ``h``);
    * ``method="etdrk4"`` (a full solver step, ``4 * substeps`` evaluations):
      ``r = u_prop - S_h(u)`` with ``S_h`` the solver's ETDRK4 step with
      ``substeps`` sub-steps, i.e. the surrogate's local error up to the
      solver's own (the cost of a solver step must be counted by the caller).

    ``error_estimate = RMS(r)`` over grid points and channels, ``ok =
    error_estimate <= tolerance and all(isfinite(u_proposed))``.

    Args:
        pde: a semi-linear PDE of ``solvers`` on the state's grid.
        dt: the save interval the surrogate steps over (> 0).
        tolerance: the largest RMS residual accepted per step (same units as ``u``).
        method: ``"trapezoid"`` or ``"etdrk4"``.
        substeps: sub-steps of the ``"etdrk4"`` reference step.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    if not (isinstance(substeps, int) and substeps >= 1):
        raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
    tol = float(tolerance)
    grid = pde.grid
    if method == "trapezoid":
        c = solvers.stepper(pde, dt, "etdrk2").coefficients  # E, h*phi1(hL), h*phi2(hL)

        def predict(u, u_proposed):
            v, w = grid.fft(u), grid.fft(u_proposed)
            nv = pde.nonlinear(v)
            return grid.ifft(c["E"] * v + c["h_phi1"] * nv + c["h_phi2"] * (pde.nonlinear(w) - nv))
    elif method == "etdrk4":
        step = fine_step(pde, dt, substeps)

        def predict(u, u_proposed):
            return step(u)
    else:
        raise ValueError(f"method must be 'trapezoid' or 'etdrk4', got {method!r}")

    def guard(u, u_proposed):
        r = u_proposed - predict(u, u_proposed)
        est = jnp.sqrt(jnp.mean(r**2))
        ok = (est <= tol) & _finite(u_proposed)
        return ok, jnp.where(jnp.isfinite(est), est, jnp.inf)

    return guard


def proposal_residual(pde, dt: float):
    """A cheap score of a proposed step: the RMS of its exponential-midpoint residual.

    For ``u_t = L u + N(u)`` (``L`` diagonal in Fourier space) the exact step is
    ``u(t+h) = e^{hL} u + int_0^h e^{(h-s)L} N(u(t+s)) ds``. Freezing ``N`` at the
    midpoint of the proposed step gives the exponential midpoint rule (local error
    ``O(h^3)``), and the score of a proposal ``v`` from ``u`` is::

        s(u, v) = RMS( v - [e^{hL} u + h phi1(hL) N((u + v) / 2)] )

    over grid points and channels: one evaluation of ``N`` (for Burgers one FFT
    pair), two forward FFTs and one inverse, so a small fraction of a neural
    operator's step. ``s`` is the surrogate's one-step error plus the rule's own
    truncation error; :func:`state_guard` scales it by a conformal factor, so it
    need not be an error estimate itself, only grow with the error.

    Args:
        pde: a semi-linear PDE of ``solvers`` on the state's grid.
        dt: the save interval the surrogate steps over (> 0).

    Returns:
        ``score(u, v) -> 0-d float64``, pure and jit-able (``inf`` when ``v`` is not finite).
    """
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be > 0 and finite, got {dt}")
    grid = pde.grid
    c = solvers.stepper(pde, dt, "etdrk1").coefficients  # E = e^{hL}, h_phi1 = h phi1(hL)

    def score(u, v):
        uh, vh = grid.fft(u), grid.fft(v)
        r = v - grid.ifft(c["E"] * uh + c["h_phi1"] * pde.nonlinear(0.5 * (uh + vh)))
        s = jnp.sqrt(jnp.mean(r**2))
        return jnp.where(jnp.isfinite(s), s, jnp.inf)

    return score


def state_guard(score, quantile: float, tolerance: float):
    """A guard whose bound depends on the proposed step: ``quantile * score(u, u_proposed)``.

    Locally weighted split conformal prediction (Lei et al. 2018, "Distribution-free
    predictive inference for regression", section 5.2): with ``quantile`` the conformal
    quantile at level ``1 - alpha`` of the ratios ``e_i / s_i`` of true one-step RMS errors
    to scores over calibration steps (:func:`audit.calibrate_state_guard`), a new step's
    error is below ``quantile * s`` with probability at least ``1 - alpha`` for steps
    from the calibration distribution. Steps the surrogate finds easy get a small bound,
    hard ones a large one, so the hybrid's budget is spent where it is cheap.

    Args:
        score: ``score(u, u_proposed) -> 0-d float`` (:func:`proposal_residual`), jit-able.
        quantile: the calibrated factor (finite, >= 0).
        tolerance: the largest RMS error one surrogate step may add (same units as ``u``).

    Returns:
        ``guard(u, u_proposed) -> (ok, quantile * score)``, ``ok`` when that is within
        ``tolerance`` and ``u_proposed`` is finite.
    """
    q, tol = float(quantile), float(tolerance)
    if not callable(score):
        raise InputError(f"score must be callable, got {type(score).__name__}")
    if not (math.isfinite(q) and q >= 0):
        raise AuditError(f"quantile must be a finite number >= 0, got {quantile}: the surrogate's errors on the "
                         "calibration split are not finite or its scores vanish, so no step of it can be trusted")
    if not (math.isfinite(tol) and tol > 0):
        raise InputError(f"tolerance must be > 0 and finite, got {tolerance}")

    def guard(u, u_proposed):
        est = q * jnp.asarray(score(u, u_proposed), jnp.float64)
        est = jnp.where(jnp.isfinite(est), est, jnp.inf)
        return (est <= tol) & _finite(u_proposed), est

    return guard
