"""``byai bench generate``: dataset generation throughput on a ks1d-sized split, with and without writing.

Measures, on the Kuramoto-Sivashinsky workload of ../shared/bench (N = 256,
L = 60), the time to solve a few samples (``solve_s``, compilation excluded by
a warm-up sample) and the time to store them (``write_s``: the journal part,
the compressed HDF5 assembly and the SHA-256), and the peak memory of the
storage path measured with ``tracemalloc`` against one batch of output.

``batched``: samples per second of the batched solve (``BatchSolver``:
``solvers.solve_batch_iter``, ``lanes`` samples per vmapped program, on worker
threads: one per device, or per core on CPU devices) against one sample at a
time in one thread (``solvers.solve`` per sample, the path before batching),
at the same tolerance, on the 1-D KS workload (256 samples, rtol 1e-6) and a
2-D Navier-Stokes case, compilation excluded; and whether the stored bytes of
the first samples are identical when solved in batches of 1, 3 and the full size. Both paths
are timed alternately over a few rounds, and medians are quoted.
"""

from __future__ import annotations

import math
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path


def bench(samples: int = 4, t_end: float = 10.0, n_times: int = 101, rtol: float = 1e-6, atol: float = 1e-8,
          batched: bool = True) -> dict:
    """Generate a ks1d-sized split and time solving vs writing.

    Returns a dict: ``samples``, ``solve_s``, ``write_s``, ``samples_per_s_solve``
    (without writing), ``samples_per_s`` (with writing), ``write_fraction``
    (``write_s / solve_s``, the target is < 0.1), ``batch_bytes`` (one batch of
    output), ``peak_write_bytes`` (tracemalloc peak while storing),
    ``peak_over_batch`` (target < 2), ``max_rss_mb``, ``devices``; ``batched``: :func:`bench_batched`'s
    figures (``batched=False`` leaves them out).
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
        clock = _generate._Clock()
        _generate._assemble(spec, "train", 0, samples, path, identity, journal,
                            lambda: _generate._cost(_generate._prior_cost(journal, True), clock))
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
        "batched": bench_batched() if batched else None,
    }


def _cases(ks_samples: int, ns_samples: int):
    from datasets import DatasetSpec, ICSpec, SplitSizes

    def spec(n, **kw):
        return DatasetSpec(**kw, splits=SplitSizes(train=n, val=0, calibration=0, test=0), batch_size=n)

    return {
        "ks1d N=256 L=60 t_end=10 rtol=1e-6": spec(ks_samples, pde="ks", shape=(256,), length=(60.0,), t_end=10.0,
                                                   n_times=101, rtol=1e-6, atol=1e-8,
                                                   ic=ICSpec(kind="fourier", cutoff=8, amplitude=1.0)),
        "ns2d 64x64 t_end=1 rtol=1e-6": spec(ns_samples, pde="navier_stokes", shape=(64, 64), t_end=1.0, n_times=11,
                                            rtol=1e-6, atol=1e-8, ic=ICSpec(kind="fourier", cutoff=4, amplitude=1.0)),
    }


def bench_batched(ks_samples: int = 256, ns_samples: int = 32, reference_samples: int = 32,
                  same_bytes_samples: int = 8, rounds: int = 3) -> dict:
    """Samples per second, batched vs one at a time at equal tolerance, and bytes across batch sizes.

    Per case: ``batched_per_s`` over all its samples (one ``BatchSolver`` call on every local device, with
    its default worker threads, ``workers``; a sample the solver gives up on counts, as the work it cost,
    and ``failed`` counts them);
    ``one_at_a_time_per_s`` over the first ``reference_samples`` of them (``solvers.solve`` each, the
    same tolerance, refinement and method); both are medians over ``rounds`` rounds that time the two
    paths alternately (``*_rounds``: every round's figure), so a slow spell of a shared machine falls
    on both; ``speedup`` the ratio of the medians; ``same_bytes``: the first
    ``same_bytes_samples`` samples give identical float64 bytes in batches of 1, 3 and all of them.
    Each path is warmed up on one sample outside the timing.
    """
    import jax
    import numpy as np

    import solvers
    from datasets._ic import draw_sample
    from datasets._pdes import build_pde
    from datasets._solve import BatchSolver

    rows = {}
    for name, spec in _cases(ks_samples, ns_samples).items():
        n = spec.splits.train
        draws = [draw_sample(spec, "train", i, 0) for i in range(n + 1)]  # the last: the warm-up
        u0 = np.stack([d[0] for d in draws])
        params = np.stack([d[1] for d in draws]).reshape(n + 1, -1)
        times = spec.problem.times(spec)
        workers = None

        def batched(idx, size=None):
            nonlocal workers
            got = {}

            def sink(j, u, err):
                got[j] = u

            with BatchSolver(spec) as solver:
                workers = len(solver.devices)
                for a in range(0, len(idx), size or len(idx)):
                    part = idx[a:a + (size or len(idx))]
                    solver(u0[part], params[part], lambda k, u, e, part=part: sink(part[k], u, e))
            return got  # a sample the solver gave up on (as generation would redraw it) is missing

        def one(j):
            physics = dict(spec.params, **{k: float(v) for k, v in zip(spec.param_names, params[j])})
            pde = build_pde(spec.pde_class, spec.grid, physics, spec.forcing)
            try:
                return solvers.solve(pde, u0[j], times, rtol=spec.rtol, atol=spec.atol, refine=True,
                                     method=spec.method)
            except (solvers.SolverDivergedError, solvers.ResolutionError) as e:
                return e

        batched([n])
        one(n)
        m = min(reference_samples, n)
        batched_rates, single_rates = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            full = batched(list(range(n)))
            batched_rates.append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ref = [one(j) for j in range(m)]
            single_rates.append(m / (time.perf_counter() - t0))
        k = min(same_bytes_samples, n)
        same = all(got.keys() == {j for j in full if j < k}
                   and all(np.asarray(got[j]).tobytes() == np.asarray(full[j]).tobytes() for j in got)
                   for got in (batched(list(range(k)), 1), batched(list(range(k)), 3)))
        solved = {j: r for j, r in enumerate(ref) if isinstance(r, solvers.Solution)}
        rows[name] = {
            "samples": n, "one_at_a_time_samples": m, "rtol": spec.rtol, "devices": jax.local_device_count(),
            "workers": workers, "lanes": solvers._solve.lanes_for(spec.grid),
            "batched_per_s": statistics.median(batched_rates), "one_at_a_time_per_s": statistics.median(single_rates),
            "speedup": statistics.median(batched_rates) / statistics.median(single_rates),
            "batched_per_s_rounds": batched_rates, "one_at_a_time_per_s_rounds": single_rates, "same_bytes": bool(same),
            "failed": n - len(full), "one_at_a_time_failed": m - len(solved),
            "same_as_solve": solved.keys() == {j for j in full if j < m}
            and all(np.array_equal(np.asarray(r.u), full[j]) for j, r in solved.items()),
        }
    return {"cases": rows}


if __name__ == "__main__":
    import json

    print(json.dumps(bench()))
