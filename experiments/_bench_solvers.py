"""byai's side of the solver benchmarks ``ks1d`` and ``ns2d`` (../shared/bench/README.md).

The workloads are those of ``shared/bench/exponax_stepper.py``, equation for equation:

- ``ks1d``: exponax ``KuramotoSivashinskyConservative(1, 60.0, 256, 0.05, order=4)`` is
  ``u_t + 1/2 (u^2)_x + u_xx + u_xxxx = 0``, byai's ``KuramotoSivashinsky`` on
  ``Grid((256,), (60.0,))``; batch 64, 1000 steps of ``dt = 0.05``.
- ``ns2d``: exponax ``KolmogorovFlowVorticity(2, 2 pi, 128, 0.01, diffusivity=1e-2, order=4)``
  has linear part ``nu Lap - 0.1`` (its default ``drag=-0.1`` is on the right-hand
  side) and forcing ``-4 cos(4 y)`` (injection mode 4, scale 1), i.e. byai's
  ``NavierStokes2D(grid, nu=0.01, forcing="kolmogorov", drag=0.1, forcing_mode=4)``.
  exponax takes the streamfunction as ``Lap^-1 omega`` (byai: ``-Lap^-1 omega``) with the
  same velocity formula, so its velocity is minus the physical one. The two equations
  are the same up to the symmetry ``omega_b(x, y) = -omega_e(x, y + pi/4)`` (the shift turns
  the forcing's sign back): :func:`from_exponax` / :func:`to_exponax` map states.
  Batch 8, 200 steps of ``dt = 0.01``.

Initial conditions are exponax's ``RandomTruncatedFourierSeries(d, cutoff=5)`` redone
in byai (white noise, modes ``|m| <= 5`` per axis kept, zero mean) from the same keys
``jax.random.split(PRNGKey(0), batch)``, so the draws match exponax's up to rounding.
Timing: ``jax.jit(jax.vmap(rollout))`` on float64 over the whole batch, run by
``solvers.map_batch`` (on a CPU backend the batch is split over one worker thread
per usable core, as byai's batched rollouts do; the peer runs its jitted program
on the batch as its script does), compilation excluded, ``repeats`` timed runs;
the median and the best wall time are reported, and the process CPU time of
each run (all threads), which contention from other processes on a shared
machine disturbs much less than the wall time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import solvers
from experiments._cli import UsageError


@dataclasses.dataclass(frozen=True)
class Workload:
    """One fixed-step ETDRK4 rollout workload (shape, box, batch, steps, dt)."""

    name: str
    ndim: int
    n: int
    length: float
    batch: int
    steps: int
    dt: float

    @property
    def grid(self) -> solvers.Grid:
        return solvers.Grid((self.n,) * self.ndim, (self.length,) * self.ndim)


WORKLOADS = {
    "ks1d": Workload("ks1d", 1, 256, 60.0, 64, 1000, 0.05),
    "ns2d": Workload("ns2d", 2, 128, 2 * np.pi, 8, 200, 0.01),
}


def workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise UsageError(f"workload must be one of {sorted(WORKLOADS)}, got {name!r}")
    return WORKLOADS[name]


def make_pde(name: str):
    """The byai PDE of workload ``name`` (the same equation as the exponax peer)."""
    w = workload(name)
    if name == "ks1d":
        return solvers.KuramotoSivashinsky(w.grid)
    return solvers.NavierStokes2D(w.grid, nu=0.01, forcing="kolmogorov", drag=0.1, forcing_mode=4)


def initial_conditions(name: str, seed: int = 0) -> jnp.ndarray:
    """``(batch, *shape, 1)`` random truncated Fourier series (cutoff 5, zero mean), exponax's recipe."""
    w = workload(name)
    g = w.grid
    mask = np.ones(g.spectral_shape, dtype=bool)
    for k, length in zip(g.wavenumbers(), g.length):  # integer mode numbers m = k L / (2 pi)
        mask &= np.abs(np.rint(k * length / (2 * np.pi))) <= 5
    mask = jnp.asarray(mask)

    def one(key):
        noise_key, _ = jax.random.split(key)  # exponax also draws an offset key (unused: zero offset)
        noise = jax.random.normal(noise_key, g.shape, dtype=jnp.float64)
        noise_hat = jnp.fft.rfftn(noise) * mask
        noise_hat = noise_hat.reshape(-1).at[0].set(0.0).reshape(noise_hat.shape)
        u = jnp.fft.irfftn(noise_hat, s=g.shape)
        return (u - jnp.mean(u))[..., None]

    return jax.vmap(one)(jax.random.split(jax.random.PRNGKey(seed), w.batch))


