"""Experiment configs: every bad input is one line naming the key or the file, exit 2."""

from pathlib import Path

import pytest

from experiments._cli import main
from experiments import _config
from experiments._config import (RUN_SETTINGS, AuditRunSettings, ExperimentConfig, HybridRunSettings, LaunchSettings,
                                 load)
from experiments._toml import ConfigError

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SHIPPED = ["quickstart.toml", "ns2d.toml", "darcy.toml"]


def byai(capsys, *argv):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert "Traceback" not in err
    return lines[0]


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("verb", ["run", "hybrid"])
def test_missing_config_file_names_it(tmp_path, capsys, verb):
    missing = tmp_path / "nope.toml"
    extra = ["--data", tmp_path, "--model", tmp_path] if verb == "hybrid" else []
    rc, _, err = byai(capsys, verb, missing, *extra, "--out", tmp_path / "out")
    assert rc == 2
    assert str(missing) in one_line_error(err)


def test_invalid_toml_names_the_file(tmp_path, capsys):
    path = write(tmp_path, "[hybrid\ntolerance = 1\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    line = one_line_error(err)
    assert str(path) in line and "TOML" in line


def test_unknown_section_is_named(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\n[trian]\nsteps = 3\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    line = one_line_error(err)
    assert "trian" in line and "unknown section" in line


def test_unknown_key_is_named(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\ncorrect_evry = 4\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    line = one_line_error(err)
    assert "hybrid.correct_evry" in line and "unknown key" in line and str(path) in line


@pytest.mark.parametrize("text, key", [
    ("tolerance = -1.0", "hybrid.tolerance"),
    ("tolerance = 1e-3\ncorrect_every = 1", "hybrid.correct_every"),
    ("tolerance = 1e-3\ngrowth = 0.5", "hybrid.growth"),
    ("tolerance = 1e-3\nguard = \"magic\"", "hybrid.guard"),
    ("tolerance = \"small\"", "hybrid.tolerance"),
    ("guard = \"residual\"", "hybrid.tolerance"),  # required key missing
])
def test_out_of_range_or_wrong_type_names_the_key(tmp_path, capsys, text, key):
    path = write(tmp_path, f"[hybrid]\n{text}\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    assert key in one_line_error(err)


@pytest.mark.parametrize("section, table, key", [
    ("data", 'pde = "burgers"\nshape = [64]\nn_times = 1', "data.n_times"),
    ("model", 'kind = "fno"\nwidth = 0', "model.width"),
    ("train", "steps = 10\nlr = -1.0", "train.lr"),
    ("audit", 'requirement = "rel_l2<=0.1"\nalpha = 2.0', "audit.alpha"),
])
def test_other_sections_are_validated_through_their_classes(tmp_path, capsys, section, table, key):
    path = write(tmp_path, f"[{section}]\n{table}\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    assert key in one_line_error(err)


def test_hybrid_verb_names_missing_data_and_model(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\nguard = \"residual\"\n")
    rc, _, err = byai(capsys, "hybrid", path, "--data", tmp_path / "nodata", "--model", tmp_path,
                      "--out", tmp_path / "out")
    assert rc == 2 and "test.h5" in one_line_error(err)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.h5").write_bytes(b"")
    rc, _, err = byai(capsys, "hybrid", path, "--data", tmp_path / "data", "--model", tmp_path / "nomodel",
                      "--out", tmp_path / "out")
    assert rc == 2 and "nomodel" in one_line_error(err)


def test_hybrid_verb_rejects_bad_tolerance_override(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\n")
    rc, _, err = byai(capsys, "hybrid", path, "--data", tmp_path, "--model", tmp_path, "--out", tmp_path / "o",
                      "--tolerance", "-1")
    assert rc == 2 and "--tolerance" in one_line_error(err)


def test_run_refuses_a_corrupt_run_record(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{not json")
    rc, _, err = byai(capsys, "run", path, "--out", out)
    assert rc == 2 and "run.json" in one_line_error(err)


def test_run_without_stage_sections_says_what_it_skipped(tmp_path, capsys):
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\n")
    rc, out, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 0
    assert "generate  skipped: the config has no [data] section" in out
    assert "hybrid    skipped: needs the generate stage" in out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_completely(name):
    config = load(EXPERIMENTS / name)
    assert isinstance(config, ExperimentConfig)
    for section in ("data", "model", "train", "audit", "hybrid"):
        if section in config.raw:
            assert getattr(config, section) is not None
    for section, (cls, _) in RUN_SETTINGS.items():
        assert isinstance(config.run_settings(section), cls)


def test_fingerprint_changes_only_with_the_stage_inputs(tmp_path):
    a = load(write(tmp_path, "[hybrid]\ntolerance = 1e-3\n", "a.toml"))
    b = load(write(tmp_path, "[hybrid]\ntolerance = 2e-3\n", "b.toml"))
    assert a.fingerprint("generate") == b.fingerprint("generate")
    assert a.fingerprint("hybrid") != b.fingerprint("hybrid")


def test_load_error_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="hybrid.tolerance"):
        load(write(tmp_path, "[hybrid]\ntolerance = 0\n"))


def test_run_settings_are_read_from_the_section_tables(tmp_path):
    config = load(write(tmp_path, """
[train]
steps = 100
coordinator_address = "10.0.0.1:1234"
num_processes = 2
process_id = 1
[audit]
requirement = "rel_l2<=0.1"
[audit.equal_accuracy]
repeats = 2
coarsen = [1]
[hybrid]
tolerance = 1e-3
repeats = 1
samples = 4
"""))
    assert config.run_settings("train") == LaunchSettings("10.0.0.1:1234", 2, 1)
    assert config.run_settings("audit") == AuditRunSettings(repeats=2)
    assert config.run_settings("hybrid") == HybridRunSettings(samples=4, repeats=1)
    assert config.audit.equal_accuracy.coarsen == (1,) and config.hybrid.tolerance == 1e-3
    # a section the file lacks has the default run settings
    bare = load(write(tmp_path, "[hybrid]\ntolerance = 1e-3\n", "bare.toml"))
    assert bare.run_settings("train") == LaunchSettings() and bare.run_settings("hybrid") == HybridRunSettings()


@pytest.mark.parametrize("text, message", [
    ("[hybrid]\ntolerance = 1e-3\nrepeats = 0", "hybrid.repeats: must be >= 1, got 0"),
    ("[hybrid]\ntolerance = 1e-3\nsamples = 0", "hybrid.samples: must be >= 1, got 0"),
    ("[audit.equal_accuracy]\nrepeats = 0", "audit.equal_accuracy.repeats: must be >= 1, got 0"),
    ("[train]\nnum_processes = 2\nprocess_id = 2", "train.process_id: must be in [0, num_processes), got 2"),
    ("[hybrid]\ntolerance = 1e-3\nrepeat = 1", "hybrid.repeat: unknown key (allowed: correct_every, growth, guard, "
                                                "repeats, samples, solver_method, solver_substeps, steps, tolerance)"),
    ("[audit.equal_accuracy]\nrepeat = 1", "audit.equal_accuracy.repeat: unknown key (allowed: coarsen, enabled, "
                                           "methods, repeats, rtols, substeps)"),
])
def test_run_settings_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text + "\n"), sections=[text.split("]")[0].strip("[").split(".")[0]])
    assert str(e.value) == message


def test_a_section_class_that_cannot_be_imported_is_a_bug_not_a_skip(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(_config.SECTIONS, "hybrid", ("byai_no_such_module", "HybridConfig"))
    path = write(tmp_path, "[hybrid]\ntolerance = 1e-3\n")
    with pytest.raises(ImportError):
        load(path)
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 3 and "byai_no_such_module" in err
