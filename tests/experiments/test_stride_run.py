"""``byai run`` end to end with ``[model] stride = 2``: the model, the audit and the hybrid in steps of two save
intervals."""

import json

import numpy as np
import pytest

from experiments._cli import main

from .test_run import TINY

# test_run's tiny config, smaller still (< 60 s on 2 idle cores): 7 frames (3 steps of two save intervals), fewer
# samples (alpha 0.2 needs 4 calibration samples), a looser data tolerance, 4 training steps
STRIDE2 = (TINY.replace("TOL", "1.0").replace("n_times = 6", "n_times = 7\nrtol = 1e-4\natol = 1e-8")
           .replace("splits = { train = 16, val = 2, calibration = 10, test = 3 }",
                    "splits = { train = 8, val = 2, calibration = 4, test = 2 }")
           .replace("steps = 40", "steps = 4").replace("warmup = 5", "warmup = 1").replace("alpha = 0.1", "alpha = 0.2")
           .replace('kind = "fno"\n', 'kind = "fno"\nstride = 2\n'))


@pytest.mark.slow
def test_byai_run_with_stride_2(tmp_path, capsys):
    for changed in ("stride = 2", "n_times = 7", "calibration = 4", "steps = 4", "alpha = 0.2"):
        assert changed in STRIDE2, changed
    config = tmp_path / "stride2.toml"
    config.write_text(STRIDE2)
    out = tmp_path / "run"
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc in (0, 1), captured.err
    save = 0.5 / 6  # t_end / (n_times - 1)
    meta = json.loads((out / "model" / "byai_model.json").read_text())
    assert meta["stride"] == 2 and meta["dt"] == pytest.approx(2 * save)
    report = json.loads((out / "audit" / "report.json").read_text())
    assert report["time"]["stride"] == 2 and report["time"]["dt"] == pytest.approx(2 * save)
    assert report["requirement"]["horizon"] == 3
    assert report["equal_accuracy"]["step_interval"] == pytest.approx(2 * save)
    import datasets

    with datasets.open(out / "audit" / "predictions.h5") as p, datasets.open(out / "data" / "test.h5") as t:
        np.testing.assert_allclose(p["time"].values, t["time"].values[:7:2])
        np.testing.assert_array_equal(p["u"].values[:, 0], t["u"].values[:, 0])
    hybrid = json.loads((out / "hybrid" / "hybrid.json").read_text())
    assert hybrid["stride"] == 2 and hybrid["step_interval"] == pytest.approx(2 * save)
    assert hybrid["steps_per_sample"] == 3  # 7 frames: 3 steps of two save intervals
    # a config that states another stride than the model's is refused by byai audit, naming the key
    other = tmp_path / "stride3.toml"
    other.write_text(STRIDE2.replace("stride = 2", "stride = 3"))
    rc = main(["audit", str(other), "--data", str(out / "data"), "--model", str(out / "model"), "--out",
               str(tmp_path / "a"), "--quiet"])
    assert rc == 2 and "model.stride: 3" in capsys.readouterr().err
