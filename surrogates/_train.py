"""Training: optax AdamW with warmup-cosine and clipping, data parallel over a ('data',) mesh.

The train step is a pure function of ``(state, batch)`` where ``state`` is the
``nnx.split`` state of ``(model, optimizer)``; it is jitted once with the state
replicated and the batch sharded along ``'data'``, donates the old state, and
returns the new state with device scalars (loss, gradient norm): no host syncs.
The loop reads those scalars one step late, so the device never waits for the host.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from solvers import ByaiError, InputError

from ._checkpoint import (CheckpointError, Checkpoints, check_compatible, drop_abandoned_io_reports, read_metadata,
                          write_metadata)
from ._config import ModelConfig, TrainConfig, check_grid, to_dict
from ._models import Surrogate, count_params


class TrainingDivergedError(ByaiError, RuntimeError):
    """The loss or the gradient became non-finite; training stopped, the last good checkpoint is kept."""


# ------------------------------------------------------------------------------------------- pieces
def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """Linear warmup from 0 to ``lr`` over ``warmup`` steps, cosine decay to ``lr*final_lr_fraction`` at ``steps``."""
    end = config.lr * config.final_lr_fraction
    if config.warmup >= config.steps:
        return optax.linear_schedule(0.0, config.lr, config.warmup)
    if config.warmup == 0:
        return optax.cosine_decay_schedule(config.lr, config.steps, alpha=config.final_lr_fraction)
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, config.warmup, config.steps, end_value=end)


def learning_rates(config: TrainConfig, n: int) -> np.ndarray:
    """The learning rate of updates ``0 .. n-1`` (:func:`learning_rate_schedule`), evaluated once as a host
    table, so that logging the rate of each step costs no device round trip."""
    return np.asarray(jax.vmap(learning_rate_schedule(config))(jnp.arange(n)), dtype=np.float64)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping (``clip > 0``) followed by AdamW on the schedule above.

    Each call builds a new transformation (no two compare equal). The transformation is part of
    the optimizer's graph definition, so :func:`build_optimizer` calls this once per model graph
    and config (its ``lru_cache`` on ``_optimizer_init``) and reuses that object: a second run in
    one process then has an equal graph and reuses the compiled train step of :func:`make_steps`.
    """
    adamw = optax.adamw(learning_rate_schedule(config), weight_decay=config.weight_decay)
    return optax.chain(optax.clip_by_global_norm(config.clip), adamw) if config.clip > 0 else adamw


def pointwise_loss(pred, target, kind: str):
    """Mean squared error, or the batch mean of per-sample relative L2 errors ``|p - t| / |t|``."""
    pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
    if kind == "mse":
        return jnp.mean(jnp.square(pred - target))
    axes = tuple(range(1, pred.ndim))
    num = jnp.sqrt(jnp.sum(jnp.square(pred - target), axis=axes))
    den = jnp.sqrt(jnp.sum(jnp.square(target), axis=axes))
    return jnp.mean(num / jnp.maximum(den, 1e-12))


def rollout_loss(model: Surrogate, batch: dict, *, unroll: int = 1, pushforward: bool = False, kind: str = "mse"):
    """Autoregressive loss averaged over ``unroll`` steps.

    ``batch["input"]`` is ``(B, *space, C*I)`` (frames oldest first), ``batch["target"]``
    ``(B, T, *space, C)`` with ``T >= unroll``. Step ``k`` predicts target frame ``k`` from the
    window ending with the previous prediction; with ``pushforward`` the gradient does not flow
    back through earlier predictions.
    """
    x, target, params = batch["input"], batch["target"], batch.get("params")
    c = target.shape[-1]
    if target.shape[1] < unroll:
        raise ValueError(f"unroll: {unroll} steps need {unroll} target frames, the batch has {target.shape[1]}")
    total = 0.0
    for k in range(unroll):
        pred = model(x, params)
        total = total + pointwise_loss(pred, target[:, k], kind)
        if k + 1 < unroll:
            nxt = jax.lax.stop_gradient(pred) if pushforward else pred
            x = jnp.concatenate([x[..., c:], nxt.astype(x.dtype)], axis=-1)
    return total / unroll


