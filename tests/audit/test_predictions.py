"""``audit.run_predictions`` and ``byai audit --predictions``: rollouts written by a plain h5py script (no byai)
from a byai stepper give the audit of that stepper; shapes, initial conditions and values are checked."""

import json
import re

import h5py
import numpy as np
import pytest

import audit
import solvers
from experiments._cli import main
from tests.audit.conftest import DT, quick_config, write_split

HORIZON = 4


@pytest.fixture(scope="module")
def stepper(burgers):
    return solvers.stepper(burgers, DT, "etdrk1")  # coarse: errors well above rounding


@pytest.fixture(scope="module")
def direct(stepper, splits, burgers):
    """The stepper audited from Python over the predictions' horizon."""
    test, cal = splits
    return audit.run(stepper, test, cal, "rel_l2<=0.01", config=quick_config(horizon=HORIZON), repeats=1,
                     pde=burgers)


def _write(path, key, array):
    """What a user's own script writes: one h5py dataset, nothing else."""
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)
    return path


@pytest.mark.parametrize("layout", ["byai", "pdebench"])
def test_file_predictions_match_the_stepper_audit(layout, direct, splits, burgers, tmp_path):
    test, cal = splits
    pred, cal_pred = direct.rollouts.pred, direct.rollouts.cal_pred  # (S, 5, 32, 1): 4 predicted steps
    if layout == "byai":
        files = _write(tmp_path / "p.h5", "u", pred), _write(tmp_path / "c.h5", "u", cal_pred)
    else:  # PDEBench: (sample, time, x) without a channel axis
        files = _write(tmp_path / "p.h5", "tensor", pred[..., 0]), _write(tmp_path / "c.h5", "tensor", cal_pred[..., 0])
    rep = audit.run_predictions(files[0], test, cal, files[1], "rel_l2<=0.01", config=quick_config(), pde=burgers)
    assert rep.inputs.horizon == HORIZON  # at most what the model predicted
    for k, v in direct.metrics.items():
        np.testing.assert_allclose(rep.metrics[k], v, rtol=1e-12, atol=1e-300, err_msg=k)
    a, b = rep.summary, direct.summary
    # the same float64 rollouts: the same numbers, bit for bit
    for key in ("passed", "score", "metrics", "tolerance_multiple", "pdebench", "physics", "requirement"):
        assert a[key] == b[key], key
    for key in ("bound", "coverage_test", "coverage_calibration", "per_step", "status", "verdict_rule"):
        assert a["conformal"][key] == b["conformal"][key], key
    assert a["conformal"]["one_step_rmse_bound"] is None and "stepper" in a["conformal"]["one_step_rmse_reason"]
    assert a["provenance"]["predictions_sha256"] and a["provenance"]["calibration_predictions_file"]
    assert a["equal_accuracy"]["speedup"] is None and a["equal_accuracy"]["speedup_status"] == "unknown"


def test_without_calibration_the_verdict_is_the_test_quantile(direct, splits, burgers, tmp_path):
    test, _ = splits
    pred = direct.rollouts.pred.astype(np.float32)  # frame 0 rounded to float32 is accepted
    rep = audit.run_predictions(pred, test, requirement="rel_l2<=10", config=quick_config(), pde=burgers,
                                surrogate_seconds=0.5, out_dir=tmp_path / "o")
    c = rep.summary["conformal"]
    assert c["status"] == "no calibration predictions" and c["bound"] is None and "test quantile" in c["reason"]
    assert "without a conformal bound" in c["verdict_rule"] and rep.passed
    assert rep.summary["samples"]["calibration"] == 0
    assert rep.summary["equal_accuracy"]["surrogate_seconds"] == pytest.approx(0.5 * pred.shape[0])
    page = (tmp_path / "o" / "report.html").read_text()
    assert "No conformal bound" in page
    assert json.loads((tmp_path / "o" / "report.json").read_text())["conformal"]["bound"] is None


def test_refusals_name_the_file_and_sample(direct, splits, tmp_path):
    test, cal = splits
    pred = direct.rollouts.pred
    cases = {
        "samples": (pred[:-1], "5 samples, the test split has 6"),
        "frames": (pred[:, :1], "1 frame(s)"),
        "grid": (pred[:, :, :16], "grid (16,)"),
        "channels": (np.concatenate([pred, pred], axis=-1), "2 channels"),
        "order": (pred[::-1], "frame 0 of test sample 0 differs"),
        "nan": (np.where(np.arange(pred.shape[0])[:, None, None, None] == 3, np.nan, pred), "test sample 3"),
    }
    for case, (array, message) in cases.items():
        path = _write(tmp_path / f"{case}.h5", "u", array)
        with pytest.raises(audit.AuditError, match=re.escape(message)) as e:
            audit.run_predictions(path, test, config=quick_config(), requirement="rmse<=1")
        assert str(path) in str(e.value), case
    with pytest.raises(audit.AuditError, match="neither 'u'"):
        audit.run_predictions(_write(tmp_path / "x.h5", "v", pred), test, requirement="rmse<=1")
    with pytest.raises(audit.AuditError, match="horizon 6 exceeds the 4 steps"):
        audit.run_predictions(pred, test, requirement="rmse<=1", config=quick_config(horizon=6))
    with pytest.raises(audit.AuditError, match="without the calibration split"):
        audit.run_predictions(pred, test, None, pred, requirement="rmse<=1", config=quick_config())
    with pytest.raises(solvers.InputError, match="surrogate_seconds"):
        audit.run_predictions(pred, test, requirement="rmse<=1", surrogate_seconds=-1.0)


@pytest.mark.slow
def test_cli_exit_codes(direct, splits, tmp_path, capsys):
    test, cal = splits
    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "test.h5", test)
    write_split(data / "calibration.h5", cal)
    pred = _write(tmp_path / "p.h5", "tensor", direct.rollouts.pred[..., 0])
    cal_pred = _write(tmp_path / "c.h5", "tensor", direct.rollouts.cal_pred[..., 0])
    config = tmp_path / "exp.toml"
    config.write_text('[audit]\nrequirement = "rel_l2<=0.01"\n[audit.equal_accuracy]\nenabled = false\n')
    argv = ["audit", str(config), "--data", str(data), "--predictions", str(pred), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "fail"), "--calibration-predictions", str(cal_pred)]) == 1
    assert capsys.readouterr().out.startswith("FAIL rel_l2<=0.01 over 4 steps")
    report = json.loads((tmp_path / "fail" / "report.json").read_text())
    assert report["score"]["test_quantile"] == pytest.approx(direct.summary["score"]["test_quantile"], rel=1e-6)
    assert main([*argv, "--out", str(tmp_path / "pass"), "--require", "rel_l2<=10"]) == 0
    assert "no conformal bound (no calibration predictions)" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "bad"), "--model", str(tmp_path)]) == 2
    assert "exactly one of --model" in capsys.readouterr().err
    bad = _write(tmp_path / "b.h5", "tensor", direct.rollouts.pred[::-1, ..., 0])
    assert main(["audit", str(config), "--data", str(data), "--predictions", str(bad), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "frame 0 of test sample 0" in err and "\n" not in err
