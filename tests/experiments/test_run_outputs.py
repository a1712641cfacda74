"""``byai run`` believes its files, not only its record: a stage recorded complete whose outputs are gone or
damaged is rerun, saying why; one ``byai run`` writes into a folder at a time; a config with nothing to do,
a binary config and a config path that is a folder are one line naming the file."""

import json
import shutil
import time

import pytest

from experiments._cli import main

from .conftest import SPLITS, copy_run, error_line, same_files, same_model, start

COMPLETE = "complete (resumed: not rerun)"


def byai(capsys, *argv):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def first_stages(config, tmp_path, sections=("data", "model", "train")):
    """The tiny config with only ``sections`` (the stages needing the others are skipped; the fingerprints of
    those that run are unchanged, so the reference run's record holds for them)."""
    parts = config.read_text().split("\n[")[1:]
    path = tmp_path / "first.toml"
    path.write_text("".join("\n[" + part for part in parts if part.split("]")[0] in sections))
    return path


@pytest.mark.slow
def test_a_truncated_report_is_redone(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    out = copy_run(reference, tmp_path / "run")
    report = out / "audit" / "report.json"
    report.write_text(report.read_text()[:100])
    rc, stdout, err = byai(capsys, "run", config, "--out", out, "--quiet")
    assert rc == 0, err
    assert f"[audit] running into {out / 'audit'} (recorded complete, but {report} is not a readable JSON report)" \
        in err
    assert stdout.count(COMPLETE) == 2 and "audit     done" in stdout and "hybrid    done" in stdout
    assert json.loads(report.read_text())["passed"] and "audit verdict: PASSED" in stdout


@pytest.mark.slow
def test_deleted_checkpoints_are_retrained(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    out = copy_run(reference, tmp_path / "run")
    shutil.rmtree(out / "model" / "checkpoints")
    rc, stdout, err = byai(capsys, "run", first_stages(config, tmp_path), "--out", out, "--quiet")
    assert rc == 0, err
    final = out / "model" / "checkpoints" / "40"
    assert f"[train] running into {out / 'model'} (recorded complete, but its final checkpoint {final} is missing " \
           "or unreadable)" in err
    assert "[generate] complete" in err and "[train] complete" not in err
    assert "train     done" in stdout and "audit verdict" not in stdout  # the audit was skipped: no stale verdict
    same_model(out / "model", reference / "model")


@pytest.mark.slow
def test_a_deleted_split_file_is_regenerated(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    out = copy_run(reference, tmp_path / "run")
    (out / "data" / "test.h5").unlink()
    rc, stdout, err = byai(capsys, "run", first_stages(config, tmp_path), "--out", out, "--quiet")
    assert rc == 0, err
    assert f"[generate] running into {out / 'data'} (recorded complete, but {out / 'data' / 'test.h5'} is missing)" \
        in err
    assert COMPLETE not in stdout
    same_files(out / "data", reference / "data", [f"{s}.h5" for s in SPLITS])
    # a damaged split file (cut short) is not complete either
    path = out / "data" / "val.h5"
    path.write_bytes(path.read_bytes()[:4096])
    rc, stdout, err = byai(capsys, "run", first_stages(config, tmp_path), "--out", out, "--quiet")
    assert rc == 2  # the generator refuses to overwrite a damaged file: one line naming it
    assert "[generate] running into" in err and "recorded complete, but" in err and str(path) in error_line(err)


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused(tmp_path, tiny_run):
    config, reference = tiny_run
    data_only = first_stages(config, tmp_path, ("data",))
    out = tmp_path / "run"
    first = start("run", data_only, "--out", out, "--quiet")
    lock = out / ".byai.lock"
    t0 = time.monotonic()
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None and time.monotonic() - t0 < 120, first.stderr.read() if first.poll() else "late"
        time.sleep(0.05)
    second = start("run", data_only, "--out", out, "--quiet")
    _, err = second.communicate(timeout=300)
    assert first.poll() is None, "the first run ended before the second one was refused"
    assert second.returncode == 2
    assert error_line(err) == (f"byai run: error: {out} is being written by another byai process (pid {first.pid}); "
                               "wait for it to finish or choose another output folder")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    same_files(out / "data", reference / "data", [f"{s}.h5" for s in SPLITS])
    assert set(json.loads((out / "run.json").read_text())) == {"generate"} and not lock.exists()


def test_an_empty_config_has_nothing_to_run(tmp_path, capsys):
    path = tmp_path / "empty.toml"
    path.write_text("# nothing here\n")
    rc, _, err = byai(capsys, "run", path, "--out", tmp_path / "out")
    assert rc == 2
    assert error_line(err) == (f"byai run: error: {path}: nothing to run: the config has none of the sections [data], "
                               "[model], [train], [audit], [hybrid], [crossover] (the first stage, generate, needs [data])")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["run", "generate"])
def test_a_binary_config_names_the_file(tmp_path, capsys, verb):
    path = tmp_path / "binary.toml"
    data = b"[data]\npde = \"burgers\"\n\xff\xfe\x00\x01"
    path.write_bytes(data)
    offset = data.index(b"\xff")
    rc, _, err = byai(capsys, verb, path, "--out", tmp_path / "out")
    assert rc == 2
    assert error_line(err) == (f"byai {verb}: error: config file {path} is not UTF-8 text (byte 0xff at offset "
                               f"{offset}); a TOML config is UTF-8 text")


@pytest.mark.parametrize("verb", ["run", "generate"])
def test_a_config_that_is_a_folder_says_so(tmp_path, capsys, verb):
    path = tmp_path / "folder.toml"
    path.mkdir()
    rc, _, err = byai(capsys, verb, path, "--out", tmp_path / "out")
    assert rc == 2
    assert error_line(err) == f"byai {verb}: error: config file {path} is a folder, not a TOML file"