def build_model(config: ModelConfig, *, ndim: int, channels: int, input_steps: int, num_params: int,
                dtype: str = "float32", seed: int = 0) -> Surrogate:
    """The surrogate of ``config`` for data of ``ndim`` spatial axes and ``channels`` channels.

    Initialised inside one jitted function (one compilation instead of one per random array).
    """
    graphdef, init = _model_init(config, ndim, channels, input_steps, num_params, str(dtype), seed)
    return nnx.merge(graphdef, init())


def build_optimizer(model: Surrogate, config: TrainConfig) -> nnx.Optimizer:
    """``nnx.Optimizer(model, make_optimizer(config), wrt=nnx.Param)``, its state created in one jitted call.

    The transformation and that call are built once per model graph and config and reused (see
    :func:`make_optimizer`).
    """
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))
    opt_graphdef, init = _optimizer_init(graphdef, config, treedef, tuple(leaves))
    return nnx.merge(opt_graphdef, init(state))


@functools.lru_cache(maxsize=8)
def _model_init(config, ndim, channels, input_steps, num_params, dtype, seed):
    def create():
        return Surrogate(config, ndim=ndim, channels=channels, input_steps=input_steps, num_params=num_params,
                         dtype=jnp.dtype(dtype), rngs=nnx.Rngs(params=seed))
    return _compile_init(create)


@functools.lru_cache(maxsize=8)
def _optimizer_init(graphdef, config, treedef, leaves):
    tx = make_optimizer(config)
    return _compile_init(lambda st: nnx.Optimizer(nnx.merge(graphdef, st), tx, wrt=nnx.Param),
                         jax.tree.unflatten(treedef, leaves))


def jit_init(create, *args):
    """Construct an nnx module ``create(*args)`` in one jitted program (see :func:`_compile_init`)."""
    graphdef, compiled = _compile_init(create, *args)
    return nnx.merge(graphdef, compiled(*args))


def _compile_init(create, *args):
    """``(graphdef, compiled)``: the constructor ``create(*args)`` as one jitted program compiled without
    LLVM optimisation (it runs once; compiling its random draws optimised costs seconds on a CPU)."""
    graphdef, _ = nnx.split(nnx.eval_shape(create, *args))
    compiled = jax.jit(lambda *a: nnx.state(create(*a))).lower(*args).compile(
        compiler_options={"xla_backend_optimization_level": 0})
    return graphdef, compiled


def make_steps(model: Surrogate, optimizer: nnx.Optimizer, config: TrainConfig, mesh=None):
    """Jitted ``train_step(state, batch) -> (state, {"loss", "grad_norm"})`` and ``eval_step(state, batch) -> loss``.

    ``state`` is ``nnx.state((model, optimizer))``; with a ``mesh`` it stays replicated and the
    batch is sharded along ``'data'`` (XLA all-reduces the gradients). The train step donates its
    input state. Compiled programs are cached by (graph, loss settings, mesh), so a second run in
    one process (resume, validation) does not compile again.
    """
    graphdef, _ = nnx.split((model, optimizer))
    loss_kw = (("unroll", config.unroll), ("pushforward", config.pushforward), ("kind", config.loss))
    return _jitted_steps(graphdef, loss_kw, mesh)


@functools.lru_cache(maxsize=16)
def _jitted_steps(graphdef, loss_kw, mesh):
    """The jitted steps with the graph and settings bound (not static arguments: hashing an nnx
    graph definition on every call costs milliseconds of host time per step)."""
    options = _cpu_step_options(mesh)
    return (jax.jit(functools.partial(_train_step, graphdef, loss_kw, mesh), donate_argnums=0,
                    compiler_options=options),
            jax.jit(functools.partial(_eval_step, graphdef, loss_kw, mesh), compiler_options=options))


