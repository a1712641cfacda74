"""Generation records its cost: each split file's ``cost`` attribute, accumulated over interrupted runs."""

import json

import h5py
import pytest

import datasets
from datasets import _generate

from tests.datasets._gen_worker import tiny_spec


def _cost(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["cost"]), f["u"][...].tobytes()


def _interrupt_before_assembly(monkeypatch):
    """Make the next generation stop after journalling every train sample, before its file is written."""
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_generate, "_assemble", killed)


def test_each_split_records_its_cost_and_a_resumed_run_adds_to_it(tmp_path, monkeypatch):
    import jax

    spec = tiny_spec()
    whole = datasets.generate(spec, tmp_path / "whole", quiet=True)
    cost, u_whole = _cost(whole["train"])
    assert cost["runs"] == 1 and cost["wall_seconds"] > 0 and cost["cpu_seconds"] > 0
    assert cost["device_kind"] == jax.devices()[0].device_kind and cost["device_count"] == jax.device_count()
    assert _cost(whole["test"])[0]["runs"] == 1

    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        _interrupt_before_assembly(m)
        with pytest.raises(KeyboardInterrupt):
            datasets.generate(spec, out, quiet=True, splits=["train"])
    journalled = json.loads((out / ".train.h5.partial" / "cost.json").read_text())
    assert journalled["runs"] == 1 and journalled["wall_seconds"] > 0
    datasets.generate(spec, out, quiet=True, splits=["train"])
    cost, u = _cost(out / "train.h5")
    assert u == u_whole  # the cost is an attribute: the data's bytes do not change
    assert cost["runs"] == 2
    assert cost["wall_seconds"] > journalled["wall_seconds"] and cost["cpu_seconds"] > journalled["cpu_seconds"]


def test_a_journal_without_a_cost_record_makes_the_cost_unknown(tmp_path, monkeypatch):
    spec = tiny_spec()
    with monkeypatch.context() as m:
        _interrupt_before_assembly(m)
        with pytest.raises(KeyboardInterrupt):
            datasets.generate(spec, tmp_path, quiet=True, splits=["train"])
    (tmp_path / ".train.h5.partial" / "cost.json").unlink()  # a journal of an earlier byai
    datasets.generate(spec, tmp_path, quiet=True, splits=["train"])
    cost, _ = _cost(tmp_path / "train.h5")
    assert cost["wall_seconds"] is None and cost["cpu_seconds"] is None
    assert cost["runs"] == 1 and "recorded no cost" in cost["unknown"]


def test_shard_costs_combine_as_parallel_work():
    one = {"wall_seconds": 3.0, "cpu_seconds": 5.0, "runs": 1, "device_kind": "cpu", "device_count": 2}
    two = {"wall_seconds": 4.0, "cpu_seconds": 6.0, "runs": 2, "device_kind": "cpu", "device_count": 2}
    both = _generate._combined_cost([one, two])
    assert (both["wall_seconds"], both["cpu_seconds"], both["runs"]) == (4.0, 11.0, 2)
    assert _generate._combined_cost([one, None])["wall_seconds"] is None
