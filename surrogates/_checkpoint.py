"""Checkpoints of a training run (orbax) and the JSON metadata that says what was trained on what.

A model folder holds::

    byai_model.json        format, configs, data provenance (dataset sha256, pde), stats, sizes
    checkpoints/<step>/    latest states (model + optimiser + step), written atomically by orbax
    best/<step>/           the state with the lowest validation loss so far
    metrics.jsonl          one line per step

    set_aside/             checkpoints a resumed run moved out of orbax's way: unreadable ones, and
                           best states of steps the resumed run measures again

orbax writes each checkpoint into a temporary folder and renames it when complete, so a
crash leaves the previous checkpoint intact. A checkpoint damaged afterwards (a truncated or
overwritten file) is refused with a ``CheckpointError`` naming its folder; ``--resume``
continues from the newest one that can still be read.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import math
import os
import re
import sys
import warnings
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
        self._write(self.latest, step, state, extra)

    def save_best(self, step: int, state, extra: dict) -> None:
        self._write(self.best, step, state, extra)

    def _write(self, mngr, step: int, state, extra: dict) -> None:
        """Save ``step`` with ``mngr``; a fault of the machine (a full disk) is raised as the ``OSError`` it is."""
        # orbax's writer threads log a failed write (with its traceback) as they fail, and tensorstore's late
        # replies to the event loop orbax closed are reported as unraisable; the error reaches us below and
        # is said once
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.CRITICAL)
        _drop_orbax_unraisables()
        try:
            mngr.save(step, args=self._args(state, extra), force=True)
            mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001  tensorstore reports an OS error as ValueError text
            fault = _os_error(e, Path(mngr.directory) / str(step))
            if fault is None:
                absl.setLevel(level)
                raise
            drop_abandoned_io_reports()  # absl stays quiet to the end: the fault below is said once
            raise fault from e
        absl.setLevel(level)

    def restore(self, like, *, best: bool = False, step: int | None = None):
        """``(state, extra)`` of the latest (or best, falling back to latest; or the given ``step`` of the
        latest) checkpoint, shaped and placed like the pytree ``like``.

        Raises ``CheckpointError`` naming the checkpoint's folder when it cannot be read.
        """
        mngr = self.latest
        if best and step is None and self.best.latest_step() is not None:
            mngr = self.best
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{self.out} holds no checkpoint")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                                if hasattr(x, "sharding") else x, like)
        ocp = self._ocp
        try:
            got = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                             extra=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001  orbax and tensorstore report a damaged file as ValueError,
            # OSError, a JSON error or a bare Exception, depending on which file and byte went wrong
            detail = _reason(e)
        else:
            return got["state"], dict(got["extra"])
        drop_abandoned_io_reports()
        raise CheckpointError(f"checkpoint {Path(mngr.directory) / str(step)} cannot be read: it is corrupted, "
                              f"truncated or not of the model {METADATA} describes ({detail})")

    def restore_newest_intact(self, like):
        """``(state, extra, unreadable)``: the newest latest-checkpoint that can be read, and the
        ``(step, reason)`` of each newer one that cannot. ``CheckpointError`` naming every one when none can."""
        unreadable = []
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                state, extra = self.restore(like, step=step)
            except CheckpointError as e:
                unreadable.append((step, str(e)))
                continue
            return state, extra, unreadable
        if not unreadable:
            raise CheckpointError(f"{self.out} holds no checkpoint")
        raise CheckpointError(f"no checkpoint in {self.out / 'checkpoints'} can be read, so there is nothing to "
                              f"resume from ({'; '.join(why for _, why in unreadable)}); train into a new --out")

    def steps_on_disk(self, which: str) -> list[int]:
        """The step folders under ``<which>/`` (``"checkpoints"`` or ``"best"``), finished or not: a save cut
        short (a full disk, a kill) leaves a folder orbax does not list but refuses to write again."""
        mngr = self.latest if which == "checkpoints" else self.best
        folder = Path(mngr.directory)
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) \
            if folder.is_dir() else []

    def set_aside(self, which: str, step: int) -> Path:
        """Move ``<which>/<step>`` (``which`` is ``"checkpoints"`` or ``"best"``) to ``set_aside/<which>-<step>``,
        where orbax no longer sees it (a resumed run writes that step again); returns the new folder."""
        mngr = self.latest if which == "checkpoints" else self.best
        src = Path(mngr.directory) / str(step)
        dst = self.out.absolute() / "set_aside" / f"{which}-{step}"
        if dst.exists():
            dst = dst.with_name(f"{dst.name}-{len(list(dst.parent.iterdir()))}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        mngr.reload()
        return dst

    def close(self) -> None:
        self.latest.close()
        self.best.close()


_TENSORSTORE_ERRNO = re.compile(r"os_error_code='?(\d+)")


def _os_error(error: BaseException, path: Path) -> OSError | None:
    """The ``OSError`` behind a failed orbax write, whose errno tensorstore gives only in its message text
    (``... No space left on device [os_error_code='28']``), naming the checkpoint folder; ``None`` if none."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        m = _TENSORSTORE_ERRNO.search(str(error))
        if m:
            code = int(m.group(1))
            return OSError(code, os.strerror(code), str(path))
        error = error.__cause__ or error.__context__
    return None