# XLA CPU allocates a program's temporaries afresh on every call. As one block (~375 MB for the
# fno1d benchmark step) glibc serves it by mmap and unmaps it on free, so every step page-faults
# all of it in again, zero-filled by the kernel: ~96k faults and ~40% of the step's CPU time in
# the kernel (measured with getrusage). Split into heaps of at most 16 MiB, the blocks fit under
# glibc's mmap threshold and are reused from the malloc arenas: ~6-30k faults, kernel time
# 260 -> 15-80 ms per step, once the process lets glibc keep them (the ``byai`` command does, see
# experiments/_host.py; a library does not change its host process's allocator). An array larger
# than the heap limit gets a heap of its own (XLA logs a warning at compile time).
_CPU_HEAP_LIMIT = 16 * 2**20


def _cpu_step_options(mesh):
    """Compiler options for the jitted steps on CPU devices (``None`` elsewhere); see above."""
    devices = jax.devices() if mesh is None else list(mesh.devices.flat)
    if any(d.platform != "cpu" for d in devices):
        return None
    return {"xla_multiheap_size_constraint_per_heap": _CPU_HEAP_LIMIT}


def _train_step(graphdef, loss_kw, mesh, state, batch):
    model, optimizer = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(lambda m: rollout_loss(m, batch, **dict(loss_kw)))(model)
    optimizer.update(model, grads)
    new_state = nnx.state((model, optimizer))
    if mesh is not None:
        new_state = jax.lax.with_sharding_constraint(new_state, NamedSharding(mesh, P()))
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def _eval_step(graphdef, loss_kw, mesh, state, batch):
    model, _ = nnx.merge(graphdef, state)
    return rollout_loss(model, batch, **dict(loss_kw))


def replicate(tree, mesh):
    """Place a pytree of host-identical arrays replicated over ``mesh`` (works across processes)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
    return jax.tree.map(put, tree)


# ---------------------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    """What a run did: the last global ``step``, its ``loss``, the best ``val_loss`` (NaN if never measured)."""

    step: int
    loss: float
    val_loss: float
    params: int


def _stats_json(stats) -> dict:
    """A ``Normalization``'s per-channel mean and std as JSON lists (the model metadata)."""
    return {"mean": np.asarray(stats.mean, np.float64).tolist(), "std": np.asarray(stats.std, np.float64).tolist()}


def _progress(total, initial, quiet):
    if quiet or not sys.stderr.isatty() or jax.process_index() != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)


