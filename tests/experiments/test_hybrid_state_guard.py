"""``byai hybrid`` with ``[hybrid] guard = "state"``: hybrid.json holds the state guard's table."""

import json

import pytest

from tests.experiments.test_hybrid_cmd import N_FRAMES, _config, _run, data_dir, fake_model  # noqa: F401 (fixtures)


def test_state_guard_section_in_hybrid_json(tmp_path, capsys, data_dir, fake_model):  # noqa: F811
    model = fake_model(1e-5)
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="state"), data_dir, model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    g = r["guard"]
    assert g["kind"] == "state" and {"coverage_test", "cost_fraction", "acceptance_rate"} <= set(g)
    assert 0 <= g["coverage_test"] <= 1  # 24 correlated test pairs: the level is checked in tests/audit
    assert g["test_pairs"] == 3 * (N_FRAMES - 1) and g["calibration_pairs"] == 10 * (N_FRAMES - 1)
    assert 0 < g["cost_fraction"] == pytest.approx(r["cost_model"]["seconds_per_guard_call"]
                                                   / r["cost_model"]["seconds_per_surrogate_step"])
    assert g["acceptance_rate"] == 1.0 and r["surrogate_steps"] == 3 * (N_FRAMES - 1)
    assert r["within_tolerance"] and r["error_vs_reference"] <= r["tolerance"] and r["alpha"] == 0.1
    assert "state guard: coverage" in stdout


def test_state_guard_refuses_a_poor_surrogate(tmp_path, capsys, data_dir, fake_model):  # noqa: F811
    model = fake_model(3e-3)  # each step adds more than the tolerance
    out = tmp_path / "out"
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="state"), data_dir, model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    assert r["surrogate_steps"] == 0 and r["guard"]["acceptance_rate"] == 0.0
    assert r["within_tolerance"]


def test_state_guard_needs_the_calibration_file(tmp_path, capsys, data_dir, fake_model):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.h5").symlink_to(data_dir / "test.h5")
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="state"), data, fake_model(1e-5),
                      tmp_path / "out")
    assert rc == 2 and "calibration.h5 does not exist" in err
