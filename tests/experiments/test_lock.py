"""One writer per output folder: a second writer is refused in one line, a killed holder's lock is taken over."""

import os
import signal
import subprocess
import sys
import time

import pytest

from experiments._lock import LOCK_NAME, LockedError, output_lock

HOLD = """
import sys, time
from experiments._lock import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(folder):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                         cwd=os.getcwd())
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    p = _holder(tmp_path)
    try:
        with pytest.raises(LockedError, match=rf"being written by another byai process \(pid {p.pid}\)"):
            with output_lock(tmp_path):
                pass
    finally:
        p.kill()
        p.wait()


def test_lock_of_a_killed_process_is_taken_over_and_removed_on_exit(tmp_path):
    p = _holder(tmp_path)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the killed holder left its file behind
    with output_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path):
            raise RuntimeError("boom")
    t0 = time.perf_counter()
    with output_lock(tmp_path):
        pass
    assert time.perf_counter() - t0 < 1.0


GENERATE = """
[data]
pde = "burgers"
params = { nu = 0.2 }
shape = [32]
t_end = 0.5
n_times = 6
ic = { kind = "fourier", cutoff = 2, amplitude = 0.3 }
splits = { train = 2, val = 0, calibration = 0, test = 0 }
batch_size = 2
"""


def test_generate_refuses_a_second_writer_in_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(GENERATE)
    out = tmp_path / "data"
    p = _holder(out)
    try:
        r = subprocess.run([sys.executable, "-m", "experiments", "generate", str(config), "--out", str(out),
                            "--quiet"], capture_output=True, text=True, timeout=300)
    finally:
        p.kill()
        p.wait()
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"byai generate: error: {out} is being written by another byai process (pid {p.pid}); wait for it to "
        "finish or choose another output folder"]
    assert not (out / "train.h5").exists()


@pytest.mark.parametrize("verb", ["train", "audit", "hybrid"])
def test_train_audit_and_hybrid_refuse_a_second_writer_in_one_line(tmp_path, capsys, tiny_run, verb):
    from experiments._cli import main

    from .conftest import copy_run, error_line

    config, reference = tiny_run
    run = copy_run(reference, tmp_path / "run")
    out = run / {"train": "model", "audit": "audit", "hybrid": "hybrid"}[verb]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    inputs = ["--data", run / "data"] + (["--resume"] if verb == "train" else ["--model", run / "model"])
    p = _holder(out)
    try:
        rc = main([str(a) for a in (verb, config, *inputs, "--out", out, "--quiet")])
    finally:
        p.kill()
        p.wait()
    assert rc == 2
    assert error_line(capsys.readouterr().err) == (
        f"byai {verb}: error: {out} is being written by another byai process (pid {p.pid}); wait for it to "
        "finish or choose another output folder")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME} == before