def train(model_config: ModelConfig, config: TrainConfig, train_loader, out_dir, *, val_loader=None,
          until: int | None = None, resume: bool = False, quiet: bool = False, mesh=None,
          data_info: dict | None = None) -> TrainResult:
    """Train a surrogate on ``train_loader`` and checkpoint it into ``out_dir``.

    Args:
        model_config, config: the network and the optimisation.
        train_loader: a ``datasets.Loader``-like object (``batch(step)``, ``iterate(start, n)``,
            ``stats``, ``batch_size``, ``input_steps``, ``target_steps``, ``steps_per_epoch``), its
            batches placed with ``NamedSharding(mesh, P("data"))`` when ``mesh`` is given.
        out_dir: checkpoints (``checkpoints/``, ``best/``), ``byai_model.json`` and ``metrics.jsonl``.
            ``byai_model.json`` records the model's step: ``stride`` (``model_config.stride``, saved frames
            per step; the loader's windows must be that many frames apart) and ``dt`` (its physical time,
            ``stride`` times the data's save interval; None for a steady map).
            ``byai_model.json["cost"]`` is what training cost, rewritten with each checkpoint: wall and CPU
            seconds summed over the runs (a killed run's counted up to its last checkpoint), ``runs``,
            ``device_kind`` and ``device_count``; seconds ``None`` with ``unknown`` when a run recorded none.
        val_loader: the validation split (same stats), measured every ``config.val_every`` steps.
        until: stop at this global step (default ``config.steps``; the schedule always spans
            ``config.steps``).
        resume: continue from the latest checkpoint in ``out_dir`` (refused if its dataset or
            config differ); without it an existing checkpoint is refused.
        mesh: a ``('data',)`` device mesh (``None``: the default device).
        data_info: provenance of the training data (``dataset_sha256``, ``pde``, ...), stored and
            checked on resume.

    Raises:
        TrainingDivergedError: the loss became non-finite (the message names the step).
        CheckpointError: ``out_dir`` holds an incompatible or unexpected checkpoint.
    """
    clock = (time.perf_counter(), time.process_time())  # this run's cost: everything below
    out = Path(out_dir)
    until = config.steps if until is None else int(until)
    if until < 1:
        raise InputError(f"steps: must be >= 1, got {until}")
    lrs = learning_rates(config, until)  # for the metrics log
    if train_loader.input_steps != config.input_steps:
        raise InputError(f"train.input_steps: {config.input_steps} but the loader stacks {train_loader.input_steps}")
    stride = getattr(train_loader, "stride", 1)  # a loader of its own without strides steps one frame
    if stride != model_config.stride:
        raise InputError(f"model.stride: {model_config.stride} but the loader's windows are {stride} frames apart")
    n_dev = 1 if mesh is None else mesh.devices.size
    if config.batch_size % n_dev:
        raise InputError(f"train.batch_size: must be divisible by the {n_dev} devices, got {config.batch_size}")
    first = train_loader.batch(0)
    space = first["input"].shape[1:-1]
    check_grid(model_config, space)  # before a model sized for another grid is built
    channels = first["target"].shape[-1]
    num_params = first["params"].shape[-1] if "params" in first else 0
    model = build_model(model_config, ndim=len(space), channels=channels, input_steps=config.input_steps,
                        num_params=num_params, dtype=config.dtype, seed=config.seed)
    optimizer = build_optimizer(model, config)
    n_params = count_params(model)
    stats = train_loader.stats
    meta = {
        "format": "byai.surrogate", "version": 1,
        "model_config": to_dict(model_config), "train_config": to_dict(config),
        "ndim": len(space), "grid_shape": list(space), "channels": int(channels), "input_steps": config.input_steps,
        "num_params": int(num_params), "params": n_params,
        "stats": _stats_json(stats),
        "data": dict(data_info or {}),
        "stride": model_config.stride,
        "dt": _step_interval(train_loader),
    }
    input_stats = getattr(train_loader, "input_stats", None)
    if input_stats is not None:  # a steady map: the input stage has its own normalisation (datasets.Loader)
        meta["input_stats"] = _stats_json(input_stats)
    ckpt = Checkpoints(out)
    start = 0
    prior = {"wall_seconds": 0.0, "cpu_seconds": 0.0, "runs": 0}
    if ckpt.latest_step() is not None or (out / "byai_model.json").exists():
        if not resume:
            raise CheckpointError(f"{out} already holds a byai checkpoint; pass --resume to continue it "
                                  "or choose a new --out")
        old = read_metadata(out)
        check_compatible(old, meta, out)
        if old.get("stride", 1) != meta["stride"]:
            raise CheckpointError(f"{out} holds a checkpoint trained with stride {old.get('stride', 1)}, not "
                                  f"{meta['stride']}; refusing to resume (use a new --out)")
        prior = _prior_cost(old)
        if "cost" in old:
            meta["cost"] = old["cost"]  # kept as it is when this run has nothing left to do
    elif resume and not quiet and jax.process_index() == 0:
        print(f"byai train: nothing to resume in {out}; starting from step 0", file=sys.stderr)
    if jax.process_count() > 1:  # every process has looked at ``out`` before the first one writes to it
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("byai-train-checked-out-dir")
    if jax.process_index() == 0:
        write_metadata(out, meta)

    train_step, eval_step = make_steps(model, optimizer, config, mesh)
    state = replicate(nnx.state((model, optimizer)), mesh)
    best_val, last_good, resumed_loss = math.inf, None, math.nan
    if resume and ckpt.latest_step() is not None:
        state, extra = _resume_point(ckpt, state, out)
        start = int(extra["step"])
        best_val = math.inf if extra.get("best_val") is None else float(extra["best_val"])
        resumed_loss = math.nan if extra.get("loss") is None else float(extra["loss"])
        last_good = start
        if extra.get("seed") != config.seed:
            raise CheckpointError(f"{out}: checkpoint seed {extra.get('seed')} differs from train.seed {config.seed}")
    if resume:  # a best state after the resume point (or, with no checkpoint yet, any) is measured again
        _set_aside_best_after(ckpt, start)
    metrics_path = out / "metrics.jsonl"
    if jax.process_index() == 0:
        _truncate_metrics(metrics_path, start)
    if start >= until:
        return TrainResult(start, _recorded_loss(metrics_path, start, resumed_loss), best_val,
                           n_params["complex_as_one"])

    def record_cost():  # with each checkpoint: a killed run's cost counts up to its last checkpoint
        if jax.process_index() == 0:
            meta["cost"] = _cost(prior, clock)
            write_metadata(out, meta)

    bar = _progress(until, start, quiet)
    log = open(metrics_path, "a") if jax.process_index() == 0 else None
    pending = None  # (step done, metrics of that step as device scalars, wall time of dispatch)
    t_last = time.perf_counter()
    rate = math.nan
    last_loss = math.nan

    def flush(val_loss=None):
        nonlocal pending, t_last, rate, last_loss
        if pending is None:
            return
        step_done, m = pending
        pending = None
        loss, gnorm = float(m["loss"]), float(m["grad_norm"])  # the one host sync, one step late
        if not (math.isfinite(loss) and math.isfinite(gnorm)):
            kept = (f"; the last good checkpoint is step {last_good} in {out / 'checkpoints'}"
                    if last_good is not None else " before any checkpoint was written")
            raise TrainingDivergedError(f"non-finite loss ({loss}) or gradient norm ({gnorm}) at step {step_done}; "
                                        f"training stopped{kept} (lower train.lr, or clip the gradient with "
                                        "train.clip > 0)")
        now = time.perf_counter()
        inst = train_loader.batch_size / max(now - t_last, 1e-9)
        rate = inst if not math.isfinite(rate) else 0.9 * rate + 0.1 * inst
        t_last = now
        last_loss = loss
        rec = {"step": step_done, "loss": loss}
        if val_loss is not None:
            rec["val_loss"] = val_loss
        rec["lr"] = float(lrs[step_done - 1])
        rec["samples_per_s"] = inst
        if log is not None:
            log.write(json.dumps(rec) + "\n")
        if bar is not None:
            bar.update(step_done - bar.n)
            bar.set_postfix(loss=f"{loss:.3e}", samples_per_s=f"{rate:.0f}", refresh=False)

    try:
        for i, batch in train_loader.iterate(start, until - start):
            state, m = train_step(state, batch)
            done = i + 1
            flush()
            pending = (done, m)
            val_loss = None
            if val_loader is not None and config.val_every and (done % config.val_every == 0 or done == until):
                val_loss = evaluate(eval_step, state, val_loader)
            if val_loss is not None or (config.checkpoint_every and done % config.checkpoint_every == 0) \
                    or done == until:
                flush(val_loss)  # every step up to ``done`` is known finite before anything is saved
                extra = {"step": done, "seed": config.seed, "loader_step": done, "best_val": best_val,
                         "loss": last_loss}
                if val_loss is not None and math.isfinite(val_loss) and val_loss < best_val:
                    best_val = extra["best_val"] = val_loss
                    ckpt.save_best(done, state, extra)
                if (config.checkpoint_every and done % config.checkpoint_every == 0) or done == until:
                    ckpt.save(done, state, extra)
                    last_good = done
                    record_cost()
        flush()
    except KeyboardInterrupt:  # SIGINT or SIGTERM: orbax's pending writes then fail on its closed event loop
        drop_abandoned_io_reports()
        raise
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        ckpt.close()
    return TrainResult(until, last_loss, best_val, n_params["complex_as_one"])


