"""A PDE class written outside byai, named in a config as ``module:Class``, through ``byai run``."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import datasets
import solvers
from experiments._cli import main

HERE = Path(__file__).parent / "user_pdes"

CONFIG = """
[data]
pde = "my_pdes:DampedBurgers"
params = { nu = 0.2, damping = 0.3 }
shape = [32]
t_end = 0.5
n_times = 6
rtol = 1e-7
ic = { kind = "default", cutoff = 2, amplitude = 0.3 }
splits = { train = 16, val = 2, calibration = 10, test = 3 }
batch_size = 16

[model]
kind = "fno"
width = 8
modes = [8]
depth = 1

[train]
steps = 30
batch_size = 8
lr = 3e-3
warmup = 5
val_every = 15
checkpoint_every = 15

[audit]
requirement = "rel_l2<=10"
horizon = 3
alpha = 0.1
equal_accuracy = { coarsen = [1], substeps = [1], methods = ["etdrk4"], repeats = 1 }

[hybrid]
tolerance = 1.0
guard = "conformal"
repeats = 1
"""


@pytest.fixture
def user_module_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    yield
    sys.modules.pop("my_pdes", None)


def test_the_catalogue_reads_a_user_class(user_module_path):
    cls = datasets.pde_class("my_pdes:DampedBurgers")
    assert cls.name == "DampedBurgers" and cls.dims == (1, 2, 3) and cls.channels == 1
    assert cls.parameters() == {"nu": 0.1, "damping": 0.0}
    spec = datasets.DatasetSpec(pde="my_pdes:DampedBurgers", shape=(16,), params={"nu": 0.3})
    assert spec.pde_name == "DampedBurgers" and spec.problem == datasets.Trajectory()
    with pytest.raises(ValueError, match="^params.mu: unknown parameter"):
        datasets.DatasetSpec(pde="my_pdes:DampedBurgers", shape=(16,), params={"mu": 0.3})
    with pytest.raises(ValueError, match="^pde: 'my_pdes:NotAPDE' is not a solvers.pytree_dataclass subclass"):
        datasets.DatasetSpec(pde="my_pdes:NotAPDE", shape=(16,))
    with pytest.raises(ValueError, match="^pde: cannot import module 'no_such_module_xyz'"):
        datasets.DatasetSpec(pde="no_such_module_xyz:Foo", shape=(16,))


def test_a_file_never_imports_what_it_names(tmp_path, monkeypatch, user_module_path):
    """A data file's recorded PDE is looked up among the built-ins and the classes the caller knows; an unknown
    name is refused, never imported."""
    marker = tmp_path / "imported"
    monkeypatch.setenv("BYAI_TEST_IMPORT_MARKER", str(marker))
    u = np.zeros((1, 2, 8, 1))
    for name in ("marker_on_import:Evil", "marker_on_import"):
        path = datasets.write(tmp_path / "f.h5", u, t=[0.0, 1.0], grid=solvers.Grid((8,)), pde=name, pde_params={})
        with pytest.raises(datasets.DatasetError, match="is not a byai PDE"):
            datasets.pde_from_attrs(datasets.open(path))
    assert not marker.exists() and "marker_on_import" not in sys.modules
    # a class the caller knows (the config's) is found by its name
    from my_pdes import DampedBurgers

    path = datasets.write(tmp_path / "g.h5", u, t=[0.0, 1.0], grid=solvers.Grid((8,)), pde="DampedBurgers",
                          pde_params={"nu": 0.5})
    pde, grid = datasets.pde_from_attrs(datasets.open(path), known=(DampedBurgers,))
    assert isinstance(pde, DampedBurgers) and pde.nu == 0.5 and grid.shape == (8,)


@pytest.mark.slow
def test_user_pde_runs_through_byai_run_with_honest_bounds(tmp_path, capsys, user_module_path):
    config = tmp_path / "user.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("data/test.h5", "model/metrics.jsonl", "audit/report.json", "hybrid/hybrid.json"):
        assert (out / name).exists(), name
    assert "audit verdict: PASSED" in captured.out

    test = datasets.open(out / "data" / "test.h5")
    assert test.attrs["pde"] == "DampedBurgers"
    report = json.loads((out / "audit" / "report.json").read_text())
    # the audit rebuilt the user's PDE from the config's class: physics and equal accuracy are measured
    assert report["equal_accuracy"]["speedup"] is not None
    assert "residual" in report["physics"], report["physics"]

    # honest bounds: each frame's recorded error bound covers its distance to the same PDE solved far tighter
    # on a twice finer grid
    from my_pdes import DampedBurgers

    u = np.asarray(test["u"].values)
    err = np.asarray(test["error_estimate"].values)
    t = np.asarray(test["time"].values)
    fine = solvers.Grid((64,))
    pde = DampedBurgers(fine, nu=0.2, damping=0.3)
    for i in range(u.shape[0]):
        u0 = np.asarray(solvers.resample(u[i, 0], solvers.Grid((32,)), fine))
        ref = np.asarray(solvers.solve(pde, u0, t, rtol=1e-12, atol=1e-14).u)[:, ::2]
        true = np.sqrt(np.mean((u[i] - ref) ** 2, axis=(1, 2)))
        assert np.all(true <= err[i]), (i, true, err[i])

    # data of the user's PDE with a config naming another PDE: refused in one line
    other = tmp_path / "other.toml"
    other.write_text(CONFIG.replace('pde = "my_pdes:DampedBurgers"\nparams = { nu = 0.2, damping = 0.3 }',
                                    'pde = "burgers"\nparams = { nu = 0.2 }'))
    for verb in (["audit", "--model", str(out / "model")], ["hybrid", "--model", str(out / "model")], ["train"]):
        rc = main([verb[0], str(other), "--data", str(out / "data"), *verb[1:], "--out", str(tmp_path / verb[0])])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "holds data of pde 'DampedBurgers', but the config's [data] pde is 'burgers'" in err
