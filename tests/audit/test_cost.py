"""The break-even arithmetic of ``report.json["cost"]`` on hand-computed cases."""

import json

import h5py
import pytest

from audit import _cost


def _rec(wall):
    return {"wall_seconds": wall, "cpu_seconds": 2 * wall if wall is not None else None, "runs": 1,
            "device_kind": "cpu", "device_count": 1}


def _eq(surrogate, solver, bound="exact", status="measured"):
    return {"status": status, "surrogate_seconds": surrogate, "solver_seconds": solver, "speedup_bound": bound}


def test_breakeven_hand_computed():
    # 99 s upfront, solver 0.5 s and surrogate 0.1 s per rollout: 99 / 0.4 = 247.5 -> 248 rollouts
    assert _cost.breakeven(99.0, 0.5, 0.1) == (248, None)
    assert _cost.breakeven(100.0, 3.0, 1.0) == (50, None)  # exactly 50: no rounding up
    assert _cost.breakeven(0.0, 3.0, 1.0) == (0, None)
    assert _cost.breakeven(10.0, 1.0, 1.0) == (None, _cost.NEVER)  # equal speed never repays
    assert _cost.breakeven(10.0, 1.0, 170.0) == (None, _cost.NEVER)
    assert _cost.breakeven(None, 1.0, 170.0) == (None, _cost.NEVER)  # never, whatever it cost
    assert _cost.breakeven(None, 3.0, 1.0) == (None, _cost.UNKNOWN)


def test_cost_json_sums_the_splits_and_divides_by_the_test_samples():
    gen = {"train": _rec(20.0), "val": _rec(4.0), "calibration": _rec(8.0)}
    # 4 test samples: surrogate 0.4 s -> 0.1 s per rollout, solver 2.0 s -> 0.5 s; (32 + 67) / 0.4 = 247.5
    cost = _cost.cost_json(gen, _rec(67.0), _eq(0.4, 2.0), n_test=4, horizon=10)
    assert cost["generation_seconds"] == 32.0 and cost["training_seconds"] == 67.0 and cost["upfront_seconds"] == 99.0
    assert cost["surrogate_seconds_per_rollout"] == pytest.approx(0.1)
    assert cost["solver_seconds_per_rollout"] == pytest.approx(0.5)
    assert cost["breakeven"] == 248 and cost["breakeven_bound"] == "exact" and "reason" not in cost
    assert _cost.sentence(cost) == ("break-even after 248 rollouts (generation 32 s + training 67 s, repaid at "
                                    "0.4 s per rollout against the solver at equal accuracy)")
    # the cheapest setting tried matched: the solver might be cheaper, so N is a lower bound
    cost = _cost.cost_json(gen, _rec(67.0), _eq(0.4, 2.0, "upper"), n_test=4, horizon=10)
    assert cost["breakeven_bound"] == "at least" and "after at least 248 rollouts" in _cost.sentence(cost)
    big = _cost.cost_json({"train": _rec(1233.0)}, _rec(0.5), _eq(1.0, 2.0), n_test=1, horizon=1)
    assert big["breakeven"] == 1234 and "after 1,234 rollouts" in _cost.sentence(big)


def test_a_slower_surrogate_never_pays_back():
    cost = _cost.cost_json({"train": _rec(1.0)}, _rec(1.0), _eq(1.7, 0.01), n_test=2, horizon=5)
    assert cost["breakeven"] is None and cost["reason"] == _cost.NEVER
    assert _cost.sentence(cost) == "break-even: never (the solver at equal accuracy is 170x faster per rollout)"
    # no solver setting reached the surrogate's accuracy: the solver's time is only a lower bound, so undecided
    cost = _cost.cost_json({"train": _rec(1.0)}, _rec(1.0), _eq(1.7, 0.01, "lower"), n_test=2, horizon=5)
    assert cost["breakeven"] is None and "no solver setting tried" in cost["reason"]
    assert _cost.sentence(cost).startswith("break-even: unknown (no solver setting tried")


def test_unknown_costs_say_which():
    cost = _cost.cost_json({"train": _rec(None), "calibration": _rec(1.0)}, None, _eq(0.1, 1.0), n_test=1,
                           horizon=1)
    assert cost["generation_seconds"] is None and cost["training_seconds"] is None and cost["breakeven"] is None
    assert cost["reason"].startswith("the generation and training cost is not known")
    cost = _cost.cost_json(None, _rec(1.0), _eq(0.1, 1.0), n_test=1, horizon=1)
    assert cost["reason"].startswith("the generation cost is not known")
    cost = _cost.cost_json({"train": _rec(1.0)}, _rec(1.0), {"status": "skipped", "surrogate_seconds": 0.1},
                           n_test=1, horizon=1)
    assert cost["breakeven"] is None and "equal-accuracy comparison is skipped" in cost["reason"]
    assert _cost.sentence(cost).startswith("break-even: unknown (no solver time at equal accuracy")


def test_recorded_costs_are_read_from_the_files(tmp_path):
    for split, wall in (("train", 3.0), ("calibration", 1.0)):
        with h5py.File(tmp_path / f"{split}.h5", "w") as f:
            f.attrs["cost"] = json.dumps(_rec(wall))
    with h5py.File(tmp_path / "test.h5", "w") as f:
        f.attrs["cost"] = json.dumps(_rec(100.0))  # the test split did not make the surrogate
    assert _cost.generation_cost(tmp_path) == {"train": _rec(3.0), "calibration": _rec(1.0)}
    with h5py.File(tmp_path / "val.h5", "w"):
        pass  # a file without a cost record
    assert _cost.generation_cost(tmp_path)["val"] is None
    (tmp_path / "byai_model.json").write_text(json.dumps({"format": "byai.surrogate", "cost": _rec(5.0)}))
    assert _cost.training_cost(tmp_path) == _rec(5.0)
    assert _cost.training_cost(tmp_path / "nowhere") is None


def test_untimed_rollouts_leave_the_breakeven_unknown():
    cost = _cost.cost_json({"train": _rec(1.0)}, _rec(1.0), {"status": "unknown", "surrogate_seconds": None},
                           n_test=1, horizon=1)
    assert cost["breakeven"] is None and cost["reason"] == "the surrogate's rollouts were not timed"
