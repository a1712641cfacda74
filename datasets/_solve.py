"""Solve a batch of samples over the local devices, several samples at a time per device, deterministically.

The samples of a batch are dealt out over worker threads (sample ``j`` to
worker ``j % n``; JAX releases the GIL while a device computes): one per
device, or, where the devices are CPUs, one per core the process may run on,
shared round-robin among them. One program keeps about one core busy on the
solver's small transforms, so a CPU device runs one per core side by side
(1-D KS, 256 points, 2 cores: 1.9x the samples per second of one thread,
measured). Each worker solves its share with its problem kind's
``solve_many``: for a trajectory, ``solvers.solve_batch_iter``, which integrates
samples side by side in one vmapped program (as many as suit the grid, whatever
the batch size), each sample with its own steps and decisions. A sample's bits depend
on its own inputs only, not on the batch, its position in it, the device count or
the worker count.
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
    A context manager: leaving it shuts the worker threads down.

    Args:
        spec: the dataset config (PDE, grid, times, tolerance, method).
        devices: local devices to spread the samples over (default: all local devices).
        workers: worker threads (default: one per device, or on CPU devices one per usable core
            when that is more).
    """

    def __init__(self, spec: DatasetSpec, devices=None, workers: int | None = None):
        self.spec = spec
        self.kind = spec.problem
        devices = list(devices or jax.local_devices())
        if workers is None:
            workers = len(devices)
            if all(d.platform == "cpu" for d in devices):
                workers = max(workers, solvers.default_workers())
        if isinstance(workers, bool) or not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.devices = [devices[k % len(devices)] for k in range(workers)]  # worker k's device
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byai-solve")

    def _work(self, device, u0: np.ndarray, params: np.ndarray, index: list[int], sink, out: list) -> None:
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
        work = [self._pool.submit(self._work, self.devices[k], u0, params, list(range(k, len(u0), n)), sink, out)
                for k in range(min(n, len(u0)))]
        for w in work:
            w.result()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "BatchSolver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
