"""Batched solving: bytes independent of batch size and device count, each sample within its tolerance."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import solvers
from datasets._ic import draw_sample
from datasets._solve import BatchSolver

from tests.datasets._gen_worker import tiny_spec

ROOT = Path(__file__).resolve().parents[2]
N = 16

# Solves the first N train samples of the tiny config (per-sample nu) in batches of 1, 3 and 16 on every
# local device (with the default worker threads), then all N with 1 and 3 worker threads, and prints the
# SHA-256 of each run's bytes.
_SCRIPT = f"""
import hashlib, sys
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from datasets._ic import draw_sample
from datasets._solve import BatchSolver
from tests.datasets._gen_worker import tiny_spec
spec = tiny_spec()
draws = [draw_sample(spec, "train", i, 0) for i in range({N})]
u0 = np.stack([d[0] for d in draws]); params = np.stack([d[1] for d in draws]).reshape({N}, -1)
for size, workers in ((1, None), (3, None), (16, None), (16, 1), (16, 3)):
    u = np.zeros((len(u0), spec.n_times, *spec.shape, 1)); e = np.zeros((len(u0), spec.n_times))
    with BatchSolver(spec, workers=workers) as solver:
        for a in range(0, len(u0), size):
            def sink(k, uk, ek, a=a):
                u[a + k], e[a + k] = uk, ek
            assert all(f is None for f in solver(u0[a:a + size], params[a:a + size], sink))
    print(size, jax.local_device_count(), hashlib.sha256(u.tobytes() + e.tobytes()).hexdigest())
"""


def _hashes(devices):
    env = dict(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", PATH="/usr/bin:/bin",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    lines = [line.split() for line in out.stdout.strip().splitlines()]
    assert [int(x[1]) for x in lines] == [devices] * 5
    return [x[2] for x in lines]


def _tiny_samples(n):
    """The tiny config, the PDEs (per-sample nu) and initial states of its first ``n`` train samples, its times."""
    spec = tiny_spec()
    draws = [draw_sample(spec, "train", i, 0) for i in range(n)]
    pdes = [solvers.Burgers(spec.grid, nu=float(p[0])) for _, p in draws]
    return spec, pdes, [u for u, _ in draws], spec.problem.times(spec)


def test_bytes_do_not_depend_on_batch_size_worker_threads_or_device_count():
    one, four = _hashes(1), _hashes(4)
    assert len(set(one)) == 1, one  # batch sizes 1, 3, 16, and 1 or 3 worker threads, on one device
    assert four == one  # and on four devices


def test_cpu_devices_get_a_worker_thread_per_core():
    spec = tiny_spec()
    with BatchSolver(spec) as solver:
        assert len(solver.devices) == max(jax.local_device_count(), solvers.default_workers())
    with BatchSolver(spec, workers=3) as solver:
        assert len(solver.devices) == 3
    with pytest.raises(ValueError, match="workers"):
        BatchSolver(spec, workers=0)


def test_each_batched_sample_meets_its_tolerance_and_bounds_a_tighter_reference():
    spec, pdes, u0s, times = _tiny_samples(5)
    results = solvers.solve_batch(pdes, u0s, times, rtol=spec.rtol, atol=spec.atol)
    for pde, u0, sol in zip(pdes, u0s, results):
        assert isinstance(sol, solvers.Solution)
        u, err = np.asarray(sol.u), np.asarray(sol.error)
        rms = np.sqrt(np.mean(u**2, axis=(1, 2)))
        assert np.all(err <= spec.rtol * rms + spec.atol)
        ref = solvers.solve(pde, u0, times, rtol=spec.rtol / 100, atol=spec.atol / 100)
        true = np.sqrt(np.mean((u - np.asarray(ref.u)) ** 2, axis=(1, 2)))
        assert np.all(true <= err + np.asarray(ref.error))
        assert np.all(true[1:] > 0)  # a real comparison, not the same bits


def test_a_batched_sample_equals_its_solve_alone_and_failures_come_back_in_place():
    spec, pdes, u0s, times = _tiny_samples(3)
    results = solvers.solve_batch(pdes, u0s, times, rtol=spec.rtol, atol=spec.atol, max_steps=3)
    assert all(isinstance(r, solvers.SolverDivergedError) for r in results)
    batch = solvers.solve_batch(pdes, u0s, times, rtol=spec.rtol, atol=spec.atol)
    alone = solvers.solve(pdes[1], u0s[1], times, rtol=spec.rtol, atol=spec.atol)
    assert np.asarray(batch[1].u).tobytes() == np.asarray(alone.u).tobytes()
    assert np.asarray(batch[1].error).tobytes() == np.asarray(alone.error).tobytes()


def test_lanes_suit_the_grid_and_one_lane_is_solve_itself():
    lanes_for = solvers._solve.lanes_for
    assert [lanes_for(solvers.Grid((n,))) for n in (64, 256, 512, 1024, 2048, 4096)] == [8, 8, 8, 4, 2, 1]
    assert lanes_for(solvers.Grid((64, 64))) == 1 and lanes_for(solvers.Grid((32, 32))) == 4
    # one lane (a large grid, or width=1) runs solve's own program: the same bits as solve
    spec, pdes, u0s, times = _tiny_samples(3)
    got = dict(solvers._solve._solve_batch(pdes, u0s, times, spec.rtol, spec.atol, True, "etdrk4", 100_000, 2,
                                           width=1))
    for j in range(3):
        alone = solvers.solve(pdes[j], u0s[j], times, rtol=spec.rtol, atol=spec.atol)
        assert np.asarray(got[j].u).tobytes() == np.asarray(alone.u).tobytes()
        assert np.asarray(got[j].error).tobytes() == np.asarray(alone.error).tobytes()
