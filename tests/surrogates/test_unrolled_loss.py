"""Unrolled training: ``rollout_loss`` equals an autoregressive loss written out by hand, and with
``pushforward`` its gradient stops at the fed-back predictions (and only there)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import surrogates
from surrogates._train import rollout_loss

UNROLL = 3
CHANNELS = 2
B, N = 2, 8


def tiny_model(input_steps: int):
    config = surrogates.ModelConfig(kind="fno", width=4, modes=(4,), depth=1)
    return surrogates.build_model(config, ndim=1, channels=CHANNELS, input_steps=input_steps, num_params=1, seed=3)


def tiny_batch(input_steps: int, target_steps: int = UNROLL) -> dict:
    rng = np.random.default_rng(0)
    return {
        "input": jnp.asarray(rng.standard_normal((B, N, CHANNELS * input_steps)), jnp.float32),
        "target": jnp.asarray(rng.standard_normal((B, target_steps, N, CHANNELS)), jnp.float32),
        "params": jnp.asarray(rng.standard_normal((B, 1)), jnp.float32),
    }


def manual_loss(model, batch, *, unroll: int, kind: str, stop: bool):
    """The documented loss, by hand: keep a list of frames, feed the model the last ``input_steps``
    of them, append its prediction (detached when ``stop``), and average the per-step losses."""
    steps = model.input_steps
    frames = [batch["input"][..., i * CHANNELS:(i + 1) * CHANNELS] for i in range(steps)]
    losses = []
    for k in range(unroll):
        window = jnp.concatenate(frames[-steps:], axis=-1)
        pred = model(window, batch["params"]).astype(jnp.float32)
        true = batch["target"][:, k].astype(jnp.float32)
        if kind == "mse":
            losses.append(jnp.mean((pred - true) ** 2))
        else:  # per-sample relative L2 error, then the batch mean
            err = jnp.sqrt(jnp.sum((pred - true) ** 2, axis=(1, 2)))
            ref = jnp.sqrt(jnp.sum(true**2, axis=(1, 2)))
            losses.append(jnp.mean(err / ref))
        frames.append(jax.lax.stop_gradient(pred) if stop else pred)
    return sum(losses) / unroll


def grads(loss_fn, model):
    """``jax.grad`` of ``loss_fn(model)`` with respect to the model's parameters, as a flat vector."""
    graphdef, params = nnx.split(model, nnx.Param)
    g = jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p)))(params)
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])


