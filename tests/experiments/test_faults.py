"""Faults of the machine at the command line: a full disk, a read-only file system, a file size limit.

Each ends in one line naming the path and the cause, exit 2, and keeps what was complete: after the
fault is gone the same command resumes and produces the bytes of an undisturbed run. The small disks
are tmpfs mounts of our own (the test is skipped, saying why, where mounting is not permitted).
"""

import errno
import json
from pathlib import Path

import pytest

from experiments._cli import machine_fault, main

from .conftest import SPLITS, copy_run, error_line, remount, same_files, same_model, small_disk
from .conftest import byai as run_byai

RESUMES = "what was complete is kept and a rerun resumes"


def byai(capsys, *argv):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.slow
def test_generate_on_a_full_disk_resumes_to_the_same_bytes(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    with small_disk(tmp_path / "disk", "48k") as disk:
        out = disk / "data"
        rc, _, err = byai(capsys, "generate", config, "--out", out, "--quiet")
        assert rc == 2
        line = error_line(err)
        assert line.startswith("byai generate: error: no space left on device while writing ") and str(out) in line
        assert line.endswith(RESUMES)
        remount(disk, "size=4m")
        rc, _, err = byai(capsys, "generate", config, "--out", out, "--quiet")
        assert rc == 0, err
        same_files(out, reference / "data", [f"{s}.h5" for s in SPLITS])


@pytest.mark.slow
def test_run_on_a_full_disk_keeps_its_data_and_resumes(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    with small_disk(tmp_path / "disk", "256k") as disk:
        out = disk / "run"
        rc, _, err = byai(capsys, "run", config, "--out", out, "--quiet")
        assert rc == 2, err
        line = error_line(err)
        assert line.startswith("byai run: error: no space left on device while writing ") and str(out) in line
        assert line.endswith(RESUMES)
        assert set(json.loads((out / "run.json").read_text())) == {"generate"}  # the data was complete
        remount(disk, "size=4m")
        rc, stdout, err = byai(capsys, "run", config, "--out", out, "--quiet")
        assert rc == 0, err
        assert "[generate] complete (resumed: not rerun)" in err and "[train] running into" in err
        assert "audit verdict: PASSED" in stdout
        same_files(out / "data", reference / "data", [f"{s}.h5" for s in SPLITS])
        same_model(out / "model", reference / "model")


@pytest.mark.slow
def test_audit_on_a_full_disk_writes_no_report_json_and_a_rerun_redoes_it(tmp_path, capsys, tiny_run):
    config, reference = tiny_run
    with small_disk(tmp_path / "disk", "100k") as disk:  # predictions.h5 fits, report.html does not
        out = disk / "audit"
        argv = ("audit", config, "--data", reference / "data", "--model", reference / "model", "--out", out)
        rc, _, err = byai(capsys, *argv)
        assert rc == 2
        line = error_line(err)
        assert line.startswith("byai audit: error: no space left on device while writing ") and str(out) in line
        assert not (out / "report.json").exists()  # written last: never without its report.html
        assert not list(out.glob("*.tmp"))
        remount(disk, "size=4m")
        rc, _, err = byai(capsys, *argv)
        assert rc == 0, err
        assert {p.name for p in out.iterdir()} == {"predictions.h5", "report.html", "report.json"}
        assert json.loads((out / "report.json").read_text())["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["generate", "train", "audit", "hybrid", "run"])
def test_read_only_out_is_one_line(tmp_path, capsys, tiny_run, verb):
    config, reference = tiny_run
    with small_disk(tmp_path / "disk", "1m") as disk:
        remount(disk, "ro")
        out = disk / verb
        inputs = {"generate": (), "run": (), "train": ("--data", reference / "data"),
                  "audit": ("--data", reference / "data", "--model", reference / "model"),
                  "hybrid": ("--data", reference / "data", "--model", reference / "model")}[verb]
        rc, _, err = byai(capsys, verb, config, *inputs, "--out", out, "--quiet")
        assert rc == 2
        assert error_line(err) == f"byai {verb}: error: read-only file system while writing {out}; {RESUMES}"


def test_out_below_a_file_is_one_line(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[data]\npde = \"burgers\"\nshape = [32]\n")
    (tmp_path / "file").write_text("")
    rc, _, err = byai(capsys, "generate", config, "--out", tmp_path / "file" / "data")
    assert rc == 2
    assert error_line(err) == (f"byai generate: error: --out {tmp_path / 'file' / 'data'}: {tmp_path / 'file'} is a "
                               "file, not a folder")


def test_a_file_size_limit_is_one_line(tmp_path, capsys, tiny_run, monkeypatch):
    """RLIMIT_FSIZE (with SIGXFSZ ignored) makes a write fail with EFBIG without any mount."""
    import resource
    import signal

    config, reference = tiny_run
    out = tmp_path / "audit"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # predictions.h5 fits, report.html does not
    try:
        rc, _, err = byai(capsys, "audit", config, "--data", reference / "data", "--model", reference / "model",
                          "--out", out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert rc == 2
    line = error_line(err)
    assert line.startswith("byai audit: error: file too large") and str(out) in line and line.endswith(RESUMES)
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("error, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/d/x.h5"),
     "no space left on device while writing /d/x.h5; " + RESUMES),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded while writing under /out; " + RESUMES),
    (OSError(errno.EIO, "Input/output error", "/d/y"),
     "input/output error of the storage device while reading or writing /d/y; " + RESUMES),
    (OSError(errno.EACCES, "Permission denied", "/d/z"), "permission denied while reading or writing /d/z; " + RESUMES),
    (OSError(28, "Can't synchronously write data (file write failed: time = Mon, filename = '/d/p.h5', "
                 "file descriptor = 3, errno = 28, error message = 'No space left on device')"),
     "no space left on device while writing /d/p.h5; " + RESUMES),
    (OSError("Unable to synchronously create file (unable to open file: name = '/r/q.h5', errno = 30, "
             "error message = 'Read-only file system', flags = 13)"),
     "read-only file system while writing /r/q.h5; " + RESUMES),
    (OSError(errno.ENOENT, "No such file or directory", "/d/a"), None),  # not the machine's fault: a bug
    (ValueError("unrelated"), None),
])
def test_machine_faults_are_recognised(error, line):
    assert machine_fault(error, "/out") == line


def test_a_machine_fault_behind_another_exception_is_found():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("checkpoint failed") from inner
    except RuntimeError as e:
        assert machine_fault(e, "/out").startswith("no space left on device while writing under /out")


def test_a_full_disk_inside_a_checkpoint_write_is_an_os_error():
    """tensorstore gives orbax's write errors as ValueError text; the errno in it is the OSError it is."""
    from surrogates._checkpoint import _os_error

    text = ('RESOURCE_EXHAUSTED: Error writing "1.step.value/0" in OCDBT database at local file "/m/best/20.orbax-'
            'checkpoint-tmp/": Failed to write 674 bytes to file 36: No space left on device [os_error_code=\'28\']')
    assert _os_error(RuntimeError("save failed"), Path("/m/best/20")) is None
    try:
        try:
            raise ValueError(text)
        except ValueError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as e:
        fault = _os_error(e, Path("/m/best/20"))
    assert isinstance(fault, OSError) and fault.errno == errno.ENOSPC and fault.filename == "/m/best/20"
    assert machine_fault(fault) == "no space left on device while writing /m/best/20; " + RESUMES


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line_and_resumes(tmp_path, tiny_run):
    """In a real process (orbax's writer threads and tensorstore print to stderr themselves): one line, exit 2,
    whether the disk fills in a checkpoint's arrays or in a file of byai's; then --resume finishes the run."""
    config, reference = tiny_run
    for size in ("32k", "64k"):
        with small_disk(tmp_path / f"disk{size}", size) as disk:
            out = disk / "model"
            argv = ("train", config, "--data", reference / "data", "--out", out, "--quiet")
            proc = run_byai(*argv)
            assert proc.returncode == 2, proc.stderr
            line = error_line(proc.stderr)
            assert line.startswith("byai train: error: no space left on device while writing ") and str(out) in line
            assert line.endswith(RESUMES)
            remount(disk, "size=4m")
            proc = run_byai(*argv, "--resume")
            assert proc.returncode == 0, proc.stderr
            same_model(out, reference / "model")
