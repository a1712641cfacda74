"""The training loader: windows, normalisation, seeded shuffling, exact resume, prefetch, sharding."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import datasets
import solvers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    u = rng.normal(loc=[1.0, -2.0], scale=[0.5, 3.0], size=(5, 6, 16, 2))
    path = tmp_path / "train.h5"
    datasets.write(path, u, t=np.arange(6) * 0.1, grid=solvers.Grid((16,)), params=np.arange(5.0)[:, None],
                   param_names=["nu"], pde="burgers")
    return path, u


def test_stats_are_the_per_channel_mean_and_std(data):
    path, u = data
    stats = datasets.Loader(path, batch_size=2).stats
    np.testing.assert_allclose(stats.mean, u.reshape(-1, 2).mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, u.reshape(-1, 2).std(0), rtol=1e-12)
    np.testing.assert_allclose(stats.denormalize(stats.normalize(u)), u, rtol=1e-12)
    # stored with the data and the same when recomputed by chunks
    from datasets._loader import compute_stats
    import h5py
    with h5py.File(path, "r+") as f:
        del f.attrs["stats_mean"]
    np.testing.assert_allclose(compute_stats(path).std, stats.std, rtol=1e-12)


@pytest.mark.parametrize("cache_bytes", [None, 0])  # in memory, and read by chunks from the file
def test_windows_pair_inputs_with_their_targets(data, cache_bytes):
    path, u = data
    kw = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
    loader = datasets.Loader(path, batch_size=3, input_steps=2, target_steps=3, shuffle=False, **kw)
    assert loader.windows_per_sample == 6 - 2 - 3 + 1 == 2
    assert len(loader) == 10 and loader.steps_per_epoch == 3
    stats = loader.stats
    seen = []
    for step in range(loader.steps_per_epoch):
        b = loader.batch(step)
        assert b["input"].shape == (3, 16, 4) and b["target"].shape == (3, 3, 16, 2)
        assert b["input"].dtype == np.float32 and b["params"].shape == (3, 1)
        for j, w in enumerate(loader.indices(step)):
            s, t0 = divmod(int(w), 2)
            x = stats.normalize(u[s, t0:t0 + 2])  # (2, 16, 2), frame-major along channels
            np.testing.assert_allclose(b["input"][j], np.concatenate([x[0], x[1]], axis=-1), rtol=1e-6)
            np.testing.assert_allclose(b["target"][j], stats.normalize(u[s, t0 + 2:t0 + 5]), rtol=1e-6)
            assert b["params"][j, 0] == s
            seen.append(int(w))
    assert seen == list(range(9))  # in order without shuffling, the remainder dropped


def test_shuffling_is_a_pure_function_of_seed_and_step(data):
    path, _ = data
    a = datasets.Loader(path, batch_size=2, seed=3)
    b = datasets.Loader(path, batch_size=2, seed=3)
    steps = [7, 0, 31, 7, 15]
    first = {s: a.batch(s)["target"] for s in steps}
    for s in reversed(steps):  # any order of requests gives the same batch: resume == ask for the step
        np.testing.assert_array_equal(first[s], b.batch(s)["target"])
    epoch0 = np.concatenate([a.indices(k) for k in range(a.steps_per_epoch)])
    epoch1 = np.concatenate([a.indices(a.steps_per_epoch + k) for k in range(a.steps_per_epoch)])
    assert len(a) == 25 and a.steps_per_epoch == 12  # 24 windows per epoch, one dropped
    for epoch in (epoch0, epoch1):  # each window at most once per epoch
        assert len(set(epoch.tolist())) == 24 and set(epoch.tolist()) <= set(range(25))
    assert not np.array_equal(epoch0, epoch1)
    c = datasets.Loader(path, batch_size=2, seed=4)
    assert not np.array_equal(c.indices(0), a.indices(0))


def test_iterate_prefetches_the_same_batches(data):
    path, _ = data
    loader = datasets.Loader(path, batch_size=4, prefetch=3)
    got = list(loader.iterate(start_step=5, num_steps=6))
    assert [s for s, _ in got] == list(range(5, 11))
    for s, b in got:
        np.testing.assert_array_equal(b["input"], loader.batch(s)["input"])
    it = loader.iterate(0)  # endless; closing it stops the thread
    next(it)
    it.close()


def test_bad_arguments(data):
    path, _ = data
    with pytest.raises(ValueError, match="input_steps"):
        datasets.Loader(path, batch_size=2, input_steps=0)
    with pytest.raises(ValueError, match="exceeds the 6 frames"):
        datasets.Loader(path, batch_size=2, input_steps=4, target_steps=3)
    with pytest.raises(ValueError, match="batch_size"):
        datasets.Loader(path, batch_size=1000)
    with pytest.raises(datasets.DatasetError):
        datasets.Loader(path.with_name("missing.h5"), batch_size=2)


def test_batches_are_sharded_over_four_devices(data):
    path, _ = data
    code = textwrap.dedent(f"""
        import jax, numpy as np
        import datasets
        mesh = jax.make_mesh((4,), ("data",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        plain = datasets.Loader({str(path)!r}, batch_size=8, seed=1)
        placed = datasets.Loader({str(path)!r}, batch_size=8, seed=1, sharding=sharding)
        for step, b in placed.iterate(0, 3):
            ref = plain.batch(step)
            for k in ("input", "target", "params"):
                assert b[k].sharding == sharding, b[k].sharding
                assert len(b[k].addressable_shards) == 4
                assert b[k].addressable_shards[0].data.shape[0] == 2
                np.testing.assert_array_equal(np.asarray(b[k]), ref[k])
        print("ok", jax.device_count())
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok 4" in r.stdout, r.stderr[-2000:]


_TWO_PROCESS = """
import os, sys, jax, numpy as np
jax.distributed.initialize(f"127.0.0.1:{os.environ['PORT']}", num_processes=2, process_id=int(os.environ['PID']))
import datasets
mesh = jax.make_mesh((4,), ("data",))  # 2 devices in each process
sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
plain = datasets.Loader(sys.argv[1], batch_size=8, seed=2)
placed = datasets.Loader(sys.argv[1], batch_size=8, seed=2, sharding=sharding)
assert placed._local_rows(8).size == 4  # each process reads only its half of the batch
for step, b in placed.iterate(3, 2):
    ref = plain.batch(step)
    for k in ("input", "target", "params"):
        assert b[k].shape == ref[k].shape and b[k].sharding == sharding
        for shard in b[k].addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), ref[k][shard.index])
print("ok", jax.process_index(), jax.device_count(), flush=True)
"""


@pytest.mark.slow
def test_two_processes_each_load_their_addressable_rows(data):
    import socket

    path, _ = data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", PORT=str(port), PID=str(pid),
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
        procs.append(subprocess.Popen([sys.executable, "-c", _TWO_PROCESS, str(path)], env=env, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for pid, p in enumerate(procs):
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0 and f"ok {pid} 4" in out, out[-3000:]
