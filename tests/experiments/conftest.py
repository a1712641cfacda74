"""Shared set-up of the command-line fault tests: one finished tiny ``byai run`` (the reference every resumed
command must reproduce), the command line in a subprocess, and a small file system of our own (tmpfs)."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments._cli import main

from .test_run import TINY

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "val", "calibration", "test")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(config, out)``: the tiny config of ``test_run`` and a finished ``byai run`` of it (about a minute)."""
    folder = tmp_path_factory.mktemp("tiny_run")
    config = folder / "tiny.toml"
    config.write_text(TINY.replace("TOL", "1.0"))
    out = folder / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    return config, out


def copy_run(out: Path, to: Path) -> Path:
    """A copy of a run folder to change (the reference stays as it is)."""
    shutil.copytree(out, to)
    return to


def byai(*argv, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m experiments ARGV`` in a subprocess (the real command line, signals and exit status)."""
    return subprocess.run([sys.executable, "-m", "experiments", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)


def start(*argv, **kwargs) -> subprocess.Popen:
    """``python -m experiments ARGV`` started in the background (stdout and stderr to pipes)."""
    return subprocess.Popen([sys.executable, "-m", "experiments", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kwargs)


def error_line(err: str) -> str:
    """The one error line of a command's stderr (progress lines such as ``[train] running into`` may precede it)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("byai") and ": error: " in line]
    assert len(errors) == 1, f"expected one error line, got: {err!r}"
    assert err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


# attributes that record how a run went (its measured cost), not what it produced
RUN_ATTRS = ("cost",)


def same_files(a: Path, b: Path, names) -> None:
    """The files ``names`` hold the same content in folders ``a`` and ``b``: byte-identical, or for HDF5 files
    bit-identical variables and equal attributes except the measured cost (which differs from run to run)."""
    for name in names:
        if name.endswith(".h5"):
            _same_h5(a / name, b / name)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _same_h5(x: Path, y: Path) -> None:
    import h5py

    with h5py.File(x, "r") as f, h5py.File(y, "r") as g:
        attrs = {k for k in f.attrs if k not in RUN_ATTRS}
        assert attrs == {k for k in g.attrs if k not in RUN_ATTRS}, x.name
        for k in attrs:
            assert np.array_equal(np.asarray(f.attrs[k]), np.asarray(g.attrs[k])), (x.name, k)
        names = []
        f.visit(names.append)
        assert sorted(names) == sorted(n for n in _names(g)), x.name
        for n in names:
            if isinstance(f[n], h5py.Dataset):
                assert f[n].dtype == g[n].dtype and f[n].shape == g[n].shape, (x.name, n)
                assert np.asarray(f[n][()]).tobytes() == np.asarray(g[n][()]).tobytes(), (x.name, n)


def _names(g) -> list:
    out = []
    g.visit(out.append)
    return out


def same_model(a: Path, b: Path) -> None:
    """The trained models in ``a`` and ``b`` have bit-identical parameters."""
    import jax
    from flax import nnx

    import surrogates

    leaves = [jax.tree.leaves(nnx.state(surrogates.load(folder)[0])) for folder in (a, b)]
    assert len(leaves[0]) == len(leaves[1])
    for x, y in zip(*leaves):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` mounted on ``path`` (skips the test where mounting is not permitted); unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small file system here: {r.stderr.strip() or r.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    """Change a mounted tmpfs (``size=2m``: more space; ``ro``: read-only)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def env_without_coordinator() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("BYAI_")}
