"""``byai audit`` exit codes: 0 pass, 1 fail, 2 bad input (files written by datasets.write)."""

import json

import pytest

import solvers
from experiments import _audit_cmd
from tests.audit.conftest import DT, fine, write_split
from experiments._cli import main


@pytest.fixture(scope="module")
def data_dir(splits, tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    test, cal = splits
    write_split(d / "test.h5", test)
    write_split(d / "calibration.h5", cal)
    return d


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text('[audit]\nrequirement = "rel_l2<=0.01"\nhorizon = 4\n'
                 '[audit.equal_accuracy]\nenabled = false\nrepeats = 1\n')
    return p


def _model(monkeypatch, stepper, info):
    monkeypatch.setattr(_audit_cmd, "load_model", lambda path: (stepper, info, False))


@pytest.mark.slow
def test_fail_then_pass_with_override(burgers, data_dir, config, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    model.mkdir()
    _model(monkeypatch, solvers.stepper(burgers, DT, "etdrk1"), {"pde": "burgers"})
    rc = main(["audit", str(config), "--data", str(data_dir), "--model", str(model), "--out",
               str(tmp_path / "fail"), "--quiet"])
    assert rc == 1
    assert capsys.readouterr().out.startswith("FAIL rel_l2<=0.01 over 4 steps")
    assert not json.loads((tmp_path / "fail" / "report.json").read_text())["passed"]

    _model(monkeypatch, solvers.stepper(burgers, DT, "etdrk1"),
           {"pde": "burgers", "checkpoint_sha256": "c0ffee", "grid_shape": [32], "pde_params": {"nu": 0.05}})
    out = tmp_path / "pass"
    rc = main(["audit", str(config), "--data", str(data_dir), "--model", str(model), "--out", str(out), "--quiet",
               "--require", "rel_l2<=10"])
    assert rc == 0
    assert capsys.readouterr().out.startswith("PASS rel_l2<=10 over 4 steps")
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["provenance"]["checkpoint_sha256"] == "c0ffee"
    assert report["physics"]["conserved"]["mass"]  # the PDE was rebuilt from the file's attributes
    assert (out / "report.html").exists() and (out / "predictions.h5").exists()


@pytest.mark.parametrize("case", ["require", "config", "data", "model_dir", "other_pde", "other_params"])
def test_bad_input_exits_2(case, burgers, data_dir, config, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    model.mkdir()
    info = {"pde": "kdv" if case == "other_pde" else "burgers", "grid_shape": [32], "pde_params": {"nu": 0.05}}
    if case == "other_params":
        info["pde_params"] = {"nu": 0.2}
    _model(monkeypatch, fine(burgers, DT), info)
    argv = ["audit", str(config), "--data", str(data_dir), "--model", str(model), "--out", str(tmp_path / "o")]
    expected = {"require": "--require", "config": "audit.alpha", "data": "test.h5", "model_dir": "--model",
                "other_pde": "trained on PDE 'kdv'", "other_params": "pde_params"}[case]
    if case == "require":
        argv += ["--require", "rel_l2 < 1"]
    elif case == "config":
        config.write_text("[audit]\nalpha = 3.0\n")
    elif case == "data":
        argv[3] = str(tmp_path)
    elif case == "model_dir":
        argv[5] = str(tmp_path / "missing")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byai audit: error:") and expected in err and "\n" not in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_checkpoint_hash(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "w.bin").write_bytes(b"\x00\x01")
        (tmp_path / name / "meta.json").write_text("{}")
    assert _audit_cmd.tree_sha256(tmp_path / "a") == _audit_cmd.tree_sha256(tmp_path / "b")
    (tmp_path / "b" / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert _audit_cmd.tree_sha256(tmp_path / "a") != _audit_cmd.tree_sha256(tmp_path / "b")


def test_one_line_handles_non_numbers():
    s = {"verdict": "fail", "requirement": {"text": "rmse<=1", "horizon": 3, "quantile": 0.95},
         "score": {"test_quantile": "inf"}, "conformal": {"bound": 2.0, "alpha": 0.1, "coverage_test": 1.0},
         "tolerance_multiple": "unknown",
         "equal_accuracy": {"status": "measured", "speedup": "inf", "speedup_bound": "lower"}}
    line = _audit_cmd.one_line(s)
    assert line.startswith("FAIL rmse<=1 over 3 steps: q0.95 inf, conformal bound 2")
    assert "tolerance multiple unknown" in line and "speedup at equal accuracy inf (lower bound)" in line
