"""Training: the fit to an exact operator, exact resume, refusal of mismatched checkpoints, the NaN stop,
and the same loss curve on 1 device, 4 devices and 2 processes."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import datasets
import surrogates
from experiments._cli import main as byai

from tests.surrogates._heat import heat_trajectories, write_heat

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[model]
kind = "fno"
width = 8
modes = [8]
depth = 1

[train]
steps = 12
batch_size = 8
lr = 3e-3
warmup = 2
val_every = 6
checkpoint_every = 6
{extra}
"""


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(CONFIG.format(extra=extra))
    return path


def curve(model_dir: Path) -> np.ndarray:
    lines = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, len(lines) + 1))
    return np.array([r["loss"] for r in lines])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_heat(tmp_path_factory.mktemp("heat"), train=16, val=4, n_times=4, n=32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """12 steps straight on one device, through the CLI."""
    tmp = tmp_path_factory.mktemp("ref")
    config = write_config(tmp / "c.toml")
    assert byai(["train", str(config), "--data", str(data), "--out", str(tmp / "m"), "--quiet"]) == 0
    return config, tmp / "m"


def test_cli_writes_metrics_checkpoints_and_a_loadable_model(reference, data):
    _, model_dir = reference
    lines = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    assert {"step", "loss", "lr", "samples_per_s"} <= set(lines[0])
    assert [r["step"] for r in lines if "val_loss" in r] == [6, 12]
    assert lines[0]["lr"] == 0.0 and lines[2]["lr"] == pytest.approx(3e-3)
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert sorted(p.name for p in (model_dir / "checkpoints").iterdir()) == ["12", "6"]
    step, info = surrogates.load_stepper(model_dir)
    assert info["dataset_sha256"] == datasets.open(data / "train.h5").attrs["sha256"]
    assert info["pde"] == "diffusion" and info["model"]["width"] == 8
    u = heat_trajectories(1, 1, n=32, seed=5)[0, 0].astype(np.float64)
    v = jax.jit(step)(u)
    assert v.shape == u.shape and v.dtype == np.float64 and np.all(np.isfinite(v))


def test_resume_equals_straight_run(reference, data, tmp_path):
    config, straight = reference
    out = tmp_path / "m"
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--steps", "5", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["5"]  # the last step always checkpoints
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    a, b = curve(out), curve(straight)
    assert len(a) == 12
    assert abs(a[-1] - b[-1]) <= 1e-6 * abs(b[-1])
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_existing_checkpoint_needs_resume(reference, data, capsys):
    config, model_dir = reference
    out = model_dir.parent / "copy"
    shutil.copytree(model_dir, out)
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_mismatched_checkpoint_is_refused(reference, data, tmp_path, capsys):
    config, model_dir = reference
    out = tmp_path / "m"
    shutil.copytree(model_dir, out)
    wider = write_config(tmp_path / "wider.toml").read_text().replace("width = 8", "width = 12")
    (tmp_path / "wider.toml").write_text(wider)
    assert byai(["train", str(tmp_path / "wider.toml"), "--data", str(data), "--out", str(out), "--resume",
                 "--steps", "13", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model_config" in err and "width" in err and len(err.strip().splitlines()) == 1
    other = write_heat(tmp_path / "other", train=16, val=4, n_times=4, n=32, seed=7)
    assert byai(["train", str(config), "--data", str(other), "--out", str(out), "--resume", "--steps", "13",
                 "--quiet"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_load_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(surrogates.CheckpointError, match="not a byai model"):
        surrogates.load(tmp_path)
    (tmp_path / "byai_model.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(surrogates.CheckpointError, match="not byai surrogate metadata"):
        surrogates.load_stepper(tmp_path)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(data, tmp_path, capsys):
    # an absurd learning rate without clipping overflows float32 within a few steps
    config = write_config(tmp_path / "c.toml", "").read_text()
    config = config.replace("lr = 3e-3", "lr = 1e30").replace("warmup = 2", "warmup = 0\nclip = 0.0")
    config = config.replace("checkpoint_every = 6", "checkpoint_every = 1").replace("val_every = 6", "val_every = 0")
    (tmp_path / "c.toml").write_text(config)
    out = tmp_path / "m"
    assert byai(["train", str(tmp_path / "c.toml"), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    bad = int(err.split("at step ")[1].split(";")[0])
    assert "non-finite" in err and 1 <= bad <= 12
    losses = curve(out)
    assert len(losses) == bad - 1 and np.all(np.isfinite(losses))
    kept = sorted(int(p.name) for p in (out / "checkpoints").iterdir())
    assert kept and max(kept) == bad - 1  # nothing of the diverged step was saved


@pytest.mark.slow
def test_fit_heat_equation_exact_step_to_one_percent(tmp_path):
    data = write_heat(tmp_path / "d", train=64, val=8, n_times=6, n=64)
    loader = datasets.Loader(data / "train.h5", batch_size=16, seed=0)
    model_cfg = surrogates.ModelConfig(width=16, modes=(16,), depth=2)
    cfg = surrogates.TrainConfig(steps=600, batch_size=16, lr=5e-3, warmup=20, loss="rel_l2", val_every=0,
                                 checkpoint_every=0)
    surrogates.train(model_cfg, cfg, loader, tmp_path / "m", quiet=True, data_info={"dataset_sha256": "heat"})
    step, _ = surrogates.load_stepper(tmp_path / "m")
    test = heat_trajectories(16, 2, n=64, seed=99).astype(np.float64)  # unseen initial conditions
    pred = np.asarray(jax.jit(jax.vmap(step))(test[:, 0]))
    err = np.linalg.norm(pred - test[:, 1], axis=(1, 2)) / np.linalg.norm(test[:, 1], axis=(1, 2))
    assert err.max() < 0.01
    identity = np.linalg.norm(test[:, 0] - test[:, 1], axis=(1, 2)) / np.linalg.norm(test[:, 1], axis=(1, 2))
    assert identity.min() > 0.05  # the step is not trivial: doing nothing would be 5x worse or more


def _run(args, env_extra, timeout=420):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.Popen([sys.executable, "-m", "experiments", "train", *args, "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(procs, timeout=420):
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


@pytest.mark.slow
def test_four_devices_give_the_one_device_curve(reference, data, tmp_path):
    config, single = reference
    p = _run([str(config), "--data", str(data), "--out", str(tmp_path / "m")],
             {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    (log,) = _wait([p])
    assert p.returncode == 0, log[-2000:]
    np.testing.assert_allclose(curve(tmp_path / "m"), curve(single), rtol=1e-4)


@pytest.mark.slow
def test_two_processes_on_loopback_give_the_one_device_curve(reference, data, tmp_path):
    config, single = reference
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_run([str(config), "--data", str(data), "--out", str(tmp_path / "m")],
                  {"BYAI_COORDINATOR": f"127.0.0.1:{port}", "BYAI_NUM_PROCESSES": "2", "BYAI_PROCESS_ID": str(i)})
             for i in range(2)]
    logs = _wait(procs)
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    np.testing.assert_allclose(curve(tmp_path / "m"), curve(single), rtol=1e-4)
