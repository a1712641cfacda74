"""A PDEBench file written by an independent script imports with ``byai import``, trains and audits end to end."""

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import solvers
from experiments._cli import main

CONFIG = """
[model]
kind = "fno"
width = 8
modes = [8]
depth = 1

[train]
steps = 20
batch_size = 8
lr = 3e-3
warmup = 2
val_every = 10
checkpoint_every = 10

[audit]
requirement = "rel_l2<=10"
alpha = 0.2
equal_accuracy = { coarsen = [1], substeps = [1], methods = ["etdrk4"] }
"""


def _pdebench_burgers(path, n=50, nt=6, nx=32, nu=0.05):
    """As PDEBench's burgers writer: float32 ``tensor`` (N, T, X), cell-centred ``x-coordinate`` on [-1, 1] and a
    float32 ``t-coordinate`` with one value more than frames (``arange(T + 1) * dt``)."""
    grid = solvers.Grid((nx,), (2.0,))
    step = solvers.stepper(solvers.Burgers(grid, nu=nu), 0.005)
    rng = np.random.default_rng(3)
    (x,) = grid.coordinates()
    u0 = sum(rng.normal(size=(n, 1)) / k * np.sin(np.pi * k * x[None] + rng.uniform(0, 6, size=(n, 1)))
             for k in range(1, 4))[..., None]
    traj = jax.vmap(lambda u: solvers.rollout(lambda v: jax.lax.fori_loop(0, 10, lambda i, w: step(w), v), u, nt - 1))
    u = np.asarray(traj(jnp.asarray(u0)))[..., 0].astype(np.float32)
    xe = np.linspace(-1, 1, nx + 1, dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=u)
        f.create_dataset("x-coordinate", data=xe[:-1] + np.float32(0.5) * (xe[1] - xe[0]))
        f.create_dataset("t-coordinate", data=np.arange(nt + 1, dtype=np.float32) * np.float32(0.05))


@pytest.mark.slow
def test_pdebench_burgers_imports_trains_and_audits(tmp_path, capsys):
    src = tmp_path / "1D_Burgers_Sols_Nu0.05.hdf5"
    _pdebench_burgers(src)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    data, model, report = tmp_path / "data", tmp_path / "model", tmp_path / "audit"
    assert main(["import", "pdebench", str(src), "--out", str(data), "--pde", "burgers", "--param", "nu=0.05",
                 "--quiet"]) == 0
    assert main(["train", str(config), "--data", str(data), "--out", str(model), "--quiet"]) == 0
    rc = main(["audit", str(config), "--data", str(data), "--model", str(model), "--out", str(report), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads((report / "report.json").read_text())
    assert summary["passed"] is True
    assert summary["tolerance_multiple"] == "unknown"  # imported data: no solver tolerance
    assert "pdebench" in summary
    # the float32 t-coordinate's steps (0.04999995 .. 0.05000007) are one save interval of 0.05
    assert summary["metrics"]["correlation_time"]["dt"] == pytest.approx(0.05, rel=1e-12)


def _pdebench_darcy(path, n=40, m=16, beta=1.0):
    """As PDEBench's Darcy data: ``tensor`` (N, 1, X, Y) solutions, ``nu`` (N, X, Y) coefficients on cell centres,
    the source ``beta`` as an attribute; here solved with byai's finite-volume Darcy."""
    rng = np.random.default_rng(4)
    grid = solvers.Grid((m, m), (1.0, 1.0))
    nu = np.where(rng.normal(size=(n, m, m)) > 0, 1.0, 0.1)
    sol = np.stack([np.asarray(solvers.Darcy(grid, coefficient=a, source=beta).solve_linear()[0]) for a in nu])
    xc = ((np.arange(m) + 0.5) / m).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=sol[:, None].astype(np.float32))
        f.create_dataset("nu", data=nu.astype(np.float32))
        f.create_dataset("x-coordinate", data=xc)
        f.create_dataset("y-coordinate", data=xc)
        f.attrs["beta"] = beta


@pytest.mark.slow
def test_pdebench_darcy_imports_trains_and_audits_as_a_steady_map(tmp_path, capsys):
    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    _pdebench_darcy(src)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.replace('equal_accuracy = { coarsen = [1], substeps = [1], methods = ["etdrk4"] }',
                                     "equal_accuracy = { enabled = false }"))
    data, model, report = tmp_path / "data", tmp_path / "model", tmp_path / "audit"
    assert main(["import", "pdebench", str(src), "--out", str(data), "--quiet"]) == 0
    assert main(["train", str(config), "--data", str(data), "--out", str(model), "--quiet"]) == 0
    rc = main(["audit", str(config), "--data", str(data), "--model", str(model), "--out", str(report), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads((report / "report.json").read_text())
    assert summary["problem"] == "steady_map" and summary["passed"] is True
