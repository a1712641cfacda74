"""``byai run`` on a tiny steady Darcy map: generate, train, audit (horizon 1) and the steady hybrid (the
surrogate as a residual-guarded shortcut of the solve); bad steady-map input is one line, exit 2, naming the key."""

import json

import numpy as np
import pytest

import datasets
from experiments._cli import main

TINY = """
[data]
pde = "darcy"
shape = [16, 16]
coefficient = { kind = "threshold_grf", alpha = 2.0, tau = 3.0, low = 3.0, high = 12.0 }
source = 1.0
rtol = 5e-2
atol = 1e-10
splits = { train = 8, val = 2, calibration = 9, test = 4 }
batch_size = 8

[model]
kind = "fno"
width = 8
modes = [4, 4]
depth = 1
padding = 2
coordinates = true
residual = false

[train]
steps = 4
batch_size = 4
warmup = 1
loss = "rel_l2"
val_every = 2
checkpoint_every = 2

[audit]
requirement = "rel_l2<=100"
alpha = 0.2
quantile = 0.75
equal_accuracy = { coarsen = [1, 2], rtols = [1e-2], repeats = 1 }

[hybrid]
tolerance = 10.0
guard = "residual"
repeats = 1
"""


@pytest.mark.slow
def test_darcy_run_end_to_end(tmp_path, capsys):
    config = tmp_path / "darcy.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("data/train.h5", "data/test.h5", "model/byai_model.json", "audit/report.json",
                 "audit/report.html", "audit/predictions.h5", "run.json"):
        assert (out / name).exists(), name
    assert "hybrid speedup vs solver" in captured.out
    meta = json.loads((out / "model" / "byai_model.json").read_text())
    assert meta["data"]["problem"] == "steady_map" and "input_stats" in meta
    rep = json.loads((out / "audit" / "report.json").read_text())
    assert rep["problem"] == "steady_map" and rep["requirement"]["horizon"] == 1
    assert rep["solver_tolerance"] == {**rep["solver_tolerance"], "rtol": 5e-2, "atol": 1e-10, "known": True}
    test = datasets.open(out / "data" / "test.h5")
    u = test["u"].values
    # the tolerance multiple is the surrogate's RMS error over rtol RMS(u) + atol, recomputed from predictions.h5
    pred = datasets.open(out / "audit" / "predictions.h5")["u"].values
    rmse = np.sqrt(np.mean((pred[:, 1] - u[:, 1]) ** 2, axis=(1, 2, 3)))
    tol = 5e-2 * np.sqrt(np.mean(u[:, 1] ** 2, axis=(1, 2, 3))) + 1e-10
    np.testing.assert_allclose(rep["tolerance_multiple"]["rmse"]["max"], np.max(rmse / tol), rtol=1e-6)
    assert 0 < rep["metrics"]["rel_l2"]["mean"] < 100
    # the stored bounds respect the stated tolerance, and the error_estimate multiple is reported
    err = test["error_estimate"].values[:, 1]
    assert np.all((err > 0) & (err <= tol))
    assert "error_estimate_multiple" in rep["tolerance_multiple"]
    eq = rep["equal_accuracy"]
    assert eq["status"] == "measured" and eq["speedup"] > 0 and eq["solver_setting"]["method"] == "fv-pcg"
    assert set(json.loads((out / "run.json").read_text())) == {"generate", "train", "audit", "hybrid"}
    # the steady hybrid: with tolerance 10 (far above RMS(u) ~ 6e-3) every prediction passes the guard, and
    # the guard's residual bound holds sample by sample (the reference is the discrete solution to CG 1e-10)
    hyb = json.loads((out / "hybrid" / "hybrid.json").read_text())
    assert hyb["problem"] == "steady_map" and hyb["surrogate_steps"] == 4 and hyb["within_tolerance"]
    assert hyb["cg_iterations"]["hybrid"] == 0 < hyb["cg_iterations"]["solver"]
    assert all(e <= b for e, b in zip(hyb["error_per_sample"], hyb["guard_bound"]["per_sample"]))
    # a tolerance no prediction can meet: every sample is solved, to the solver's own answer
    rc = main(["hybrid", str(config), "--data", str(out / "data"), "--model", str(out / "model"), "--out",
               str(tmp_path / "strict"), "--tolerance", "1e-9", "--quiet"])
    assert rc == 0
    strict = json.loads((tmp_path / "strict" / "hybrid.json").read_text())
    assert strict["surrogate_steps"] == 0 and strict["solver_steps"] == 4 and strict["within_tolerance"]
    assert strict["error_vs_reference"] <= strict["solver_error_vs_reference"] + 1e-12
    assert "accepted no prediction" in strict["note"]


@pytest.mark.parametrize("line, key", [
    ('n_times = 5', "data.n_times"), ('source = "one"', "data.source"),
    ('coefficient = { kind = "threshold_grf", low = -1.0 }', "data.coefficient.low")])
def test_bad_darcy_data_key_is_one_line_exit_2(tmp_path, capsys, line, key):
    text = TINY.replace('source = 1.0\n', '') if line.startswith("source") else TINY
    text = text.replace('coefficient = { kind = "threshold_grf", alpha = 2.0, tau = 3.0, low = 3.0, high = 12.0 }\n',
                        '') if line.startswith("coefficient") else text
    config = tmp_path / "bad.toml"
    config.write_text(text.replace("[data]\n", f"[data]\n{line}\n"))
    rc = main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and key in err, err


@pytest.mark.parametrize("line, key", [("growth = 1.5", "hybrid.growth"), ("steps = 3", "hybrid.steps")])
def test_time_stepping_hybrid_key_in_a_steady_config_is_one_line_exit_2(tmp_path, capsys, line, key):
    config = tmp_path / "darcy.toml"
    config.write_text(TINY.replace("[hybrid]\n", f"[hybrid]\n{line}\n"))
    rc = main(["hybrid", str(config), "--data", str(tmp_path), "--model", str(tmp_path), "--out",
               str(tmp_path / "h")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and key in err and "does not apply to a steady map" in err, err
