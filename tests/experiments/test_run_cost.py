"""``byai run`` states what the surrogate cost to make and after how many rollouts it pays that back."""

import json
import math

import h5py
import pytest

from experiments._cli import main

from .conftest import copy_run


@pytest.mark.slow
def test_report_and_summary_state_the_cost_and_the_breakeven(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    out = copy_run(reference, tmp_path / "run")
    recorded = {}
    for split in ("train", "val", "calibration", "test"):
        with h5py.File(out / "data" / f"{split}.h5", "r") as f:
            recorded[split] = json.loads(f.attrs["cost"])
            assert recorded[split]["runs"] == 1 and recorded[split]["wall_seconds"] > 0
    model = json.loads((out / "model" / "byai_model.json").read_text())
    assert model["cost"]["runs"] == 1 and model["cost"]["wall_seconds"] > 0

    cost = json.loads((out / "audit" / "report.json").read_text())["cost"]
    made = sum(recorded[s]["wall_seconds"] for s in ("train", "val", "calibration"))  # the test split made nothing
    assert cost["generation_seconds"] == pytest.approx(made)
    assert cost["training_seconds"] == pytest.approx(model["cost"]["wall_seconds"])
    assert cost["upfront_seconds"] == pytest.approx(made + model["cost"]["wall_seconds"])
    report = json.loads((out / "audit" / "report.json").read_text())
    eq, n_test = report["equal_accuracy"], report["samples"]["test"]
    surrogate, solver = eq["surrogate_seconds"] / n_test, eq["solver_seconds"] / n_test
    assert cost["surrogate_seconds_per_rollout"] == pytest.approx(surrogate)
    assert cost["solver_seconds_per_rollout"] == pytest.approx(solver)
    assert "breakeven" in cost
    if surrogate < solver:
        assert cost["breakeven"] == math.ceil(cost["upfront_seconds"] / (solver - surrogate))
        assert cost["sentence"].startswith("break-even after ")
    else:
        assert cost["breakeven"] is None and "never pays back" in cost["reason"]
        assert cost["sentence"].startswith("break-even: never (the solver at equal accuracy is ")
    assert f"Cost: {cost['sentence']}." in (out / "audit" / "report.html").read_text()

    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0  # complete: only the summary
    assert f"  cost: {cost['sentence']}" in capsys.readouterr().out.splitlines()
