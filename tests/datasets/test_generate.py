"""Generation: determinism over device counts, kill -9 and resume, two processes, failures, refusals."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import datasets
import solvers
from datasets import _generate

from tests.datasets._gen_worker import tiny_spec

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_gen_worker.py")


def _env(devices=1, **extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _worker(out, devices=1, **extra):
    return subprocess.Popen([sys.executable, str(WORKER), str(out)], env=_env(devices, **extra), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _u_bytes(path):
    with h5py.File(path, "r") as f:
        return f["u"][...].tobytes(), f.attrs["sha256"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny config generated in this process (whatever its device count) — the bytes every run must equal."""
    out = tmp_path_factory.mktemp("ref")
    paths = datasets.generate(tiny_spec(), out, quiet=True)
    return paths


def test_reference_file_is_complete_honest_and_verifiable(reference):
    ds = datasets.open(reference["train"], verify=True)
    assert ds["u"].shape == (6, 5, 32, 1) and ds["u"].dtype == np.float64
    assert set(reference) == {"train", "test"}
    assert np.all(ds["complete"].values == 1)
    nu = ds["params"].values[:, 0]
    assert np.all((nu >= 0.2) & (nu <= 0.4)) and len(np.unique(nu)) == 6
    # the recorded error bound meets the recorded tolerance on every frame
    u = ds["u"].values
    tol = ds.attrs["rtol"] * np.sqrt(np.mean(u**2, axis=(2, 3))) + ds.attrs["atol"]
    err = ds["error_estimate"].values
    assert np.all(err[:, 1:] > 0) and np.all(err <= tol * (1 + 1e-12))
    # each sample equals an independent solve of its own initial condition and physics
    pde, grid = datasets.pde_from_attrs(ds, sample=3)
    assert pde.nu == pytest.approx(nu[3])
    sol = solvers.solve(pde, u[3, 0], ds["time"].values, rtol=1e-7, atol=1e-10)  # 100x tighter
    assert np.sqrt(np.mean((np.asarray(sol.u) - u[3]) ** 2, axis=(1, 2))) == pytest.approx(0, abs=1e-6)
    assert np.all(np.sqrt(np.mean((np.asarray(sol.u) - u[3]) ** 2, axis=(1, 2))) <= err[3] + 1e-9)
    # a train sample differs from the test sample of the same index (split seeds differ)
    test = datasets.open(reference["test"])
    assert not np.allclose(test["u"].values[0, 0], u[0, 0])
    ds.close()
    test.close()


