"""Calibrating the state-dependent guard: locally weighted split conformal on one-step pairs.

A one-step pair is a reference frame ``u_n`` and the next one ``u_{n+1}`` of a
split; the surrogate's proposal is ``v = step(u_n)``, its true one-step error
``e = RMS(v - u_{n+1})`` and its score ``s = score(u_n, v)`` (a cheap residual,
:func:`audit.proposal_residual`). Calibration takes the conformal quantile at
level ``1 - alpha`` of the ratios ``e / s`` over every pair of the calibration
split (Lei et al. 2018, section 5.2, with the spread estimate replaced by the
score); :func:`audit.state_guard` then bounds a new step's error by
``quantile * s``.

Exchangeability. Pairs of one trajectory are not independent of each other;
samples are. The pooled quantile targets the coverage of a step drawn at
random from a random trajectory of the calibration distribution, which is what
:func:`state_guard_coverage` measures on the test split (the fraction of its
pairs whose error is within the bound). It is an empirical check of the level,
not a finite-sample guarantee per trajectory; ``audit.one_step_bound`` (the
constant guard) takes the worst step per sample and keeps that guarantee.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from . import _conformal
from ._config import AuditError
from ._guards import proposal_residual
from ._run import sliding

__all__ = ["StateGuardCalibration", "calibrate_state_guard", "one_step_pairs", "state_guard_coverage"]

SCORE = "RMS of the exponential-midpoint residual of the proposal (one evaluation of the PDE's nonlinear term)"


@dataclasses.dataclass(frozen=True)
class StateGuardCalibration:
    """What :func:`calibrate_state_guard` returns.

    Attributes:
        quantile: the factor ``q``: a step's bound is ``q * score(u, v)``.
        alpha: the miscoverage it was calibrated at.
        pairs: the calibration one-step pairs it was calibrated on.
        score: what the score is, in words.
    """

    quantile: float
    alpha: float
    pairs: int
    score: str = SCORE


def _pde_batch(pdes, n: int):
    """``n`` PDEs stacked into one pytree (a single PDE is repeated)."""
    pdes = list(pdes) if isinstance(pdes, list | tuple) else [pdes] * n
    if len(pdes) != n:
        raise AuditError(f"one PDE per sample is needed: {n} samples, {len(pdes)} PDEs")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *pdes)


def one_step_pairs(stepper: Callable, u: Float[np.ndarray, "s t *space c"], pdes, dt: float,
                   params: Float[np.ndarray, "s p"] | None = None,
                   score_for: Callable = proposal_residual, window: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(errors, scores)``, each ``(S, T - 1)``: the surrogate's true one-step RMS error and its score per pair.

    Args:
        stepper: the surrogate ``step(u)`` (``step(u, p)`` when ``params`` is given) over one save interval.
        u: reference frames, float64 ``(S, T, *space, C)``, ``T >= 2``.
        pdes: the PDE of each sample (a list), or one PDE for all.
        dt: the save interval.
        params: ``(S, P)`` physics parameters the stepper takes per sample (``None``: it takes none).
        score_for: ``score_for(pde, dt) -> score(u, v)``, jit-able.
        window: states the stepper's state holds (a window stepper of ``surrogates.as_stepper``): a pair is
            then the window of frames ``n-window+1..n`` and frame ``n+1`` (``n >= window - 1``; ``(S, T - window)``
            each), its proposal the newest state of the stepped window and its score ``score(u_n, v)``.
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[0]
    p = np.zeros((n, 0)) if params is None else np.asarray(params, dtype=np.float64)
    f = (lambda x, q: stepper(x)) if params is None else stepper
    starts = u[:, :-1] if window == 1 else sliding(u, window)

    @jax.jit
    def pairs(pde_batch, frames, p):
        def sample(pde, fr, q):
            score = score_for(pde, dt)

            def one(x):
                v = f(x, q).astype(jnp.float64)
                if window == 1:
                    return v, score(x, v)
                return v[-1], score(x[-1], v[-1])  # the newest state of each window
            return jax.vmap(one)(fr)
        return jax.vmap(sample)(pde_batch, frames, p)

    v, s = pairs(_pde_batch(pdes, n), jnp.asarray(starts), jnp.asarray(p))
    e = np.sqrt(np.mean((np.asarray(v) - u[:, window:]) ** 2, axis=tuple(range(2, u.ndim))))
    return e, np.asarray(s, dtype=np.float64)


def _ratios(errors, scores) -> np.ndarray:
    e, s = np.asarray(errors, np.float64).ravel(), np.asarray(scores, np.float64).ravel()
    if not np.all(np.isfinite(e)):
        raise AuditError("the surrogate's one-step error is not finite on the calibration split (it diverged)")
    if np.any((s <= 0) & (e > 0)) or not np.all(np.isfinite(s)):
        raise AuditError("the state guard's score is zero or not finite on a calibration step the surrogate gets "
                         "wrong, so it cannot bound that error; use guard = \"conformal\"")
    return np.where(e > 0, e / np.where(s > 0, s, 1.0), 0.0)


def calibrate_state_guard(stepper: Callable, u, pdes, dt: float, alpha: float, params=None,
                          score_for: Callable = proposal_residual, window: int = 1) -> StateGuardCalibration:
    """The conformal factor of :func:`audit.state_guard`, from the calibration split's one-step pairs.

    Args:
        stepper, u, pdes, dt, params, score_for, window: as :func:`one_step_pairs`, on the calibration split.
        alpha: miscoverage in ``(0, 1)``, e.g. 0.1.

    Raises:
        AuditError: too few pairs for ``alpha``, a non-finite error, or a score that vanishes where the error does not.
    """
    u = np.asarray(u, dtype=np.float64)
    _conformal.check_calibration_size(u.shape[0] * (u.shape[1] - window), alpha)  # before any step
    errors, scores = one_step_pairs(stepper, u, pdes, dt, params, score_for, window)
    ratios = _ratios(errors, scores)
    return StateGuardCalibration(quantile=_conformal.conformal_bound(ratios, alpha), alpha=float(alpha),
                                 pairs=int(ratios.size))


def state_guard_coverage(errors, scores, quantile: float) -> float:
    """Fraction of one-step pairs whose true error is within the state guard's bound ``quantile * score``."""
    e, s = np.asarray(errors, np.float64), np.asarray(scores, np.float64)
    return float(np.mean(e <= quantile * s))
