"""SIGTERM (what a batch scheduler sends before it kills a job) stops generate, train and run like Ctrl-C: one
line, exit 143, the journal and the checkpoints kept; rerunning the command finishes with the bytes of an
undisturbed run."""

import json
import signal
import time

import pytest

from experiments._cli import EXIT_TERMINATED, main

from .conftest import SPLITS, copy_run, same_files, same_model, start

TERMINATED = "terminated (SIGTERM); what was complete is kept and a rerun resumes"


def wait_for(p, ready, what, timeout=300):
    """Poll until ``ready()``; fail naming ``what`` when the process ends or the time runs out first."""
    t0 = time.monotonic()
    while not ready():
        if p.poll() is not None:
            pytest.fail(f"the command ended (status {p.returncode}) before {what}: {p.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            p.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.05)


def terminate(p) -> str:
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == EXIT_TERMINATED, err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def finished_checkpoint(model):
    return lambda: (model / "checkpoints" / "20").is_dir()


@pytest.mark.slow
def test_sigterm_stops_generate_and_a_rerun_gives_the_same_bytes(tmp_path, tiny_run):
    config, reference = tiny_run
    out = tmp_path / "data"
    p = start("generate", config, "--out", out, "--quiet")
    wait_for(p, lambda: (out / "train.h5").is_file(), "the first split file")
    assert terminate(p) == f"byai generate: {TERMINATED}"
    assert (out / "train.h5").is_file()
    assert main(["generate", str(config), "--out", str(out), "--quiet"]) == 0
    same_files(out, reference / "data", [f"{s}.h5" for s in SPLITS])


@pytest.mark.slow
def test_sigterm_stops_train_and_a_rerun_resumes_to_the_same_model(tmp_path, tiny_run):
    config, reference = tiny_run
    model = tmp_path / "model"
    p = start("train", config, "--data", reference / "data", "--out", model, "--quiet")
    wait_for(p, finished_checkpoint(model), "the first checkpoint")
    assert terminate(p) == f"byai train: {TERMINATED}"
    assert (model / "checkpoints" / "20").is_dir()
    assert main(["train", str(config), "--data", str(reference / "data"), "--out", str(model), "--resume",
                 "--quiet"]) == 0
    same_model(model, reference / "model")
    losses = [[json.loads(line)["loss"] for line in (m / "metrics.jsonl").read_text().splitlines()]
              for m in (model, reference / "model")]
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_sigterm_stops_run_and_a_rerun_completes(tmp_path, tiny_run, capsys):
    config, reference = tiny_run
    out = tmp_path / "run"
    p = start("run", config, "--out", out, "--quiet")
    wait_for(p, finished_checkpoint(out / "model"), "the first checkpoint")
    assert terminate(p) == f"byai run: {TERMINATED}"
    assert set(json.loads((out / "run.json").read_text())) == {"generate"}
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "[generate] complete (resumed: not rerun)" in captured.err
    assert "audit verdict: PASSED" in captured.out
    same_files(out / "data", reference / "data", [f"{s}.h5" for s in SPLITS])
    same_model(out / "model", reference / "model")
