"""A trained surrogate as a stepper ``u -> u`` (the contract of DESIGN.md), and loading one from disk.

The stepper's state. A model that takes one frame (``input_steps = 1``) steps one state ``u``
``(*space, C)``. A model that takes ``I > 1`` frames steps a *window*: the state is the last ``I``
states ``w`` ``(I, *space, C)``, oldest first, and ``step(w)`` returns the window one step later,
``concatenate([w[1:], next[None]])``. Either way it is one unbatched state in, the same shape out,
pure and jit/vmap-able, so ``solvers.rollout`` runs it unchanged (a rollout of windows: its newest
states ``traj[:, -1]`` are the trajectory). ``audit.run``, ``audit.run_predictions`` and
``audit.compare_hybrid`` take the window as ``window=`` (``byai audit`` and ``byai hybrid`` read it from
the model's ``input_steps``): a rollout then starts from the first ``I`` reference frames.

The stepper's step. A model trained with ``model.stride = k`` steps ``k`` saved frames at a time:
its metadata's ``stride`` and ``dt`` (``k`` times the data's save interval), returned by :func:`load`
in ``info``, say which interval the solver it is compared or paired with must take.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ._checkpoint import Checkpoints, CheckpointError, read_metadata
from ._config import ModelConfig, TrainConfig


def as_stepper(model, stats, *, params=None, input_stats=None):
    """Wrap a trained surrogate into ``step(u) -> u`` on one unbatched float64 state.

    ``u`` is ``(*space, C)`` in physical units; the step normalises it with ``stats``
    (``.mean``, ``.std`` per channel), runs the model in its dtype (float32) on a batch of
    one, and denormalises back to float64. A residual model predicts the increment
    internally; the stepper always returns the next state. ``params`` (``(P,)``) are the
    physics parameters of a model trained with per-sample parameters. The returned function
    is pure and closes over the model's parameters as constants, so it can be jitted,
    vmapped (over states) and used with ``solvers.rollout``.

    ``input_stats`` (a model of a steady map ``a -> u``, trained on
    ``datasets.Loader`` batches whose input has its own normalisation): the
    input is normalised with it and the output denormalised with ``stats``;
    ``None`` uses ``stats`` for both. The step then maps the input field
    (e.g. a coefficient) to the output field (its solution).

    A model with ``input_steps = I > 1`` gives a window stepper (see the module docstring): its state is
    ``(I, *space, C)``, the last ``I`` states oldest first, and ``step(w)`` applies the model to them
    stacked along channels (as the loader stacks them) and returns ``(w[1], .., w[I-1], next)``.
    """
    window = int(getattr(model, "input_steps", 1))
    num_params = getattr(model, "num_params", 0)
    if num_params and (params is None or np.shape(params) != (num_params,)):
        raise ValueError(f"params: the model needs {num_params} physics parameters, got "
                         f"{None if params is None else np.shape(params)}")
    mean = jnp.asarray(np.asarray(stats.mean, np.float64))
    std = jnp.asarray(np.asarray(stats.std, np.float64))
    in_mean, in_std = mean, std
    if input_stats is not None:
        in_mean = jnp.asarray(np.asarray(_get(input_stats, "mean"), np.float64)).reshape(mean.shape)
        in_std = jnp.asarray(np.asarray(_get(input_stats, "std"), np.float64)).reshape(std.shape)
    graphdef, state = nnx.split(model)
    dtype = getattr(model, "dtype", jnp.float32)
    p = None if not num_params else jnp.asarray(params, dtype)[None]

    def step(u):
        u = jnp.asarray(u)
        if u.shape[-1] != mean.shape[0] or u.ndim != getattr(model, "ndim", u.ndim - 1) + 1:
            raise ValueError(f"step: expected one state (*space, {mean.shape[0]}), got shape {u.shape}")
        m = nnx.merge(graphdef, state)
        x = ((u.astype(jnp.float64) - in_mean) / in_std).astype(dtype)[None]
        y = m(x, p)[0]
        return y.astype(jnp.float64) * std + mean

    if window == 1:
        return step

    def window_step(w):
        w = jnp.asarray(w)
        ndim = getattr(model, "ndim", w.ndim - 2)
        if w.ndim != ndim + 2 or w.shape[0] != window or w.shape[-1] != mean.shape[0]:
            raise ValueError(f"step: the model takes {window} input frames, so its state is a window of the last "
                             f"{window} states ({window}, *space, {mean.shape[0]}), got shape {w.shape}")
        m = nnx.merge(graphdef, state)
        x = ((w.astype(jnp.float64) - in_mean) / in_std).astype(dtype)  # (I, *space, C)
        x = jnp.moveaxis(x, 0, -2).reshape(*x.shape[1:-1], window * x.shape[-1])[None]  # frame-major channels
        y = m(x, p)[0].astype(jnp.float64) * std + mean
        return jnp.concatenate([w[1:].astype(jnp.float64), y[None]])

    return window_step


def _get(stats, name):
    """``stats.mean`` of a ``Normalization``-like object, or ``stats["mean"]`` of its dict form."""
    return stats[name] if isinstance(stats, dict) else getattr(stats, name)


def load(model_dir, *, best: bool = True):
    """``(model, stats, info)`` of a byai model folder written by ``byai train``.

    ``best`` picks the checkpoint with the lowest validation loss when one exists (else the
    latest). ``info`` holds the data provenance (``dataset_sha256``, ``pde``, ``pde_params``,
    ``grid_shape``, ``grid_length``), ``model`` (the model config), ``train`` (the training
    config), ``step``, ``checkpoint`` (its folder), ``params`` (parameter counts), ``stride`` (saved
    frames per surrogate step), ``dt`` (its physical time, None when unknown), ``input_steps`` (the
    stepper's window) and, for a
    steady-map model, ``input_stats`` (``{"mean", "std"}`` of its input; pass it to :func:`as_stepper`).
    Raises ``CheckpointError`` for a folder that is not a byai model.
    """
    from datasets import Normalization

    from ._train import build_model, build_optimizer

    model_dir = Path(model_dir)
    meta = read_metadata(model_dir)
    try:
        mc = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["model_config"].items()})
        tfields = {f.name for f in dataclasses.fields(TrainConfig)}
        tc = TrainConfig(**{k: v for k, v in meta["train_config"].items() if k in tfields})
        stats = Normalization(np.asarray(meta["stats"]["mean"]), np.asarray(meta["stats"]["std"]))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{model_dir / 'byai_model.json'}: invalid configuration ({e})") from None
    stride, dt = _step(meta, mc, model_dir / "byai_model.json")
    model = build_model(mc, ndim=int(meta["ndim"]), channels=int(meta["channels"]),
                        input_steps=int(meta["input_steps"]), num_params=int(meta["num_params"]), dtype=tc.dtype,
                        seed=tc.seed)
    optimizer = build_optimizer(model, tc)
    like = nnx.state((model, optimizer))
    ckpt = Checkpoints(model_dir, read_only=True)
    try:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"{model_dir} holds no checkpoint (training did not write one yet)")
        state, extra = ckpt.restore(like, best=best)
        used = ckpt.best if (best and ckpt.best.latest_step() is not None) else ckpt.latest
        where = used.directory / str(used.latest_step())
    finally:
        ckpt.close()
    nnx.update((model, optimizer), state)
    info = dict(meta.get("data", {}))
    info.update(model=meta["model_config"], train=meta["train_config"], step=int(extra["step"]),
                checkpoint=str(where), params=meta.get("params"), best_val=extra.get("best_val"),
                stride=stride, dt=dt, input_steps=int(meta["input_steps"]))
    if meta.get("input_stats") is not None:
        info["input_stats"] = meta["input_stats"]
    return model, stats, info


def _step(meta: dict, config: ModelConfig, path) -> tuple[int, float | None]:
    """``(stride, dt)`` a model's metadata records (a file is untrusted: ``CheckpointError`` naming it unless
    ``stride`` is a positive integer equal to ``model_config``'s and ``dt`` absent, null or finite and > 0).
    A model written before strides existed records neither: stride 1, ``dt`` unknown (None)."""
    stride = meta.get("stride", 1)
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise CheckpointError(f"{path}: stride must be a positive integer (saved frames per surrogate step), "
                              f"got {stride!r}")
    if stride != config.stride:
        raise CheckpointError(f"{path}: stride {stride} differs from its model_config's stride {config.stride}")
    dt = meta.get("dt")
    if dt is not None and (isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not math.isfinite(dt)
                           or dt <= 0):
        raise CheckpointError(f"{path}: dt must be a finite number > 0 (the physical time of one surrogate step) "
                              f"or null, got {dt!r}")
    return int(stride), None if dt is None else float(dt)


def load_stepper(model_dir, *, best: bool = True, params=None):
    """``(step, info)``: the stepper of :func:`as_stepper` for a saved model, and :func:`load`'s info."""
    model, stats, info = load(model_dir, best=best)
    return as_stepper(model, stats, params=params, input_stats=info.get("input_stats")), info
