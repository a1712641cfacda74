"""Training records its cost in ``byai_model.json``: wall and CPU seconds summed over resumed runs."""

import json

import jax
import pytest

from experiments._cli import main as byai

from tests.surrogates._heat import write_heat
from tests.surrogates.test_train import write_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_heat(tmp_path_factory.mktemp("heat"), train=16, val=4, n_times=4, n=32)


def _cost(model_dir):
    return json.loads((model_dir / "byai_model.json").read_text())["cost"]


def test_cost_is_recorded_and_summed_over_resumed_runs(data, tmp_path):
    config, out = write_config(tmp_path / "c.toml"), tmp_path / "m"
    train = ["train", str(config), "--data", str(data), "--out", str(out), "--quiet"]
    assert byai([*train, "--steps", "5"]) == 0
    first = _cost(out)
    assert first["runs"] == 1 and first["wall_seconds"] > 0 and first["cpu_seconds"] > 0
    assert first["device_kind"] == jax.devices()[0].device_kind and first["device_count"] == jax.device_count()
    assert byai([*train, "--resume"]) == 0
    second = _cost(out)
    assert second["runs"] == 2
    assert second["wall_seconds"] > first["wall_seconds"] and second["cpu_seconds"] > first["cpu_seconds"]
    assert byai([*train, "--resume"]) == 0  # finished: nothing is done, nothing is added
    assert _cost(out) == second


def test_a_resumed_model_without_a_cost_record_says_it_is_unknown(data, tmp_path):
    config, out = write_config(tmp_path / "c.toml"), tmp_path / "m"
    train = ["train", str(config), "--data", str(data), "--out", str(out), "--quiet"]
    assert byai([*train, "--steps", "5"]) == 0
    meta = json.loads((out / "byai_model.json").read_text())
    del meta["cost"]  # a model trained before byai recorded costs
    (out / "byai_model.json").write_text(json.dumps(meta))
    assert byai([*train, "--resume"]) == 0
    cost = _cost(out)
    assert cost["wall_seconds"] is None and cost["cpu_seconds"] is None and cost["runs"] == 1
    assert "recorded no cost" in cost["unknown"]
