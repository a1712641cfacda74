"""Solve a batch of samples over the local devices, each sample on its own, deterministically.

``solvers.solve`` decides between whole integrations on the host (re-integrating
tighter, refining the grid), so it cannot be traced under ``jax.vmap`` or
``jax.jit``. The batch is therefore sharded by sample over a ``("data",)``
device mesh: sample ``j`` of a batch runs on ``mesh.devices[j % n]``, one host
thread per device (JAX releases the GIL while a device computes). Every sample
runs the same compiled program on its own, so its bits do not depend on the
batch, its position in it or the device count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

import solvers

from ._pdes import build_pde, spec_grid
from ._spec import DatasetSpec

FAILURES = (solvers.SolverDivergedError, solvers.ResolutionError)


class BatchSolver:
    """``solver(u0 (B, *shape, C), params (B, P), sink) -> [None or exception per sample]``.

    Each solved sample ``j`` is handed to ``sink(j, u (T, *shape, C) float64, error (T,))``
    as soon as it is done (so a batch is never held twice); a failed one
    (``SolverDivergedError``, ``ResolutionError``) is returned in its slot.

    Args:
        spec: the dataset config (PDE, grid, times, tolerance, method).
        devices: local devices to spread the samples over (default: all local devices).
    """

    def __init__(self, spec: DatasetSpec, devices=None):
        self.spec = spec
        devices = list(devices or jax.local_devices())
        self.mesh = jax.make_mesh((len(devices),), ("data",), devices=devices,
                                  axis_types=(jax.sharding.AxisType.Explicit,))
        self.devices = list(self.mesh.devices.flat)
        self.grid = spec_grid(spec)
        self.t = np.linspace(0.0, spec.t_end, spec.n_times)
        self.fixed = dict(spec.params)
        self.names = spec.param_names
        self._pool = ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="byai-solve")

    def _one(self, device, u0: np.ndarray, params: np.ndarray, j: int, sink):
        spec = self.spec
        if spec.problem == "steady_map":
            return self._one_map(device, u0, j, sink)
        physics = dict(self.fixed, **{n: float(v) for n, v in zip(self.names, params)})
        with jax.default_device(device):
            pde = build_pde(spec.pde, self.grid, physics, spec.forcing)
            try:
                sol = solvers.solve(pde, u0, self.t, rtol=spec.rtol, atol=spec.atol, refine=True, method=spec.method)
            except FAILURES as e:
                return e
            u, err = np.asarray(sol.u, dtype=np.float64), np.asarray(sol.error, dtype=np.float64)
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(err))):
            return solvers.SolverDivergedError("the solution or its error estimate is not finite")
        sink(j, u, err)
        return None

    def _one_map(self, device, a: np.ndarray, j: int, sink):
        """A steady map sample: ``u = [a, solution]`` ``(2, n, n, 1)``, ``error = [0, bound]``.

        The coefficient is the exact input (error 0); the solution's bound is
        ``Darcy.solve_steady``'s (Richardson over three grids plus the CG error).
        """
        spec = self.spec
        with jax.default_device(device):
            try:
                pde = solvers.Darcy(self.grid, coefficient=a[..., 0], source=spec.source)
                sol = pde.solve_steady(rtol=spec.rtol, atol=spec.atol)
            except FAILURES as e:
                return e
            u = np.asarray(sol.u[0], dtype=np.float64)
            err = float(sol.error[0])
        if not (np.all(np.isfinite(u)) and np.isfinite(err)):
            return solvers.SolverDivergedError("the solution or its error estimate is not finite")
        sink(j, np.stack([a, u]), np.array([0.0, err]))
        return None

    def __call__(self, u0: np.ndarray, params: np.ndarray, sink) -> list:
        n = len(self.devices)

        def lane(d):  # the samples of device d, in order
            return [self._one(self.devices[d], u0[j], params[j], j, sink) for j in range(d, len(u0), n)]

        lanes = list(self._pool.map(lane, range(min(n, len(u0)))))
        out = [None] * len(u0)
        for d, results in enumerate(lanes):
            for k, r in enumerate(results):
                out[d + k * n] = r
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False)
