"""Exact solutions used by the solver tests (float64 NumPy, no solver code)."""

import math

import numpy as np


def burgers_sin(x, t: float, nu: float, points: int = 4001) -> np.ndarray:
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` from ``u0 = sin x``, exact (Cole-Hopf / Hopf formula).

    ``u = -2 nu phi_x / phi`` with ``phi`` the heat solution from ``phi0 = exp(cos x / (2 nu))``,
    written as ``u(x, t) = int (s/t) w ds / int w ds`` with
    ``w(s) = exp(cos(x - s) / (2 nu) - s^2 / (4 nu t))``; trapezoid rule in log-sum-exp form
    (analytic, Gaussian-decaying integrand: about 1e-15 accurate, checked against 2x the points).
    """
    x = np.asarray(x, dtype=np.float64)
    if t == 0:
        return np.sin(x)
    half = math.sqrt(4 * nu * t * (40 + 1 / nu))
    s = np.linspace(-half, half, points)
    f = np.cos(x[..., None] - s) / (2 * nu) - s**2 / (4 * nu * t)
    w = np.exp(f - f.max(axis=-1, keepdims=True))
    return (w @ (s / t)) / w.sum(axis=-1)


def kdv_soliton(x, t: float, c: float, x0: float) -> np.ndarray:
    """``u = c/2 sech^2(sqrt(c)/2 (x - c t - x0))`` solves ``u_t + 6 u u_x + u_xxx = 0`` on the line."""
    return c / 2 / np.cosh(np.sqrt(c) / 2 * (x - c * t - x0)) ** 2


def allen_cahn_uniform(u0: float, t: float) -> float:
    """The spatially uniform Allen-Cahn solution: ``u' = u - u^3`` (logistic in ``u^2``)."""
    e = math.exp(2 * t)
    return u0 * math.exp(t) / math.sqrt(1 - u0**2 + u0**2 * e)


def rms(a, axes=None):
    return np.sqrt(np.mean(np.abs(np.asarray(a)) ** 2, axis=axes))


def frame_rms(a):
    """RMS per leading index (per saved frame)."""
    a = np.asarray(a)
    return rms(a, tuple(range(1, a.ndim)))
