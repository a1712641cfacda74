"""Checkpoints of a training run (orbax) and the JSON metadata that says what was trained on what.

A model folder holds::

    byai_model.json        format, configs, data provenance (dataset sha256, pde), stats, sizes
    checkpoints/<step>/    latest states (model + optimiser + step), written atomically by orbax
    best/<step>/           the state with the lowest validation loss so far
    metrics.jsonl          one line per step

orbax writes each checkpoint into a temporary folder and renames it when complete, so a
crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax

from solvers import ByaiError

FORMAT = "byai.surrogate"
METADATA = "byai_model.json"


class CheckpointError(ByaiError, ValueError):
    """A folder is not a byai model, or its checkpoint belongs to another dataset or config."""


def write_metadata(out: Path, meta: dict) -> None:
    """Write ``byai_model.json`` atomically (temporary file + rename)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{METADATA}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, allow_nan=True))
    os.replace(tmp, out / METADATA)


def read_metadata(model_dir) -> dict:
    """The metadata of a byai model folder; ``CheckpointError`` if it is not one."""
    path = Path(model_dir) / METADATA
    if not Path(model_dir).is_dir():
        raise CheckpointError(f"{model_dir} is not a folder holding a byai model")
    if not path.is_file():
        raise CheckpointError(f"{model_dir} is not a byai model folder (no {METADATA}); train one with `byai train`")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not byai surrogate metadata (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{path} is not byai surrogate metadata")
    for key in ("model_config", "train_config", "ndim", "channels", "input_steps", "num_params", "stats"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key {key!r}")
    return meta


def check_compatible(old: dict, new: dict, where) -> None:
    """Refuse to resume a run whose dataset, model or training config differ from this one."""
    od, nd = old.get("data", {}), new.get("data", {})
    if od.get("dataset_sha256") != nd.get("dataset_sha256"):
        raise CheckpointError(f"{where} was trained on dataset sha256 {od.get('dataset_sha256')}, not "
                              f"{nd.get('dataset_sha256')}; refusing to resume on other data")
    for key in ("model_config", "train_config", "ndim", "channels", "input_steps", "num_params"):
        if old.get(key) != new.get(key):
            diff = _first_difference(old.get(key), new.get(key))
            raise CheckpointError(f"{where} holds a checkpoint with a different {key}{diff}; "
                                  "refusing to resume (use a new --out)")


def _first_difference(a, b) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return f" ({k}: {a.get(k)!r} there, {b.get(k)!r} now)"
    return f" ({a!r} there, {b!r} now)"


class Checkpoints:
    """Latest and best states of one run, in ``out/checkpoints`` and ``out/best`` (orbax managers)."""

    def __init__(self, out: Path, *, keep: int = 2, read_only: bool = False):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.out = Path(out)
        opts = dict(enable_async_checkpointing=False, create=not read_only)
        self.latest = ocp.CheckpointManager(self.out.absolute() / "checkpoints",
                                            options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts))
        self.best = ocp.CheckpointManager(self.out.absolute() / "best",
                                          options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts))

    def latest_step(self):
        return self.latest.latest_step()

    def _args(self, state, extra):
        ocp = self._ocp
        return ocp.args.Composite(state=ocp.args.StandardSave(state), extra=ocp.args.JsonSave(_jsonable(extra)))

    def save(self, step: int, state, extra: dict) -> None:
        self.latest.save(step, args=self._args(state, extra), force=True)
        self.latest.wait_until_finished()

    def save_best(self, step: int, state, extra: dict) -> None:
        self.best.save(step, args=self._args(state, extra), force=True)
        self.best.wait_until_finished()

    def restore(self, like, *, best: bool = False):
        """``(state, extra)`` of the latest (or best, falling back to latest) checkpoint, shaped and
        placed like the pytree ``like``."""
        ocp = self._ocp
        mngr = self.latest
        if best and self.best.latest_step() is not None:
            mngr = self.best
        step = mngr.latest_step()
        if step is None:
            raise CheckpointError(f"{self.out} holds no checkpoint")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                                if hasattr(x, "sharding") else x, like)
        try:
            got = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                             extra=ocp.args.JsonRestore()))
        except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
            raise CheckpointError(f"{self.out}: checkpoint {step} does not match this model "
                                  f"({' '.join(str(e).split())[:200]})") from None
        return got["state"], dict(got["extra"])

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