@pytest.mark.parametrize("input_steps", [1, 2])
@pytest.mark.parametrize("kind", ["mse", "rel_l2"])
@pytest.mark.parametrize("pushforward", [False, True])
def test_unrolled_loss_equals_manual_autoregressive_loss(input_steps, kind, pushforward):
    model, batch = tiny_model(input_steps), tiny_batch(input_steps)
    got = rollout_loss(model, batch, unroll=UNROLL, pushforward=pushforward, kind=kind)
    want = manual_loss(model, batch, unroll=UNROLL, kind=kind, stop=False)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6, atol=1e-6)
    # Only the first UNROLL target frames count: extra frames in the batch change nothing.
    longer = dict(batch, target=jnp.concatenate([batch["target"], 100 + batch["target"][:, :1]], axis=1))
    np.testing.assert_allclose(float(rollout_loss(model, longer, unroll=UNROLL, pushforward=pushforward, kind=kind)),
                               float(want), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("input_steps", [1, 2])
@pytest.mark.parametrize("kind", ["mse", "rel_l2"])
def test_pushforward_gradient_stops_at_fed_back_predictions(input_steps, kind):
    model, batch = tiny_model(input_steps), tiny_batch(input_steps)
    full = grads(lambda m: rollout_loss(m, batch, unroll=UNROLL, pushforward=False, kind=kind), model)
    push = grads(lambda m: rollout_loss(m, batch, unroll=UNROLL, pushforward=True, kind=kind), model)
    full_manual = grads(lambda m: manual_loss(m, batch, unroll=UNROLL, kind=kind, stop=False), model)
    push_manual = grads(lambda m: manual_loss(m, batch, unroll=UNROLL, kind=kind, stop=True), model)
    scale = np.max(np.abs(full_manual))
    np.testing.assert_allclose(full, full_manual, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(push, push_manual, rtol=1e-5, atol=1e-6 * scale)
    # The backprop through the fed-back states is a substantial part of the full gradient.
    assert np.max(np.abs(push - full)) > 1e-2 * scale


def test_pushforward_input_gradient_only_through_first_step():
    """With one input frame, every prediction after the first sees only a detached state, so the
    loss depends on the initial state through step 0 alone: d loss / d u0 = d loss_0 / d u0 / unroll."""
    model, batch = tiny_model(1), tiny_batch(1)

    def loss_of_input(u0, unroll, pushforward):
        return rollout_loss(model, dict(batch, input=u0), unroll=unroll, pushforward=pushforward, kind="mse")

    u0 = batch["input"]
    push = jax.grad(loss_of_input)(u0, UNROLL, True)
    first = jax.grad(loss_of_input)(u0, 1, False) / UNROLL
    full = jax.grad(loss_of_input)(u0, UNROLL, False)
    np.testing.assert_allclose(push, first, rtol=1e-5, atol=1e-7 * float(jnp.max(jnp.abs(first))))
    assert float(jnp.max(jnp.abs(full - push))) > 1e-2 * float(jnp.max(jnp.abs(push)))


def test_pushforward_keeps_gradient_through_original_frames():
    """With two input frames, step 1 still sees the newer original frame: pushforward detaches only the
    predictions, so the input gradient is that of the hand-written loss with only those detached."""
    model, batch = tiny_model(2), tiny_batch(2)

    def input_grad(loss_fn):
        return jax.grad(lambda u0: loss_fn(dict(batch, input=u0)))(batch["input"])

    push = input_grad(lambda b: rollout_loss(model, b, unroll=UNROLL, pushforward=True, kind="mse"))
    want = input_grad(lambda b: manual_loss(model, b, unroll=UNROLL, kind="mse", stop=True))
    step0 = input_grad(lambda b: rollout_loss(model, b, unroll=1, kind="mse")) / UNROLL
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(push, want, rtol=1e-5, atol=1e-7 * scale)
    # The newer original frame gets gradient from step 1 as well, beyond that of step 0.
    newer = (Ellipsis, slice(CHANNELS, 2 * CHANNELS))
    assert float(jnp.max(jnp.abs(push[newer] - step0[newer]))) > 1e-2 * scale


@pytest.mark.parametrize("pushforward", [False, True])
def test_train_step_uses_configured_unroll_and_pushforward(pushforward):
    """``make_steps`` passes ``[train] unroll`` and ``pushforward`` through: its loss and gradient
    norm are those of the hand-written loss with the fed-back predictions detached or not."""
    model, batch = tiny_model(2), tiny_batch(2)
    config = surrogates.TrainConfig(unroll=UNROLL, pushforward=pushforward, loss="mse", clip=0.0)
    want_loss = float(manual_loss(model, batch, unroll=UNROLL, kind="mse", stop=pushforward))
    want_grads = {stop: grads(lambda m, s=stop: manual_loss(m, batch, unroll=UNROLL, kind="mse", stop=s), model)
                  for stop in (False, True)}
    optimizer = surrogates.build_optimizer(model, config)
    train_step, eval_step = surrogates.make_steps(model, optimizer, config)
    state = nnx.state((model, optimizer))
    np.testing.assert_allclose(float(eval_step(state, batch)), want_loss, rtol=1e-6)
    _, metrics = train_step(state, batch)
    np.testing.assert_allclose(float(metrics["loss"]), want_loss, rtol=1e-6)
    norm = float(metrics["grad_norm"])
    np.testing.assert_allclose(norm, np.linalg.norm(want_grads[pushforward]), rtol=1e-5)
    assert abs(norm - np.linalg.norm(want_grads[not pushforward])) > 1e-3 * norm
