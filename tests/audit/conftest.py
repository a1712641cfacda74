"""Small in-memory datasets in the byai layout, made with the solvers (no files, no datasets package needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from jax import lax

import solvers

DT = 0.1
NU = 0.05
N = 32


def fine(pde, dt, substeps=8):
    step = solvers.stepper(pde, dt / substeps)
    return lambda u: lax.fori_loop(0, substeps, lambda i, v: step(v), u)


def initial_conditions(grid, n, seed):
    """Smooth random fields: a few low Fourier modes with random amplitudes and phases."""
    rng = np.random.default_rng(seed)
    (x,) = grid.coordinates()
    u = np.zeros((n, grid.shape[0], 1))
    for k in range(1, 4):
        a = rng.normal(size=(n, 1)) / k
        ph = rng.uniform(0, 2 * np.pi, size=(n, 1))
        u[..., 0] += a * np.sin(k * x[None] + ph)
    return u


def make_split(pde, n, steps, seed, rtol=1e-6, atol=1e-10, dt=DT, name="burgers"):
    grid = pde.grid
    u0 = initial_conditions(grid, n, seed)
    traj = np.asarray(jax.jit(jax.vmap(lambda u: solvers.rollout(fine(pde, dt), u, steps)))(jnp.asarray(u0)))
    t = dt * np.arange(steps + 1)
    ds = xr.Dataset(
        {"u": (("sample", "time", "x", "channel"), traj),
         "error_estimate": (("sample", "time"), np.full(traj.shape[:2], 1e-9))},
        coords={"sample": np.arange(n), "time": t, "x": grid.coordinates()[0], "channel": ["u"]},
        attrs={"pde": name, "rtol": rtol, "atol": atol, "sha256": f"sha-{seed}", "tolerance_known": 1})
    return ds


@pytest.fixture(scope="session")
def burgers():
    grid = solvers.Grid((N,))
    return solvers.Burgers(grid, nu=NU)


@pytest.fixture(scope="session")
def splits(burgers):
    return make_split(burgers, 6, 8, seed=1), make_split(burgers, 19, 8, seed=2)


def quick_config(**kw):
    """An AuditConfig without the equal-accuracy search (it has its own tests)."""
    import audit

    return audit.AuditConfig(equal_accuracy=audit.EqualAccuracyConfig(enabled=False), **kw)


def write_split(path, ds, pde_name="burgers", nu=NU):
    """Write an in-memory split as a byai dataset file (datasets.write) with the grid and PDE attrs."""
    import datasets

    grid = solvers.Grid((ds.sizes["x"],))
    datasets.write(path, ds["u"].values, t=ds["time"].values, grid=grid, error_estimate=ds["error_estimate"].values,
                   channel_names=["u"], pde=pde_name, pde_params={"nu": nu}, rtol=ds.attrs["rtol"],
                   atol=ds.attrs["atol"])
    return path
