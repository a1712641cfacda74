"""``byai run``'s bookkeeping with stand-in stages (fast): resume, rerun of changed stages, --redo, failures."""

import pytest

from experiments import _run_cmd
from experiments._config import STAGES
from experiments._cli import main

CONFIG = """
[data]
pde = "burgers"
shape = [32]
[model]
kind = "fno"
[train]
steps = 100
[audit]
requirement = "rel_l2<=0.1"
[hybrid]
tolerance = TOL
"""


@pytest.fixture
def stages(monkeypatch):
    """Replace the verbs by stand-ins that record their calls and create their output folder."""
    calls, exits = [], {}

    def fake(stage, config, out, *, quiet):
        calls.append(stage)
        (out / _run_cmd.OUT_DIRS[stage]).mkdir(parents=True, exist_ok=True)
        return exits.get(stage, 0)

    monkeypatch.setattr(_run_cmd, "_run_stage", fake)
    monkeypatch.setattr(_run_cmd, "_unavailable", lambda config, stage: None)
    # the stand-ins write no files: a stage's outputs are its folder
    monkeypatch.setattr(_run_cmd, "OUTPUT_CHECKS", {
        stage: (lambda config, folder: None if folder.is_dir() else f"{folder} is missing") for stage in STAGES})
    return calls, exits


def run(capsys, path, out, *extra):
    rc = main(["run", str(path), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_resume_rerun_and_redo(tmp_path, capsys, stages):
    calls, exits = stages
    path, out = tmp_path / "exp.toml", tmp_path / "run"
    path.write_text(CONFIG.replace("TOL", "1e-2"))
    assert run(capsys, path, out)[0] == 0
    assert calls == ["generate", "train", "audit", "hybrid"]

    calls.clear()
    rc, stdout, _ = run(capsys, path, out)
    assert rc == 0 and calls == [] and stdout.count("complete (resumed: not rerun)") == 4

    path.write_text(CONFIG.replace("TOL", "2e-2"))  # only [hybrid] changed
    calls.clear()
    assert run(capsys, path, out)[0] == 0
    assert calls == ["hybrid"]

    calls.clear()
    assert run(capsys, path, out, "--redo", "train")[0] == 0
    assert calls == ["train", "audit", "hybrid"]

    exits["audit"] = 1  # the requirement fails: a result, the hybrid still runs, exit status 1
    calls.clear()
    rc, stdout, _ = run(capsys, path, out, "--redo", "audit")
    assert rc == 1 and calls == ["audit", "hybrid"]


def test_failed_stage_is_not_marked_complete(tmp_path, capsys, stages):
    calls, exits = stages
    path, out = tmp_path / "exp.toml", tmp_path / "run"
    path.write_text(CONFIG.replace("TOL", "1e-2"))
    exits["train"] = 3
    rc, _, err = run(capsys, path, out)
    assert rc == 2 and "stage train failed" in err
    assert calls == ["generate", "train"]
    del exits["train"]
    calls.clear()
    assert run(capsys, path, out)[0] == 0
    assert calls == ["train", "audit", "hybrid"]  # generate was complete; train is retried
