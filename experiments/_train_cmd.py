"""``byai train CONFIG.toml --data DIR --out DIR [--steps N] [--resume] [--quiet]``.

Reads the ``[model]`` and ``[train]`` sections, joins the processes of a multi-host run
(:func:`experiments._launch.initialize_distributed` with ``[train]``'s
:class:`experiments._config.LaunchSettings` or the environment ``BYAI_COORDINATOR``,
``BYAI_NUM_PROCESSES``, ``BYAI_PROCESS_ID``), builds the ``('data',)`` mesh over every
device, and trains on ``DIR/train.h5`` with validation on ``DIR/val.h5`` (windows ``[model] stride`` frames apart). ``--steps N`` trains until global
step N (the learning-rate schedule still spans ``train.steps``). Process 0 holds the write lock of the model
folder (:func:`experiments._lock.output_lock`) while it trains.
"""

from __future__ import annotations

import sys
from pathlib import Path

from experiments._cli import UsageError, output_folder
from experiments._config import ExperimentConfig, load
from experiments._launch import initialize_distributed
from experiments._lock import output_lock
from experiments._toml import ConfigError


def add_arguments(parser) -> None:
    parser.add_argument("config", help="experiment TOML with [model] and [train] sections")
    parser.add_argument("--data", required=True, help="dataset folder holding train.h5 (and val.h5)")
    parser.add_argument("--out", required=True, help="model folder: checkpoints, byai_model.json, metrics.jsonl")
    parser.add_argument("--steps", type=int, default=None, help="train until this global step (default train.steps)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def data_info(path: Path) -> dict:
    """Provenance of the training file: its sha256, PDE and grid, as JSON-able values."""
    import datasets
    import numpy as np

    ds = datasets.open(path)
    info = {"dataset_sha256": str(ds.attrs.get("sha256", "")), "data_file": str(Path(path).resolve())}
    for key in ("pde", "pde_params", "grid_shape", "grid_length", "problem"):
        if key in ds.attrs:
            v = ds.attrs[key]
            info[key] = v.decode() if isinstance(v, bytes) else (v if isinstance(v, str) else np.asarray(v).tolist())
    ds.close()
    return info


def _windows(path: Path, input_steps: int, target_steps: int, stride: int = 1) -> int:
    import datasets

    ds = datasets.open(path)
    s, t = ds["u"].shape[:2]
    ds.close()
    return s * max(t - (input_steps + target_steps - 1) * stride, 0)


def run(args) -> int:
    return stage(load(args.config, sections=("model", "train")), data=args.data, out=args.out, quiet=args.quiet,
                 resume=args.resume, steps=args.steps)


def stage(config: ExperimentConfig, *, data, out, quiet: bool = False, resume: bool = False,
          steps: int | None = None) -> int:
    """Train the surrogate of ``config``'s ``[model]`` and ``[train]`` sections on ``data/train.h5``.

    Args:
        config: the experiment; its ``[model]`` and ``[train]`` sections are required (``[train]``'s
            launch settings say how the processes of a multi-host run meet).
        data: the dataset folder (``train.h5``; ``val.h5`` for the validation loss when present).
        out: the model folder (checkpoints, ``byai_model.json``, ``metrics.jsonl``).
        quiet: no progress bar.
        resume: continue from the last checkpoint in ``out`` (without it, a checkpoint there is refused).
        steps: train until this global step (default ``train.steps``; the schedule still spans ``train.steps``).
    Returns:
        0.
    """
    model_cfg, train_cfg = config.require("model"), config.require("train")
    if steps is not None and steps < 1:
        raise UsageError(f"--steps: must be >= 1, got {steps}")
    data, out = Path(data), output_folder(out)
    train_file, val_file = data / "train.h5", data / "val.h5"
    if not train_file.is_file():
        raise UsageError(f"--data {data}: no train.h5 (generate it with `byai generate`)")
    initialize_distributed(config.run_settings("train"))

    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    import datasets
    import surrogates

    with datasets.open(train_file) as ds:
        config.check_data(train_file, ds.attrs)
    n_dev = jax.device_count()
    if train_cfg.batch_size % n_dev:
        raise ConfigError(f"train.batch_size: must be divisible by the {n_dev} devices, got {train_cfg.batch_size}")
    mesh = jax.make_mesh((n_dev,), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    loader = datasets.Loader(train_file, batch_size=train_cfg.batch_size, input_steps=train_cfg.input_steps,
                             target_steps=train_cfg.unroll, seed=train_cfg.seed, shuffle=True, sharding=sharding,
                             stride=model_cfg.stride)
    val = None
    if train_cfg.val_every and val_file.is_file():
        n_val = _windows(val_file, train_cfg.input_steps, train_cfg.unroll, model_cfg.stride)
        vb = min(train_cfg.batch_size, n_val) // n_dev * n_dev
        if vb >= n_dev:
            val = datasets.Loader(val_file, batch_size=vb, input_steps=train_cfg.input_steps,
                                  target_steps=train_cfg.unroll, seed=train_cfg.seed, shuffle=False,
                                  sharding=sharding, stats=loader.stats, input_stats=loader.input_stats,
                                  stride=model_cfg.stride)
    try:
        with output_lock(out, owner=jax.process_index() == 0):
            # the checksum recorded as the model's provenance is the one of the bytes read (free when cached)
            info = dict(data_info(train_file), dataset_sha256=loader.verify())
            result = surrogates.train(model_cfg, train_cfg, loader, out, val_loader=val, until=steps,
                                      resume=resume, quiet=quiet, mesh=mesh, data_info=info)
    finally:
        loader.close()
        if val is not None:
            val.close()
    if jax.process_index() == 0:
        val_txt = f", best val loss {result.val_loss:.4g}" if result.val_loss < float("inf") else ""
        print(f"byai train: step {result.step}, loss {result.loss:.4g}{val_txt}; {result.params} parameters; "
              f"model in {out}", file=sys.stderr)
    return 0