def _step_interval(loader) -> float | None:
    """The physical time one surrogate step spans (``stride`` save intervals of the data), from the loader's
    ``dt``; None when unknown (a steady map, a time axis that is not uniform, a loader that does not say)."""
    dt = getattr(loader, "dt", None)
    return float(dt) if isinstance(dt, int | float | np.floating) and math.isfinite(dt) and dt > 0 else None


def _prior_cost(meta: dict) -> dict:
    """What earlier runs of a resumed training recorded in its ``byai_model.json`` (seconds ``None``, with
    ``unknown`` saying why, when a checkpointed run recorded none)."""
    cost = meta.get("cost")
    if isinstance(cost, dict) and all(isinstance(cost.get(k), int | float) for k in ("wall_seconds", "cpu_seconds")):
        return {"wall_seconds": float(cost["wall_seconds"]), "cpu_seconds": float(cost["cpu_seconds"]),
                "runs": int(cost.get("runs", 1))}
    return {"wall_seconds": None, "cpu_seconds": None, "runs": int((cost or {}).get("runs", 0)),
            "unknown": "an earlier run of this training recorded no cost"}


def _cost(prior: dict, clock: tuple[float, float]) -> dict:
    """``byai_model.json["cost"]``: ``prior`` plus this run's wall (``time.perf_counter``) and CPU
    (``time.process_time``, every thread of this process) seconds since ``clock``, the runs counted, the devices."""
    out = {"runs": prior["runs"] + 1, "device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count()}
    if prior["wall_seconds"] is None:
        return {**out, "wall_seconds": None, "cpu_seconds": None, "unknown": prior["unknown"]}
    return {**out, "wall_seconds": prior["wall_seconds"] + time.perf_counter() - clock[0],
            "cpu_seconds": prior["cpu_seconds"] + time.process_time() - clock[1]}


def _resume_point(ckpt: Checkpoints, like, out: Path):
    """``(state, extra)`` of the newest readable checkpoint.

    An unreadable (corrupted, truncated) newer checkpoint is moved to ``out/set_aside/`` and named on stderr.
    """
    state, extra, unreadable = ckpt.restore_newest_intact(like)
    start = int(extra["step"])
    if jax.process_index() == 0:
        for step, why in unreadable:
            moved = ckpt.set_aside("checkpoints", step)
            print(f"byai train: {why}; moved it to {moved}", file=sys.stderr)
        if unreadable:
            print(f"byai train: resuming from step {start}, the newest checkpoint that can be read "
                  f"({ckpt.out / 'checkpoints' / str(start)})", file=sys.stderr)
    return state, extra  # the other processes wait for these moves in _set_aside_best_after


def _set_aside_best_after(ckpt: Checkpoints, start: int) -> None:
    """Move every best checkpoint of a step after ``start`` to ``out/set_aside/``: the resumed run measures
    those steps again and orbax refuses to write a step that exists. A run stopped (full disk, kill) before
    its first latest checkpoint resumes from step 0 and may still hold a best one."""
    superseded = [s for s in ckpt.steps_on_disk("best") if s > start]
    if jax.process_index() == 0:
        for step in superseded:
            moved = ckpt.set_aside("best", step)
            print(f"byai train: best checkpoint {step} is after step {start} and will be measured again; "
                  f"moved it to {moved}", file=sys.stderr)
    _sync_after_set_aside(ckpt)


def _sync_after_set_aside(ckpt: Checkpoints) -> None:
    """Every process sees the folders process 0 may have moved before anyone writes (each process lists the
    folder itself, possibly after process 0 moved, so all of them wait whether or not they saw a move)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("byai-train-set-aside")
        ckpt.latest.reload()
        ckpt.best.reload()


def _recorded_loss(metrics_path: Path, step: int, fallback: float) -> float:
    """The training loss ``metrics.jsonl`` records for ``step`` (``fallback`` when it records none)."""
    if metrics_path.exists():
        for line in reversed(metrics_path.read_text().splitlines()):
            try:
                rec = json.loads(line)
                if int(rec["step"]) == step:
                    return float(rec["loss"])
            except (ValueError, KeyError, TypeError):
                continue
    return fallback


def evaluate(eval_step, state, loader) -> float:
    """Mean loss over one pass of ``loader`` (batches ``0 .. steps_per_epoch-1``)."""
    n = loader.steps_per_epoch
    return sum(float(eval_step(state, batch)) for _, batch in loader.iterate(0, n)) / n


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines beyond ``step`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
