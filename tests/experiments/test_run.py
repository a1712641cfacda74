"""``byai run`` end to end on a tiny config: all four stages, resume, and rerun of a changed stage."""

import json

import pytest

from experiments._cli import main

TINY = """
[data]
pde = "burgers"
params = { nu = 0.2 }
shape = [32]
t_end = 0.5
n_times = 6
ic = { kind = "fourier", cutoff = 2, amplitude = 0.3 }
splits = { train = 16, val = 2, calibration = 10, test = 3 }
batch_size = 16

[model]
kind = "fno"
width = 8
modes = [8]
depth = 1

[train]
steps = 40
batch_size = 8
lr = 3e-3
warmup = 5
val_every = 20
checkpoint_every = 20

[audit]
requirement = "rel_l2<=10"
horizon = 3
alpha = 0.1
equal_accuracy = { coarsen = [1], substeps = [1], methods = ["etdrk4"], repeats = 1 }

[hybrid]
tolerance = TOL
guard = "conformal"
repeats = 1
"""


@pytest.mark.slow
def test_run_end_to_end_then_resume(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.replace("TOL", "1.0"))
    out = tmp_path / "run"
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("data/test.h5", "model/metrics.jsonl", "audit/report.json", "hybrid/hybrid.json",
                 "hybrid/hybrid.png", "run.json"):
        assert (out / name).exists(), name
    state = json.loads((out / "run.json").read_text())
    assert set(state) == {"generate", "train", "audit", "hybrid"}
    summary = captured.out
    assert "audit verdict: PASSED (rel_l2<=10)" in summary
    assert "tolerance multiple" in summary and "speedup at equal accuracy" in summary
    assert "hybrid speedup vs solver" in summary
    hybrid = json.loads((out / "hybrid" / "hybrid.json").read_text())
    assert hybrid["within_tolerance"] and hybrid["surrogate_steps"] > 0  # a loose budget lets it step

    # everything complete: nothing reruns
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.out.count("complete (resumed: not rerun)") == 4

    # a tighter hybrid tolerance reruns the hybrid stage only; far below the surrogate's one-step
    # error, the hybrid ends solver-only and says so
    config.write_text(TINY.replace("TOL", "1e-9"))
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.count("complete (resumed: not rerun)") == 3
    hybrid = json.loads((out / "hybrid" / "hybrid.json").read_text())
    assert hybrid["surrogate_steps"] == 0 and "too poor" in hybrid["note"]
    assert "too poor" in captured.out


def test_a_failing_stage_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.replace("TOL", "1.0"))
    out = tmp_path / "run"
    (out / "data").mkdir(parents=True)
    (out / "data" / "train.h5").write_bytes(b"not an hdf5 file")  # a foreign file where data goes
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "train.h5" in lines[0], err
