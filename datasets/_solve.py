"""Solve a batch of samples over the local devices, each sample on its own, deterministically.

``solvers.solve`` decides between whole integrations on the host (re-integrating
tighter, refining the grid), so it cannot be traced under ``jax.vmap`` or
``jax.jit``. The samples of a batch are therefore dealt out over the local
devices: sample ``j`` runs on ``devices[j % n]``, one host thread per device
(JAX releases the GIL while a device computes). Every sample runs the same
compiled program on its own, so its bits do not depend on the batch, its
position in it or the device count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

import solvers

from ._spec import DatasetSpec


class BatchSolver:
    """``solver(u0 (B, *shape, C), params (B, P), sink) -> [None or exception per sample]``.

    Each solved sample ``j`` is handed to ``sink(j, u (T, *shape, C) float64, error (T,))``
    as soon as it is done (so a batch is never held twice); a failed one
    (``SolverDivergedError``, ``ResolutionError``) is returned in its slot.
    How one sample is solved is its problem kind's (``spec.problem.solve``).
    A context manager: leaving it shuts the device threads down.

    Args:
        spec: the dataset config (PDE, grid, times, tolerance, method).
        devices: local devices to spread the samples over (default: all local devices).
    """

    def __init__(self, spec: DatasetSpec, devices=None):
        self.spec = spec
        self.kind = spec.problem
        self.devices = list(devices or jax.local_devices())
        self._pool = ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="byai-solve")

    def _one(self, device, u0: np.ndarray, params: np.ndarray, j: int, sink):
        with jax.default_device(device):
            result = self.kind.solve(self.spec, u0, params)
        if isinstance(result, Exception):
            return result
        u, err = result
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(err))):
            return solvers.SolverDivergedError("the solution or its error estimate is not finite")
        sink(j, u, err)
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
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "BatchSolver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
