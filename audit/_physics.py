"""Physics checks of a rollout: PDE residual (one-step defect) and conserved-quantity drift.

Conservation is detected from the PDE itself, not from a table: a periodic
semi-linear PDE ``u_t = L u + N(u)`` conserves the mass ``mean_x u`` (per
channel) when ``L`` vanishes at ``k = 0`` and ``N(u)`` has no ``k = 0`` mode,
and the energy ``E = mean_x sum_c u^2 / 2`` when ``L`` is purely imaginary and
``sum_k conj(u_hat) N(u_hat)`` has zero real part; both are checked on random
dealiased states (Advection, KdV conserve both; Burgers 1-D, KS 1-D, Diffusion
and unforced, undamped Navier-Stokes conserve the mass).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import solvers

_RTOL = 1e-9  # relative size below which a k=0 mode or an energy production counts as zero


def conserved_quantities(pde) -> dict:
    """``{"mass": bool, "energy": bool}``: which quantities ``pde`` conserves exactly (see module doc)."""
    grid = pde.grid
    lin = np.asarray(pde.linear())
    rng = np.random.default_rng(0)
    mask = np.asarray(grid.dealias_mask())[..., None]
    mass = bool(np.all(np.abs(lin.reshape(-1, lin.shape[-1])[0]) <= _RTOL * (1 + np.max(np.abs(lin)))))
    energy = bool(np.all(np.abs(np.real(lin)) <= _RTOL * (1 + np.max(np.abs(lin)))))
    for _ in range(2):
        u = rng.standard_normal(pde.state_shape)
        u_hat = np.asarray(grid.fft(jnp.asarray(u))) * mask
        n_hat = np.asarray(pde.nonlinear(jnp.asarray(u_hat)))
        scale = np.sqrt(np.sum(np.abs(n_hat) ** 2)) + 1e-300
        k0 = n_hat.reshape(-1, n_hat.shape[-1])[0]
        mass = mass and bool(np.all(np.abs(k0) <= _RTOL * scale))
        # weights of the rfft half-spectrum: interior modes of the last axis count twice
        w = np.full(grid.spectral_shape, 2.0)
        w[..., 0] = 1.0
        if grid.shape[-1] % 2 == 0:
            w[..., -1] = 1.0
        prod = np.sum(w[..., None] * np.real(np.conj(u_hat) * n_hat))
        energy = energy and bool(abs(prod) <= _RTOL * scale * np.sqrt(np.sum(np.abs(u_hat) ** 2)))
    return {"mass": mass, "energy": energy}


def quantities(traj, spatial_dims: int) -> dict:
    """Mass ``mean_x u`` (per channel, ``(..., C)``) and energy ``mean_x sum_c u^2 / 2`` (``(...)``)."""
    traj = np.asarray(traj, dtype=np.float64)
    ax = tuple(range(traj.ndim - 1 - spatial_dims, traj.ndim - 1))
    return {"mass": np.mean(traj, axis=ax), "energy": 0.5 * np.sum(np.mean(traj**2, axis=ax), axis=-1)}


def drift(traj, spatial_dims: int) -> dict:
    """Drift from the initial frame of ``(S, T, *space, C)`` trajectories: ``name -> (S, T)``.

    ``mass``: RMS over channels of ``mean_x u[n] - mean_x u[0]``; ``energy``:
    ``|E[n] - E[0]| / E[0]`` (relative).
    """
    q = quantities(traj, spatial_dims)
    m = q["mass"]
    e = q["energy"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(e - e[:, :1]) / e[:, :1]
    return {"mass": np.sqrt(np.mean((m - m[:, :1]) ** 2, axis=-1)), "energy": np.where(e[:, :1] > 0, rel, 0.0)}


def fine_step(pde, dt: float, substeps: int, method: str = "etdrk4"):
    """The solver's step over one save interval ``dt``: ``substeps`` steps of ``method``."""
    step = solvers.stepper(pde, dt / substeps, method)
    if substeps == 1:
        return step
    return lambda u: lax.fori_loop(0, substeps, lambda i, v: step(v), u)


def defects(pde, dt: float, traj, substeps: int = 4, per_sample_pde: bool = False) -> np.ndarray:
    """PDE residual of trajectories: ``RMS(u[n+1] - S_dt(u[n]))`` for ``n = 0 .. T-2``, shape ``(S, T-1)``.

    ``S_dt`` is the solver's ETDRK4 step over the save interval ``dt`` with
    ``substeps`` sub-steps: the residual of the time-discrete equation. For the
    reference data it is the solver's own local error (the floor); for a
    surrogate it is the error the surrogate adds in one save interval.

    Args:
        pde: the PDE (a pytree; with ``per_sample_pde`` its leaves carry a leading sample axis).
        traj: ``(S, T, *space, C)``.
    """
    def one(p, u):
        s = fine_step(p, dt, substeps)
        nxt = jax.vmap(s)(u[:-1])
        return jnp.sqrt(jnp.mean((u[1:] - nxt) ** 2, axis=tuple(range(1, u.ndim))))

    traj = jnp.asarray(traj, dtype=jnp.float64)
    f = jax.jit(jax.vmap(one, in_axes=(0 if per_sample_pde else None, 0)))
    return np.asarray(f(pde, traj))
