"""``byai generate`` and ``byai info`` from the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import datasets
from experiments._cli import main

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[data]
pde = "diffusion"
params = { nu = 0.1 }
shape = [16]
t_end = 0.2
n_times = 3
rtol = 1e-6
atol = 1e-10
ic = { kind = "grf", cutoff = 4, alpha = 2.0, tau = 1.0 }
splits = { train = 2, val = 0, calibration = 1, test = 1 }
seed = 3
batch_size = 2

[model]
kind = "anything: generate reads only [data]"
"""


def test_generate_then_info(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    assert main(["generate", str(cfg), "--out", str(tmp_path / "data"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""  # quiet: nothing printed
    files = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert files == ["calibration.h5", "test.h5", "train.h5"]
    ds = datasets.open(tmp_path / "data" / "train.h5", verify=True)
    # diffusion is exact in Fourier space: check the stored data against the exact solution
    u0 = ds["u"].values[:, 0, :, 0]
    k = np.fft.rfftfreq(16, 1 / 16)
    exact = np.fft.irfft(np.fft.rfft(u0, axis=1) * np.exp(-0.1 * k**2 * 0.2), n=16, axis=1)
    err = np.sqrt(np.mean((ds["u"].values[:, -1, :, 0] - exact) ** 2, axis=1))
    assert np.all(err <= ds["error_estimate"].values[:, -1] + 1e-14)
    ds.close()
    assert main(["info", str(tmp_path / "data" / "test.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pde"] == "diffusion" and info["tolerance"]["rtol"] == 1e-6 and info["split"] == "test"
    assert info["u"]["shape"] == [1, 3, 16, 1] and info["ic"]["kind"] == "grf"


def test_bad_config_and_refusal_are_one_line_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.replace("rtol = 1e-6", "rtol = -1.0"))
    cmd = [sys.executable, "-m", "experiments", "generate", str(cfg), "--out", str(tmp_path / "d")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "byai generate: error: data.rtol: must be > 0, got -1.0"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.h5").write_text("not mine")
    cfg.write_text(CONFIG)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "train.h5 exists and is not a byai dataset" in r.stderr
    assert r.stderr.count("\n") == 1 and (tmp_path / "d" / "train.h5").read_text() == "not mine"
