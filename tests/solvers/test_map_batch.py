"""map_batch: a function of a batch computed in parts on worker threads gives the whole batch's result,
in order, with the shapes and dtypes of one call; it runs the parts on separate threads, and refuses bad
arguments."""

import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers import Grid, KuramotoSivashinsky, default_workers, map_batch, rollout, stepper


def test_parts_of_a_batched_rollout_equal_the_whole_batch():
    pde = KuramotoSivashinsky(Grid((32,), (22.0,)))
    step = stepper(pde, 0.1)
    roll = jax.jit(jax.vmap(lambda u: rollout(step, u, 6)))
    u0 = jnp.asarray(0.5 * np.random.default_rng(0).standard_normal((7, 32, 1)))
    whole = roll(u0)
    for workers in (1, 2, 3, 7, 20):
        got = map_batch(roll, u0, workers=workers)
        assert got.shape == whole.shape and got.dtype == whole.dtype
        # each sample's arithmetic is its own: the parts agree with the whole batch to rounding
        assert float(jnp.max(jnp.abs(got - whole))) <= 1e-12 * float(jnp.max(jnp.abs(whole)))


def test_pytree_arguments_and_results_keep_their_order():
    def f(a, tree):
        return {"sum": a + tree["b"], "row": tree["c"][:, :1] * 2}

    a = np.arange(10.0)
    tree = {"b": np.arange(10.0) * 10, "c": np.arange(20.0).reshape(10, 2)}
    got = map_batch(f, a, tree, workers=4)
    assert np.array_equal(np.asarray(got["sum"]), a * 11)
    assert np.array_equal(np.asarray(got["row"]), tree["c"][:, :1] * 2)


def test_the_parts_run_on_separate_threads():
    seen = set()
    together = threading.Barrier(3, timeout=30)  # breaks (an error) unless three parts run at once

    def f(x):
        seen.add(threading.get_ident())
        together.wait()
        return x

    map_batch(f, np.zeros(6), workers=3)
    assert len(seen) == 3 and threading.get_ident() not in seen
    seen.clear()
    map_batch(lambda x: seen.add(threading.get_ident()) or x, np.zeros(6), workers=1)  # one part: called here
    assert seen == {threading.get_ident()}


def test_default_workers_are_the_usable_cores_on_cpu():
    assert jax.default_backend() == "cpu"  # the suite runs on CPU
    assert default_workers() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("args, workers, match", [
    ((np.zeros(4),), 0, "workers"),
    ((np.zeros(4),), 2.0, "workers"),
    ((np.zeros(4), np.zeros(5)), 2, "leading batch size"),
    ((np.float64(1.0),), 2, "leading batch size"),
    ((np.zeros(4),), True, "workers"),
])
def test_bad_arguments_are_named(args, workers, match):
    with pytest.raises(ValueError, match=match):
        map_batch(lambda *a: a, *args, workers=workers)


def test_a_result_that_is_not_a_batch_is_refused():
    with pytest.raises(ValueError, match="batch of its input's size"):
        map_batch(lambda x: x.sum(), np.zeros((4, 3)), workers=2)