def to_exponax(name: str, u) -> np.ndarray:
    """byai states ``(batch, *shape, 1)`` as the exponax states of the same solution ``(batch, 1, *shape)``."""
    u = np.moveaxis(np.asarray(u), -1, 1)
    if name == "ns2d":  # omega_e(x, y) = -omega_b(x, y - pi/4)
        u = -np.roll(u, workload(name).n // 8, axis=-1)
    return u


def from_exponax(name: str, u) -> np.ndarray:
    """Inverse of :func:`to_exponax`."""
    u = np.asarray(u)
    if name == "ns2d":  # omega_b(x, y) = -omega_e(x, y + pi/4)
        u = -np.roll(u, -(workload(name).n // 8), axis=-1)
    return np.moveaxis(u, 1, -1)


def make_rollout(name: str, dt_factor: int = 1, steps: int | None = None):
    """``jax.jit(jax.vmap(u0 -> rollout(step, u0, steps)))`` for the workload (ETDRK4)."""
    w = workload(name)
    step = solvers.stepper(make_pde(name), w.dt / dt_factor, method="etdrk4")
    n = (w.steps if steps is None else steps) * dt_factor
    return jax.jit(jax.vmap(lambda u0: solvers.rollout(step, u0, n)))


def final_states(name: str, u0, dt_factor: int = 1):
    """Final states ``(batch, *shape, 1)`` after the workload's time, stepping with ``dt / dt_factor``."""
    w = workload(name)
    step = solvers.stepper(make_pde(name), w.dt / dt_factor, method="etdrk4")
    n = w.steps * dt_factor
    run = jax.jit(jax.vmap(lambda u: jax.lax.fori_loop(0, n, lambda _, v: step(v), u)))
    return run(u0)


def bench(name: str, repeats: int = 5) -> dict:
    """Time the workload: sample-steps per second from the median of ``repeats`` timed runs."""
    if repeats < 1:
        raise UsageError(f"repeats must be >= 1, got {repeats}")
    w = workload(name)
    u0 = initial_conditions(name)
    one_program = make_rollout(name)
    workers = min(solvers.default_workers(), w.batch)

    def roll(u):
        return solvers.map_batch(one_program, u, workers=workers)

    t0 = time.perf_counter()
    out = jax.block_until_ready(roll(u0))  # compile (and one run), not timed
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(roll(u0))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med, best = statistics.median(times), min(times)
    return {"library": "byai", "workload": name, "batch": w.batch, "steps": w.steps, "workers": workers,
            "sample_steps_per_s": w.batch * w.steps / med,
            "sample_steps_per_s_best": w.batch * w.steps / best,
            "seconds_median": med, "seconds_best": best, "seconds": times,
            "cpu_seconds": cpu, "cpu_s_median": statistics.median(cpu), "compile_s": compile_s,
            "finite": bool(jnp.isfinite(out).all()), "dtype": str(out.dtype)}


def time_error(name: str, u0=None) -> dict:
    """RMS difference of the final states at ``dt`` and at ``dt/8`` (relative to RMS(u))."""
    u0 = initial_conditions(name) if u0 is None else u0
    a = final_states(name, u0)
    b = final_states(name, u0, dt_factor=8)
    diff = float(solvers.rms(a - b))
    return {"rms_diff_dt8": diff, "rel_diff_dt8": diff / float(solvers.rms(b))}
