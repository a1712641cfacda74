"""rollout of an ETD stepper carries the state in Fourier space and writes frames into a batch-first
buffer; its frames must be those of the stepper applied n times (to rounding), batched or not, and
other dtypes and plain callables must keep the step-by-step path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers import Burgers, Grid, KuramotoSivashinsky, NavierStokes2D, rollout, stepper


def _stepwise(step, u0, n):
    frames = [u0]
    for _ in range(n):
        frames.append(step(frames[-1]))
    return jnp.stack(frames)


@pytest.mark.parametrize("pde", [
    KuramotoSivashinsky(Grid((32,), (22.0,))),
    Burgers(Grid((16, 12)), nu=0.05),
    NavierStokes2D(Grid((16, 16)), nu=0.01, forcing="kolmogorov", drag=0.1),
], ids=["ks1d", "burgers2d", "ns2d"])
def test_rollout_equals_repeated_steps(pde):
    rng = np.random.default_rng(1)
    u0 = jnp.asarray(0.5 * rng.standard_normal(pde.state_shape))
    step = stepper(pde, 0.05)
    n = 7
    traj = jax.jit(lambda u: rollout(step, u, n))(u0)
    ref = jax.jit(lambda u: _stepwise(step, u, n))(u0)
    assert traj.shape == (n + 1, *pde.state_shape) and traj.dtype == jnp.float64
    assert np.array_equal(np.asarray(traj[0]), np.asarray(u0))  # the initial frame exactly
    scale = float(jnp.max(jnp.abs(ref)))
    assert float(jnp.max(jnp.abs(traj - ref))) <= 1e-13 * scale


def test_rollout_under_vmap_is_batch_first_and_matches_each_sample():
    pde = KuramotoSivashinsky(Grid((32,), (22.0,)))
    step = stepper(pde, 0.1)
    u0 = jnp.asarray(np.random.default_rng(2).standard_normal((3, 32, 1)))
    batched = jax.jit(jax.vmap(lambda u: rollout(step, u, 5)))(u0)
    assert batched.shape == (3, 6, 32, 1)
    for b in range(3):
        one = _stepwise(step, u0[b], 5)
        assert float(jnp.max(jnp.abs(batched[b] - one))) <= 1e-13 * float(jnp.max(jnp.abs(one)))


def test_rollout_keeps_stepwise_path_for_float32_and_plain_callables():
    pde = KuramotoSivashinsky(Grid((32,), (22.0,)))
    step = stepper(pde, 0.1)
    u32 = jnp.asarray(np.cos(2 * np.pi * np.arange(32) / 32)[:, None], dtype=jnp.float32)
    assert not step.carries_fourier(u32)  # a float32 state is rounded to float32 after every step
    traj = rollout(step, u32, 3)
    assert traj.dtype == jnp.float32
    assert np.array_equal(np.asarray(traj), np.asarray(_stepwise(step, u32, 3)))
    plain = rollout(lambda u: 2.0 * u, jnp.ones((4, 1)), 3)
    assert np.array_equal(np.asarray(plain[:, 0, 0]), [1.0, 2.0, 4.0, 8.0])


@pytest.mark.parametrize("as_callable", [False, True], ids=["etd-stepper", "plain-callable"])
def test_rollout_every_keeps_every_kth_state(as_callable):
    pde = KuramotoSivashinsky(Grid((32,), (22.0,)))
    step = stepper(pde, 0.05)
    f = (lambda u: step(u)) if as_callable else step
    u0 = jnp.asarray(0.5 * np.random.default_rng(2).standard_normal(pde.state_shape))
    every, n = 3, 4
    kept = jax.jit(lambda u: rollout(f, u, n, every=every))(u0)
    full = jax.jit(lambda u: _stepwise(step, u, n * every))(u0)
    assert kept.shape == (n + 1, *pde.state_shape)
    assert np.array_equal(np.asarray(kept[0]), np.asarray(u0))
    scale = float(jnp.max(jnp.abs(full)))
    assert float(jnp.max(jnp.abs(kept - full[::every]))) <= 1e-13 * scale
    with pytest.raises(ValueError, match="every must be"):
        rollout(step, u0, n, every=0)
