"""Exponential time differencing Runge-Kutta integrators and the fixed-step drivers.

For ``u_t = L u + N(u)`` with diagonal ``L`` (in Fourier space), one step of size
``h`` multiplies by ``exp(hL)`` exactly and integrates ``N`` with the phi
functions ``phi_k(hL)``. The phi functions are evaluated by the contour-integral
method of Kassam & Trefethen (SIAM J. Sci. Comput. 26, 2005): the mean of the
function over a circle of radius 1 around each ``z = hL`` in the complex plane,
which avoids the cancellation of the direct formulas near ``z = 0``.

Methods (Cox & Matthews, J. Comput. Phys. 176, 2002):
- ``"etdrk1"``: exponential Euler, order 1;
- ``"etdrk2"``: ETD2RK, order 2;
- ``"etdrk4"``: ETDRK4, order 4 (four evaluations of ``N`` per step).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._pde import SemiLinearPDE, check_positive, is_concrete, pytree_dataclass, static_field

METHODS = {"etdrk1": 1, "etdrk2": 2, "etdrk4": 4}
_CONTOUR_POINTS = 32


def _contour_mean(f: Callable, z):
    """Mean of ``f`` over a unit circle around each entry of ``z`` (complex)."""
    r = jnp.exp(2j * jnp.pi * (jnp.arange(_CONTOUR_POINTS) + 0.5) / _CONTOUR_POINTS)
    return jnp.mean(f(z[..., None] + r), axis=-1)


def _real_if(x, real: bool):
    return jnp.real(x) if real else x


def etd_coefficients(linear, h, method: str) -> dict:
    """The ETDRK coefficients for the symbol ``linear`` and step ``h``.

    Returns complex128 arrays (real ones when ``linear`` is real) shaped like
    ``linear``. Multiplications by ``h`` are folded in.
    """
    linear = jnp.asarray(linear)
    real = not jnp.iscomplexobj(linear)
    z = h * linear.astype(jnp.complex128)
    c = {"E": _real_if(jnp.exp(z), real)}
    phi1 = lambda w: (jnp.exp(w) - 1) / w  # noqa: E731
    if method == "etdrk1":
        c["h_phi1"] = _real_if(h * _contour_mean(phi1, z), real)
    elif method == "etdrk2":
        phi2 = lambda w: (jnp.exp(w) - 1 - w) / w**2  # noqa: E731
        c["h_phi1"] = _real_if(h * _contour_mean(phi1, z), real)
        c["h_phi2"] = _real_if(h * _contour_mean(phi2, z), real)
    elif method == "etdrk4":
        c["E2"] = _real_if(jnp.exp(z / 2), real)
        c["Q"] = _real_if(h * _contour_mean(lambda w: (jnp.exp(w / 2) - 1) / w, z), real)
        c["f1"] = _real_if(h * _contour_mean(
            lambda w: (-4 - w + jnp.exp(w) * (4 - 3 * w + w**2)) / w**3, z), real)
        c["f2"] = _real_if(h * _contour_mean(
            lambda w: (2 + w + jnp.exp(w) * (w - 2)) / w**3, z), real)
        c["f3"] = _real_if(h * _contour_mean(
            lambda w: (-4 - 3 * w - w**2 + jnp.exp(w) * (4 - w)) / w**3, z), real)
    else:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return c


def etd_step_hat(nonlinear: Callable, c: dict, method: str, v):
    """One ETDRK step on a Fourier-space state ``v`` with coefficients ``c``."""
    nv = nonlinear(v)
    if method == "etdrk1":
        return c["E"] * v + c["h_phi1"] * nv
    if method == "etdrk2":
        a = c["E"] * v + c["h_phi1"] * nv
        return a + c["h_phi2"] * (nonlinear(a) - nv)
    a = c["E2"] * v + c["Q"] * nv
    na = nonlinear(a)
    b = c["E2"] * v + c["Q"] * na
    nb = nonlinear(b)
    cc = c["E2"] * a + c["Q"] * (2 * nb - nv)
    nc = nonlinear(cc)
    return c["E"] * v + c["f1"] * nv + 2 * c["f2"] * (na + nb) + c["f3"] * nc


@pytree_dataclass
class ETDStepper:
    """Advances a state of ``pde`` by ``dt``: ``step(u) -> u``, pure, jit- and vmap-able.

    Build it with :func:`stepper`. ``u`` is an unbatched channels-last state
    ``(*grid.shape, C)``; use ``jax.vmap`` for batches.
    """

    pde: SemiLinearPDE
    dt: float
    coefficients: dict
    method: str = static_field()

    def step_hat(self, u_hat):
        """One step on a Fourier-space state (no transforms)."""
        return etd_step_hat(self.pde.nonlinear, self.coefficients, self.method, u_hat)

    def __call__(self, u):
        g = self.pde.grid
        return g.ifft(self.step_hat(g.fft(u))).astype(u.dtype)


def stepper(pde: SemiLinearPDE, dt: float, method: str = "etdrk4") -> ETDStepper:
    """A fixed-step integrator ``u -> u(t + dt)`` for ``pde``.

    Args:
        pde: a semi-linear PDE (``Burgers``, ``KuramotoSivashinsky``, ...).
        dt: the time step (> 0, in the PDE's time units). ETDRK methods are
            stable for stiff linear parts at any ``dt``; accuracy decides it.
            Good values: 1e-3 .. 1e-1 depending on the PDE (``solve`` picks
            its own).
        method: ``"etdrk4"`` (default, order 4), ``"etdrk2"`` or ``"etdrk1"``.
    """
    if not isinstance(pde, SemiLinearPDE):
        raise ValueError(f"pde must be a time-dependent semi-linear PDE, got {type(pde).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    check_positive("dt", dt)
    return ETDStepper(pde, dt, etd_coefficients(pde.linear(), dt, method), method)


def rollout(step: Callable, u0, n: int):
    """Apply ``step`` ``n`` times from ``u0``: ``(n + 1, *u0.shape)`` including ``u0``.

    Built on ``lax.scan``; wrap the call in ``jax.jit`` (with ``n`` static) to
    compile it once.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")

    def body(u, _):
        u = step(u)
        return u, u

    _, traj = lax.scan(body, u0, None, length=int(n))
    return jnp.concatenate([u0[None], traj], axis=0)
