"""``byai bench generate``: dataset generation throughput on a ks1d-sized split, with and without writing.

Measures, on the Kuramoto-Sivashinsky workload of ../shared/bench (N = 256,
L = 60), the time to solve a few samples (``solve_s``, compilation excluded by
a warm-up sample) and the time to store them (``write_s``: the journal part,
the compressed HDF5 assembly and the SHA-256), and the peak memory of the
storage path measured with ``tracemalloc`` against one batch of output.
"""

from __future__ import annotations

import math
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path


def bench(samples: int = 4, t_end: float = 10.0, n_times: int = 101, rtol: float = 1e-6, atol: float = 1e-8) -> dict:
    """Generate a ks1d-sized split and time solving vs writing.

    Returns a dict: ``samples``, ``solve_s``, ``write_s``, ``samples_per_s_solve``
    (without writing), ``samples_per_s`` (with writing), ``write_fraction``
    (``write_s / solve_s``, the target is < 0.1), ``batch_bytes`` (one batch of
    output), ``peak_write_bytes`` (tracemalloc peak while storing),
    ``peak_over_batch`` (target < 2), ``max_rss_mb``, ``devices``.
    """
    import jax

    from datasets import DatasetSpec, ICSpec, SplitSizes
    from datasets import _generate
    from datasets._solve import BatchSolver

    spec = DatasetSpec(pde="ks", shape=(256,), length=(60.0,), t_end=t_end, n_times=n_times, rtol=rtol, atol=atol,
                       ic=ICSpec(kind="fourier", cutoff=8, amplitude=1.0),
                       splits=SplitSizes(train=samples, val=0, calibration=0, test=0), batch_size=samples)
    solver = BatchSolver(spec)
    _generate._solve_block(spec, "val", [0], solver)  # warm-up: compile outside the timing
    tracemalloc.start()
    t0 = time.perf_counter()
    block = _generate._solve_block(spec, "train", list(range(samples)), solver)
    solve_s = time.perf_counter() - t0
    _, peak_solve = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    solver.close()
    batch_bytes = int(block["u"].nbytes + block["error"].nbytes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.h5"
        journal = _generate._journal_dir(path)
        journal.mkdir()
        identity = spec.identity("train")
        tracemalloc.start()
        t0 = time.perf_counter()
        _generate._write_part(journal, 0, samples, block)
        del block  # from here on the batch lives only in the journal, as in a real run
        _generate._assemble(spec, "train", 0, samples, path, identity, journal)
        write_s = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        size = path.stat().st_size
    return {
        "workload": "ks1d N=256 L=60", "samples": samples, "n_times": n_times, "t_end": t_end, "rtol": rtol,
        "devices": jax.local_device_count(), "solve_s": solve_s, "write_s": write_s,
        "samples_per_s_solve": samples / solve_s, "samples_per_s": samples / (solve_s + write_s),
        "write_fraction": write_s / solve_s, "batch_bytes": batch_bytes, "peak_write_bytes": int(peak),
        "peak_over_batch": peak / batch_bytes, "peak_solve_bytes": int(peak_solve),
        "peak_solve_over_batch": peak_solve / batch_bytes, "file_bytes": size,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ok": bool(write_s / solve_s < 0.1 and max(peak, peak_solve) / batch_bytes < 2 and math.isfinite(solve_s)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench()))
