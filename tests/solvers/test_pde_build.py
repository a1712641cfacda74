"""Rung 1 of the solver ladder: every PDE builds in each dimension it supports, its operators have
the right shapes, one step is finite; unsupported dimensions and bad physics raise ValueError."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers import (Advection, AllenCahn, Burgers, Diffusion, GrayScott, Grid, KdV, KuramotoSivashinsky,
                     NavierStokes2D, rollout, stepper)

SHAPES = {1: (16,), 2: (8, 12), 3: (6, 8, 8)}
SUPPORTED = [
    (Advection, {"c": 0.5}, (1, 2, 3)),
    (Diffusion, {"nu": 0.1}, (1, 2, 3)),
    (Burgers, {"nu": 0.1}, (1, 2)),
    (KdV, {}, (1,)),
    (KuramotoSivashinsky, {}, (1, 2)),
    (AllenCahn, {"eps": 0.1}, (1, 2, 3)),
    (GrayScott, {}, (1, 2, 3)),
    (NavierStokes2D, {"nu": 0.01, "forcing": "kolmogorov"}, (2,)),
]
CASES = [(cls, kw, d) for cls, kw, dims in SUPPORTED for d in dims]
UNSUPPORTED = [(cls, kw, d) for cls, kw, dims in SUPPORTED for d in (1, 2, 3) if d not in dims]


@pytest.mark.parametrize("cls,kw,dim", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_builds_and_steps(cls, kw, dim):
    grid = Grid(SHAPES[dim])
    pde = cls(grid, **kw)
    c = pde.channels
    assert pde.state_shape == (*grid.shape, c)
    assert pde.linear().shape == (*grid.spectral_shape, c)
    rng = np.random.default_rng(0)
    u = 0.1 * rng.standard_normal(pde.state_shape) + (0.5 if cls is GrayScott else 0.0)
    n_hat = pde.nonlinear(grid.fft(jnp.asarray(u)))
    assert n_hat.shape == (*grid.spectral_shape, c)
    step = stepper(pde, 0.01)
    out = jax.jit(lambda v: step(v))(jnp.asarray(u))
    assert out.shape == pde.state_shape and out.dtype == jnp.float64
    assert np.all(np.isfinite(np.asarray(out)))
    assert not np.allclose(out, u)  # it moved


@pytest.mark.parametrize("cls,kw,dim", UNSUPPORTED, ids=lambda v: getattr(v, "__name__", str(v)))
def test_unsupported_dimension_raises(cls, kw, dim):
    with pytest.raises(ValueError, match="grid for"):
        cls(Grid(SHAPES[dim]), **kw)


@pytest.mark.parametrize("cls,name,value", [
    (Diffusion, "nu", 0.0), (Diffusion, "nu", -1.0), (Burgers, "nu", float("nan")),
    (AllenCahn, "eps", -0.1), (GrayScott, "f", 0.0), (GrayScott, "k", -1.0), (GrayScott, "du", 0.0),
    (GrayScott, "dv", float("inf")), (NavierStokes2D, "nu", -1e-3), (Advection, "c", float("nan")),
])
def test_bad_physics_raises_naming_it(cls, name, value):
    grid = Grid((8, 8)) if cls is NavierStokes2D else Grid((8,))
    with pytest.raises(ValueError, match=rf"^{name} must"):
        cls(grid, **{name: value})


def test_bad_forcing_raises():
    with pytest.raises(ValueError, match="forcing"):
        NavierStokes2D(Grid((8, 8)), forcing="shear")
    with pytest.raises(ValueError, match="forcing"):
        NavierStokes2D(Grid((8, 8)), forcing=np.zeros((4, 4)))


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf")])
def test_stepper_rejects_a_dt_it_cannot_take(dt):
    with pytest.raises(ValueError, match="dt must be > 0"):
        stepper(Diffusion(Grid((8,))), dt)


def test_stepper_rejects_unknown_method_and_non_pde():
    with pytest.raises(ValueError, match="method must be one of"):
        stepper(Diffusion(Grid((8,))), 0.1, method="rk4")
    with pytest.raises(ValueError, match="pde must be"):
        stepper("heat", 0.1)
    with pytest.raises(ValueError, match="n must be"):
        rollout(stepper(Diffusion(Grid((8,))), 0.1), jnp.zeros((8, 1)), -1)


def test_stepper_vmaps_over_a_batch_and_over_a_parameter():
    grid = Grid((32,))
    (x,) = grid.coordinates()
    u0 = jnp.asarray(np.sin(x)[:, None])
    one = jax.jit(lambda nu, dt, u: stepper(Burgers(grid, nu=nu), dt)(u))
    batch = jnp.stack([u0, 2 * u0, -u0])
    step = stepper(Burgers(grid, nu=0.1), 0.01)
    out = jax.jit(jax.vmap(lambda v: step(v)))(batch)
    for b in range(3):
        np.testing.assert_allclose(out[b], one(0.1, 0.01, batch[b]), rtol=0, atol=1e-14)
    # over the viscosity and the step size: each entry equals its own stepper
    nus, dts = jnp.array([0.05, 0.1, 0.2]), jnp.array([0.01, 0.02, 0.005])
    by_param = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(nus, dts, u0)
    for i in range(3):
        np.testing.assert_allclose(by_param[i], one(nus[i], dts[i], u0), rtol=0, atol=1e-14)
    assert not np.allclose(by_param[0], by_param[2])


def test_forced_pdes_stack_into_one_pytree_and_vmap():
    """The hybrid and the state guard stack one PDE per sample (jax.tree.map): a forcing with leading batch
    axes is that batch, and each vmapped step equals its own PDE's."""
    grid = Grid((16, 16))
    pdes = [NavierStokes2D(grid, nu=nu, drag=0.1, forcing="kolmogorov") for nu in (0.05, 0.08)]
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *pdes)
    assert stacked.forcing.shape == (2, 16, 16, 1)
    u = jnp.asarray(np.random.default_rng(0).standard_normal((2, 16, 16, 1)))
    out = jax.jit(jax.vmap(lambda p, v: stepper(p, 0.05)(v)))(stacked, u)
    for i, pde in enumerate(pdes):
        np.testing.assert_allclose(out[i], stepper(pde, 0.05)(u[i]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="forcing"):
        NavierStokes2D(grid, forcing=np.zeros((2, 16, 8, 1)))


def test_pdes_rebuild_from_placeholder_leaves():
    # jax.tree utilities and jit(...).lower rebuild PDEs with non-array leaves; validation must let
    # them through (it checks numbers and arrays only)
    pde = NavierStokes2D(Grid((8, 8)), nu=0.01, forcing="kolmogorov")
    shapes = jax.tree.map(lambda v: None, pde)
    assert shapes.nu is None and shapes.forcing is None
    lowered = jax.jit(lambda p, u: stepper(p, 0.1)(u)).lower(pde, jnp.zeros((8, 8, 1)))
    assert lowered is not None


def test_stepper_jits_directly_and_is_exact_for_heat():
    grid = Grid((16,))
    u = jnp.asarray(np.sin(grid.coordinates()[0])[:, None])
    step = stepper(Diffusion(grid, nu=1.0), 0.1)
    np.testing.assert_allclose(jax.jit(step)(u), np.exp(-0.1) * np.asarray(u), rtol=0, atol=1e-15)
