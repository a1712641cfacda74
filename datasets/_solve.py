"""Solve a batch of samples over the local devices, several samples at a time per device, deterministically.

The samples of a batch are dealt out over the local devices (sample ``j`` to
``devices[j % n]``), one host thread per device (JAX releases the GIL while a
device computes). Each device solves its share with its problem kind's
``solve_many``: for a trajectory, ``solvers.solve_batch_iter``, which integrates
``solvers._solve.WIDTH`` samples at a time in one vmapped program whatever the
batch size, each sample with its own steps and decisions. A sample's bits depend
on its own inputs only, not on the batch, its position in it or the device count.
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
    How samples are solved is their problem kind's (``spec.problem.solve_many``).
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

    def _lane(self, device, u0: np.ndarray, params: np.ndarray, index: list[int], sink, out: list) -> None:
        """Solve samples ``index`` of the batch on ``device``, filling their slots of ``out``."""
        with jax.default_device(device):
            for k, result in self.kind.solve_many(self.spec, u0[index], params[index]):
                j = index[k]
                if isinstance(result, Exception):
                    out[j] = result
                    continue
                u, err = result
                if not (np.all(np.isfinite(u)) and np.all(np.isfinite(err))):
                    out[j] = solvers.SolverDivergedError("the solution or its error estimate is not finite")
                    continue
                sink(j, u, err)

    def __call__(self, u0: np.ndarray, params: np.ndarray, sink) -> list:
        n = len(self.devices)
        out = [None] * len(u0)
        lanes = [self._pool.submit(self._lane, self.devices[d], u0, params, list(range(d, len(u0), n)), sink, out)
                 for d in range(min(n, len(u0)))]
        for lane in lanes:
            lane.result()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "BatchSolver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