def _reason(error: BaseException) -> str:
    """The innermost cause of a failed restore, on one line (tensorstore's own words: which file, which bytes)."""
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split()).split(" See full TensorStore details")[0]
    return (text[:200] + "...") if len(text) > 200 else text or type(error).__name__


def drop_abandoned_io_reports() -> None:
    """Collect the reads a failed orbax restore abandoned, without their tracebacks.

    When one array of a checkpoint cannot be read, orbax gives up on the others and leaves
    their reads as coroutines that raise the same error again when garbage collected, which
    Python prints (``Exception ignored in: <coroutine ...>``, hundreds of lines, some ending in
    ``Event loop is closed``) long after the ``CheckpointError`` has said what is wrong, some of
    them only once orbax's reading threads let go of them. From the first failed restore (or an
    interrupted training, whose pending writes fail the same way) on, the reports of such
    coroutines (of orbax's own code) are dropped for the rest of the process; anything else
    unraisable is reported as before.
    """
    _drop_orbax_unraisables()
    # orbax's background threads also log the same aftermath through absl ("cannot schedule new futures
    # after interpreter shutdown") and asyncio ("Task exception was never retrieved"), and its write
    # coroutines that never ran warn as they are collected, while the process ends; the error that ended
    # it was already said
    for name in ("absl", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
    gc.collect()


def _drop_orbax_unraisables() -> None:
    if not isinstance(sys.unraisablehook, _DropAbandonedReads):
        sys.unraisablehook = _DropAbandonedReads(sys.unraisablehook)


class _DropAbandonedReads:
    """A ``sys.unraisablehook`` that drops what orbax's abandoned read coroutines raise, passing on the rest."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, unraisable):
        if not (self._abandoned_read(unraisable) or self._late_reply(unraisable)):
            self.previous(unraisable)

    @staticmethod
    def _abandoned_read(unraisable) -> bool:
        """A read coroutine of orbax's, collected with the error of the read that failed."""
        code = getattr(unraisable.object, "cr_code", None)
        return inspect.iscoroutine(unraisable.object) and code is not None and \
            f"{os.sep}orbax{os.sep}" in code.co_filename

    @staticmethod
    def _late_reply(unraisable) -> bool:
        """tensorstore answering a read on the event loop orbax closed when the restore failed."""
        error = unraisable.exc_value
        return isinstance(error, RuntimeError) and str(error) == "Event loop is closed" and any(
            frame.f_code.co_name == "call_soon_threadsafe" for frame in _frames(unraisable.exc_traceback))


def _frames(tb):
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
