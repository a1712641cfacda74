"""``byai bench WORKLOAD --peer --rounds N`` alternates byai and the peer and reports the ratio of medians
(training and generation workloads; a stand-in workload and a stand-in peer script keep this fast)."""

import json
import sys
import types

import pytest

from experiments import _bench_cmd
from experiments._cli import main

BYAI_RATES = [100.0, 300.0, 200.0]  # median 200
PEER = """\
import json, pathlib
path = pathlib.Path(__file__).with_name("calls")
n = int(path.read_text()) if path.exists() else 0
path.write_text(str(n + 1))
print("a line that is not JSON")
print(json.dumps({"peer": "stand-in", "samples_per_s": [50.0, 10.0, 40.0][n]}))
"""


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    calls = iter(BYAI_RATES)
    module = types.ModuleType("byai_stand_in_bench")
    module.bench = lambda: {"samples_per_s": next(calls)}
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(_bench_cmd.OTHER_WORKLOADS, "fno1d", (module.__name__, "bench", ()))
    (tmp_path / "exponax_stepper.py").write_text("")  # marks the folder as the peers' scripts
    (tmp_path / "neuralop_fno.py").write_text(PEER)
    return ["--peer", "--peers-bench", str(tmp_path), "--peer-python", sys.executable, "--json"]


def test_rounds_alternate_and_the_ratio_is_of_medians(stand_ins, tmp_path, capsys):
    assert main(["bench", "fno1d", *stand_ins, "--rounds", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rounds"] == {"byai": BYAI_RATES, "peer": [50.0, 10.0, 40.0]}
    assert out["ratio"] == pytest.approx(200.0 / 40.0)
    assert (tmp_path / "calls").read_text() == "3"


def test_one_round_is_the_default(stand_ins, tmp_path, capsys):
    assert main(["bench", "fno1d", *stand_ins]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "rounds" not in out and out["ratio"] == pytest.approx(100.0 / 50.0)
    assert (tmp_path / "calls").read_text() == "1"