@pytest.mark.slow
def test_four_devices_and_two_processes_give_identical_bytes(reference, tmp_path):
    ref_bytes, ref_sha = _u_bytes(reference["train"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    four = _worker(tmp_path / "four", devices=4)
    p0 = _worker(tmp_path / "multi", devices=1, BYAI_TEST_PROCESS=0, BYAI_TEST_PORT=port)
    p1 = _worker(tmp_path / "multi", devices=1, BYAI_TEST_PROCESS=1, BYAI_TEST_PORT=port)
    assert "devices 4 processes 1" in _finish(four)
    assert "processes 2" in _finish(p0) and "processes 2" in _finish(p1)
    assert _u_bytes(tmp_path / "four" / "train.h5") == (ref_bytes, ref_sha)
    # two processes: one shard file each, the split file presents them as one (virtual datasets)
    multi = tmp_path / "multi"
    assert (multi / "train.p0.h5").exists() and (multi / "train.p1.h5").exists()
    with h5py.File(multi / "train.h5", "r") as f:
        assert f["u"].is_virtual and f.attrs["n_shards"] == 2
    with h5py.File(multi / "train.p1.h5", "r") as f:
        assert f["u"].shape[0] == 3 and list(f["sample"][...]) == [3, 4, 5]
    assert _u_bytes(multi / "train.h5") == (ref_bytes, ref_sha)
    ds = datasets.open(multi / "train.h5", verify=True)
    ref = datasets.open(reference["train"])
    np.testing.assert_array_equal(ds["params"].values, ref["params"].values)
    # normalisation statistics combined from the shards equal those of the whole
    for key in ("stats_mean", "stats_std"):
        np.testing.assert_allclose(ds.attrs[key], ref.attrs[key], rtol=1e-12)
    ds.close()
    ref.close()
    assert not list(multi.glob(".*partial"))
    (multi / "train.p1.h5").rename(multi / "elsewhere.h5")
    with pytest.raises(datasets.DatasetError, match="shard file train.p1.h5 is missing"):
        datasets.open(multi / "train.h5")


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_identical_bytes(reference, tmp_path):
    out = tmp_path / "killed"
    journal = out / ".train.h5.partial"
    # the worker hangs inside the solve of sample 2, so the kill lands mid-run at a known point
    proc = _worker(out, BYAI_TEST_BATCH=1, BYAI_TEST_STALL_AT=2)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(journal.glob("part-*"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    parts_before = sorted(p.name for p in journal.glob("part-*"))
    assert len(parts_before) == 2 and not (out / "train.h5").exists()
    solved = []
    real = _generate._solve_block

    def counting(spec, split, block, solver):
        solved.extend((split, i) for i in block)
        return real(spec, split, block, solver)

    _generate._solve_block = counting
    try:
        datasets.generate(tiny_spec(), out, quiet=True)
    finally:
        _generate._solve_block = real
    done = {int(p.split("-")[1]) for p in parts_before}
    assert not done & {i for s, i in solved if s == "train"}, "a finished sample was solved again"
    assert len([1 for s, _ in solved if s == "train"]) == 6 - len(parts_before)
    assert _u_bytes(out / "train.h5") == _u_bytes(reference["train"])
    assert not journal.exists()


def test_mismatched_config_is_refused_not_overwritten(reference, tmp_path, monkeypatch):
    out = reference["train"].parent
    before = reference["train"].read_bytes()
    with pytest.raises(datasets.DatasetError, match="different config .*rtol"):
        datasets.generate(dataclasses.replace(tiny_spec(), rtol=1e-6), out, quiet=True)
    with pytest.raises(datasets.DatasetError, match="different config .*n_samples"):
        datasets.generate(tiny_spec(splits={"train": 7, "val": 0, "calibration": 0, "test": 1}), out, quiet=True)
    assert reference["train"].read_bytes() == before
    # a finished run of the same config is a no-op (a different batch size is the same config)
    solved = []
    monkeypatch.setattr(_generate, "_solve_block", lambda spec, split, block, solver: solved.append(block))
    datasets.generate(tiny_spec(batch_size=3), out, quiet=True)
    assert solved == [] and reference["train"].read_bytes() == before
    # a journal of another config is refused too
    other = tmp_path / "journal"
    (other / ".train.h5.partial").mkdir(parents=True)
    (other / ".train.h5.partial" / "config.json").write_text('{"seed": 1}')
    with pytest.raises(datasets.DatasetError, match="interrupted run of a different config"):
        datasets.generate(tiny_spec(), other, quiet=True)
    # a foreign file where a split goes is refused, not overwritten
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with h5py.File(foreign / "test.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(datasets.DatasetError, match="not a byai dataset of this config"):
        datasets.generate(tiny_spec(), foreign, quiet=True)


def test_failed_sample_stops_with_its_index_and_reason(tmp_path):
    # nu = 0.02 on 32 points cannot be resolved to 1e-5: a real ResolutionError
    spec = tiny_spec(param_ranges={}, params={"nu": 0.02}, splits={"train": 1, "val": 0, "calibration": 0,
                                                                        "test": 0}, ic={"kind": "fourier",
                                                                                        "cutoff": 3, "amplitude": 1.0})
    with pytest.raises(solvers.ResolutionError, match=r"train sample 0: grid .*redraw_failed"):
        datasets.generate(spec, tmp_path, quiet=True)
    assert not (tmp_path / "train.h5").exists()


class _FlakySolver:
    """Fails the first draw of samples 1 and 2, returns the initial condition repeated otherwise."""

    def __init__(self):
        self.calls = []

    def __call__(self, u0, params, sink):
        out = []
        for j, x in enumerate(u0):
            key = float(x.ravel()[0])  # identifies the draw
            self.calls.append(key)
            first = self.calls.count(key) == 1
            if first and len(self.calls) in (2, 3):
                out.append(solvers.SolverDivergedError("the state became non-finite"))
            else:
                sink(j, np.repeat(x[None], 5, axis=0), np.full(5, 1e-9))
                out.append(None)
        return out


def test_redraw_failed_redraws_deterministically_and_counts(tmp_path):
    spec = tiny_spec(redraw_failed=True)
    block = _generate._solve_block(spec, "train", [0, 1, 2, 3], _FlakySolver())
    assert list(block["redraws"]) == [0, 1, 1, 0]
    again = _generate._solve_block(spec, "train", [0, 1, 2, 3], _FlakySolver())
    np.testing.assert_array_equal(block["u"], again["u"])
    # the redrawn samples are new draws (attempt 1), the others the usual ones
    from datasets._ic import draw_sample
    np.testing.assert_array_equal(block["u"][1, 0], draw_sample(spec, "train", 1, attempt=1)[0])
    np.testing.assert_array_equal(block["u"][0, 0], draw_sample(spec, "train", 0)[0])
    with pytest.raises(solvers.SolverDivergedError, match="train sample 1: the state became non-finite"):
        _generate._solve_block(tiny_spec(), "train", [0, 1, 2, 3], _FlakySolver())


def test_float32_storage_adds_the_rounding_to_the_error(tmp_path):
    spec = tiny_spec(dtype="float32", splits={"train": 2, "val": 0, "calibration": 0, "test": 0})
    path = datasets.generate(spec, tmp_path, quiet=True)["train"]
    ref = datasets.generate(tiny_spec(splits={"train": 2, "val": 0, "calibration": 0, "test": 0}),
                            tmp_path / "f64", quiet=True)["train"]
    with h5py.File(path) as f32, h5py.File(ref) as f64:
        assert f32["u"].dtype == np.float32
        u64 = f64["u"][...]
        rounding = np.sqrt(np.mean((f32["u"][...].astype(np.float64) - u64) ** 2, axis=(2, 3)))
        assert np.all(rounding > 0)
        np.testing.assert_allclose(f32["error_estimate"][...], f64["error_estimate"][...] + rounding, rtol=1e-12)


def test_death_during_assembly_or_before_cleanup_resumes_to_the_same_bytes(reference, tmp_path):
    """The two windows kill -9 rarely hits: inside the HDF5 assembly, and between the rename and the cleanup."""
    out = tmp_path / "asm"
    real = _generate._assemble

    def dies_midway(spec, split, lo, hi, path, *rest):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(b"\x89HDF\r\n\x1a\n half an HDF5 file")  # what a killed assembly leaves
        raise KeyboardInterrupt

    _generate._assemble = dies_midway
    try:
        with pytest.raises(KeyboardInterrupt):
            datasets.generate(tiny_spec(), out, quiet=True)
    finally:
        _generate._assemble = real
    assert (out / ".train.h5.partial").exists() and not (out / "train.h5").exists()
    with pytest.raises(datasets.DatasetError, match="rerun the same generate command"):
        datasets.open(out / "train.h5")
    solved = []
    original = _generate._solve_block
    _generate._solve_block = lambda *a: solved.append(a) or original(*a)
    try:
        datasets.generate(tiny_spec(), out, quiet=True)
        assert [a[1] for a in solved] == ["test"]  # every train sample came from the journal
        # renamed but killed before the journal was removed: the rerun only cleans up
        (out / ".test.h5.partial").mkdir()
        (out / ".test.h5.partial" / "config.json").write_text(json.dumps(tiny_spec().identity("test")))
        solved.clear()
        datasets.generate(tiny_spec(), out, quiet=True)
        assert solved == [] and not (out / ".test.h5.partial").exists()
    finally:
        _generate._solve_block = original
    assert _u_bytes(out / "train.h5") == _u_bytes(reference["train"])
    assert _u_bytes(out / "test.h5") == _u_bytes(reference["test"])


def test_a_samples_key_is_the_eager_fold_in_chain():
    """``sample_key`` is compiled; its bits are those of the plain ``fold_in`` chain, for any seed."""
    import jax

    from datasets._ic import sample_key
    from datasets._spec import SPLITS

    for seed in (0, 7, 2**31 + 5, 2**40 + 3, 2**63 - 1):
        for split in ("train", "test"):
            for index, attempt in ((0, 0), (12345, 2)):
                key = jax.random.fold_in(jax.random.key(seed), SPLITS.index(split))
                eager = jax.random.fold_in(jax.random.fold_in(key, index), attempt)
                got = sample_key(seed, split, index, attempt)
                assert np.array_equal(jax.random.key_data(got), jax.random.key_data(eager)), (seed, split, index)
