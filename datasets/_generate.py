"""``generate``: solve seeded samples in device-sharded batches and write one file per split.

Crash safety (kill -9 at any moment): HDF5 is not crash-safe while open for
writing, so progress is journalled beside the output as atomically renamed
part folders (``.<split>.h5.partial/part-<start>-<stop>/`` holding ``u.npy`` and
``meta.npz`` (error bounds, drawn parameters, redraw counts) for a contiguous
block of finished samples, written under a temporary name, fsynced, then renamed).
A rerun reads the journal's ``config.json``, refuses it if it belongs to another
config, checks every part (``u.npy``'s size, shape, dtype, finite values and
the SHA-256 recorded when it was written; ``meta.npz`` readable, its zip CRCs
and its shapes consistent), removes a damaged one (naming it in one line on
stderr) and solves only the samples no intact part covers. When every sample is
done the parts are assembled in sample order into ``<split>.h5`` (written to a temporary
name and renamed, the SHA-256 of ``/u`` computed on the way), and the journal is
removed. Every sample's randomness depends only on (seed, split, index,
attempt), so the bytes of ``/u`` do not depend on batch size, device count,
interruptions or redone parts.

Cost: the journal's ``cost.json`` carries the wall and CPU seconds spent on the
split so far and the number of runs (rewritten after each part), so the file's
``cost`` attribute (JSON: ``wall_seconds``, ``cpu_seconds``, ``runs``,
``device_kind``, ``device_count``) is what generating it cost over all its runs.

Before any solve, a config that cannot fit is refused (``solvers.InputError``
stating the size it needs and what is available): the largest unfinished
split's ``/u``, journalled uncompressed, against the output folder's free disk,
and one batch of solved samples against the machine's memory.

Several processes (``jax.distributed``): process ``p`` generates a contiguous
block of samples into ``<split>.p<p>.h5``; process 0 then writes ``<split>.h5``
whose variables are HDF5 virtual datasets over the shard files.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from solvers import InputError

from . import _storage
from ._ic import draw_sample
from ._loader import SampleStats
from ._spec import SPLITS, DatasetSpec
from ._storage import Checksum, DatasetError

MAX_REDRAWS = 20


def generate(spec: DatasetSpec, out_dir, *, quiet: bool = False, splits=None, devices=None) -> dict[str, Path]:
    """Generate every split of ``spec`` into ``out_dir`` (``train.h5``, ``val.h5``, ...).

    Resumes an interrupted run of the same config; refuses (``DatasetError``)
    files or journals of another config. With several JAX processes, each
    writes ``<split>.p<k>.h5`` and ``<split>.h5`` presents them as one.

    Args:
        spec: the dataset config.
        out_dir: output folder (created).
        quiet: no progress bar (it is also off when stderr is not a terminal).
        splits: names of the splits to generate (default: all with samples).
        devices: the local devices to shard over (default: all local devices).
    Returns ``{split: path}``.
    Raises:
        solvers.SolverDivergedError / solvers.ResolutionError: a sample failed and
            ``spec.redraw_failed`` is false (the message names the sample).
        DatasetError: an existing file or journal in ``out_dir`` is of another config.
    """
    import jax

    if not isinstance(spec, DatasetSpec):
        raise ValueError(f"spec: expected a datasets.DatasetSpec, got {type(spec).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = tuple(s for s in (splits or SPLITS) if getattr(spec.splits, s) > 0)
    unknown = set(splits or ()) - set(SPLITS)
    if unknown:
        raise ValueError(f"splits: unknown split {sorted(unknown)[0]!r} (choose from {', '.join(SPLITS)})")
    devices = list(devices or jax.local_devices())
    n_proc, pid = jax.process_count(), jax.process_index()
    # Refuse mismatches, and what cannot fit, before spending any compute.
    for split in wanted:
        _check_existing(out_dir / f"{split}.h5", spec.identity(split))
    check_resources(spec, out_dir, [s for s in wanted if not _finished(out_dir / f"{s}.h5", spec.identity(s))],
                    n_proc, pid)
    solver = None
    paths = {}
    try:
        for split in wanted:
            final = out_dir / f"{split}.h5"
            identity = spec.identity(split)
            if _finished(final, identity):
                _remove_journal(final)
                paths[split] = final
                continue
            n = getattr(spec.splits, split)
            clock = _Clock()  # this split's work, the solver's construction included
            if n_proc == 1:
                solver = solver or _make_solver(spec, devices)
                _generate_range(spec, split, 0, n, final, identity, solver, quiet, clock)
            else:
                from jax.experimental import multihost_utils

                bounds = [n * k // n_proc for k in range(n_proc + 1)]
                shard = out_dir / f"{split}.p{pid}.h5"
                shard_id = dict(identity, shard=pid, n_shards=n_proc, samples=[bounds[pid], bounds[pid + 1]])
                _check_existing(shard, shard_id)
                if not _finished(shard, shard_id):
                    solver = solver or _make_solver(spec, devices)
                    _generate_range(spec, split, bounds[pid], bounds[pid + 1], shard, shard_id, solver, quiet,
                                    clock)
                _remove_journal(shard)
                multihost_utils.sync_global_devices(f"byai generate {split} shards")
                if pid == 0:
                    _write_virtual(final, spec, split, identity, bounds)
                multihost_utils.sync_global_devices(f"byai generate {split} virtual")
            paths[split] = final
    finally:
        if solver is not None:
            solver.close()
    return paths


# ------------------------------------------------------------------------------------- resources
def check_resources(spec: DatasetSpec, out_dir: Path, splits, n_proc: int = 1, pid: int = 0) -> None:
    """Refuse a generation that cannot fit, before any solve.

    ``solvers.InputError`` in one line with the size needed and the size available, when one batch of solved
    samples exceeds this machine's memory, or when the journal of one of ``splits`` (process ``pid``'s share
    of its ``/u``, uncompressed at the stored dtype, less what its journal already holds) exceeds the free disk
    of ``out_dir``. Both are lower bounds of the need: a config refused here could never finish.
    """
    if not splits:
        return
    memory = _memory_bytes()
    need = spec.batch_bytes()
    if memory is not None and need > memory:
        largest = max(getattr(spec.splits, s) for s in SPLITS)
        raise InputError(f"{out_dir}: generation holds one batch of solved samples in memory, "
                         f"{min(spec.batch_size, largest)} samples (batch_size) x {_shape_words(spec)} x 8 bytes "
                         f"= {_size(need)}, but this machine has {_size(memory)}; lower batch_size, n_times or shape")
    free = shutil.disk_usage(out_dir).free
    itemsize = 8 if spec.dtype == "float64" else 4
    for split in splits:
        n = getattr(spec.splits, split)
        lo, hi = n * pid // n_proc, n * (pid + 1) // n_proc
        path = out_dir / (f"{split}.h5" if n_proc == 1 else f"{split}.p{pid}.h5")
        held = sum(f.stat().st_size for f in _journal_dir(path).glob("part-*/u.npy"))
        need = (hi - lo) * spec.sample_bytes(itemsize) - held
        if need > free:
            raise InputError(f"{out_dir}: the {split} split journals its /u uncompressed while it is generated, "
                             f"{hi - lo} samples x {_shape_words(spec)} x {itemsize} bytes ({spec.dtype}) = "
                             f"{_size(need)} still to write, but {_size(free)} are free there; lower "
                             f"splits.{split}, n_times or shape, or choose another output folder")


def _shape_words(spec: DatasetSpec) -> str:
    channels = len(spec.problem.channel_names(spec))
    return f"{spec.n_frames} frames x {math.prod(spec.shape)} grid points x {channels} channels"


def _memory_bytes() -> int | None:
    """This machine's physical memory (or a smaller cgroup limit); ``None`` where it cannot be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:  # a container's limit (cgroup v2), when one is set
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def _size(n: int) -> str:
    """Bytes as a short number in binary units."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    k = 0
    while k < len(units) - 1 and n >= 1024 ** (k + 1):
        k += 1
    if n >= 1024 ** (k + 1):  # beyond exbibytes: the order of magnitude says enough
        return f"about 10^{len(str(int(n))) - 1} bytes"
    return f"{int(n)} bytes" if k == 0 else f"{n / 1024**k:.1f} {units[k]}"


# ------------------------------------------------------------------------------ identity / resume
def _identity_of(path: Path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if _storage.text(f.attrs.get("byai_schema", "")) != _storage.SCHEMA:
                return None, False
            config = json.loads(_storage.text(f.attrs.get("config", "null")))
            done = bool(_storage.text(f.attrs.get("sha256", "")))
            return config, done
    except (OSError, json.JSONDecodeError):
        return None, False


def _check_existing(path: Path, identity: dict) -> None:
    """Refuse an existing file or journal that belongs to another config."""
    if path.exists():
        config, _ = _identity_of(path)
        if config is None:
            raise DatasetError(f"{path} exists and is not a byai dataset of this config (unreadable or foreign); "
                               "move it away or choose another output folder")
        if _canon(config) != _canon(identity):
            raise DatasetError(f"{path} was generated from a different config (differs in "
                               f"{_first_difference(config, identity)}); move it away or choose another output folder")
    journal = _journal_dir(path)
    cfg = journal / "config.json"
    if cfg.exists():
        try:
            config = json.loads(cfg.read_text())
        except (OSError, json.JSONDecodeError):
            raise DatasetError(f"{journal} is an unreadable generation journal; remove it to start over") from None
        if _canon(config) != _canon(identity):
            raise DatasetError(f"{journal} holds an interrupted run of a different config (differs in "
                               f"{_first_difference(config, identity)}); remove it or choose another output folder")


def _canon(d) -> str:
    return json.dumps(d, sort_keys=True)


def _first_difference(a: dict, b: dict) -> str:
    for k in sorted(set(a) | set(b)):
        if _canon(a.get(k)) != _canon(b.get(k)):
            return k
    return "?"


def _finished(path: Path, identity: dict) -> bool:
    if not path.exists():
        return False
    config, done = _identity_of(path)
    return done and config is not None and _canon(config) == _canon(identity)


def _journal_dir(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _remove_journal(path: Path) -> None:
    journal = _journal_dir(path)
    if journal.exists():
        shutil.rmtree(journal, ignore_errors=True)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with builtins_open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


builtins_open = open


PART_META = ("error", "params", "redraws")  # small: one .npz; u: its own .npy (saved and read without copies)
PART_SHA256 = "u_sha256"  # also in meta.npz: the SHA-256 of u.npy's samples (as a file's sha256), checked on resume


def _write_part(journal: Path, start: int, stop: int, arrays: dict) -> Path:
    """Write one block of samples as a part folder, atomically (temporary folder, fsync, rename)."""
    final = journal / f"part-{start:08d}-{stop:08d}"
    tmp = journal / f".tmp-part-{start:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with builtins_open(tmp / "u.npy", "wb") as fh:
        np.save(fh, np.ascontiguousarray(arrays["u"]), allow_pickle=False)  # a real file: no copy
        fh.flush()
        os.fsync(fh.fileno())
    with builtins_open(tmp / "meta.npz", "wb") as fh:
        np.savez(fh, **{name: arrays[name] for name in PART_META}, **{PART_SHA256: _sha256(arrays["u"])})
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tmp)
    os.replace(tmp, final)
    _fsync_dir(journal)
    return final


def _sha256(u: np.ndarray) -> str:
    """The SHA-256 of a block of samples, sample after sample, as a file's ``sha256`` is defined."""
    h = Checksum()
    for ui in u:
        h.update(ui)
    return h.hexdigest()


def _read_part(part: Path) -> dict:
    """A part's arrays, ``u`` memory-mapped (read on demand, so assembling holds about one sample)."""
    with np.load(part / "meta.npz", allow_pickle=False) as z:
        out = {name: z[name] for name in PART_META}
    out["u"] = np.load(part / "u.npy", mmap_mode="r", allow_pickle=False)
    return out


def _part_entries(journal: Path) -> list[tuple[int, int, Path]]:
    """Every ``part-<a>-<b>`` entry of the journal, whole or not, in sample order."""
    out = []
    for p in journal.glob("part-*"):
        try:
            _, a, b = p.name.split("-")
            out.append((int(a), int(b), p))
        except ValueError:
            continue
    return sorted(out)


def _parts(journal: Path) -> list[tuple[int, int, Path]]:
    """The part folders holding both files, in sample order (after :func:`_check_journal`: the intact ones)."""
    return [(a, b, p) for a, b, p in _part_entries(journal)
            if p.is_dir() and (p / "u.npy").exists() and (p / "meta.npz").exists()]


PART_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error)


def _check_part(spec: DatasetSpec, part: Path, a: int, b: int) -> str | None:
    """Why the part folder ``part`` (samples ``a .. b-1``) cannot be used, or ``None`` when it is intact:
    ``u.npy`` of the expected shape, dtype and size with finite values, ``meta.npz`` readable with error
    bounds, drawn parameters and redraw counts of the expected shapes and ranges."""
    n = b - a
    if n <= 0:
        return "its sample range is empty"
    if not part.is_dir():
        return "it is not a folder"
    channels = len(spec.problem.channel_names(spec))
    expected = (n, spec.n_frames, *spec.shape, channels)
    try:
        with builtins_open(part / "u.npy", "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return f"u.npy has the unknown .npy format version {version}"
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        size = (part / "u.npy").stat().st_size
    except PART_READ_ERRORS as e:
        return f"u.npy cannot be read: {_storage._short(e)}"
    if tuple(shape) != expected or fortran or dtype != np.dtype(spec.dtype):
        return f"u.npy holds {dtype} {tuple(shape)}, expected {spec.dtype} {expected}"
    if size != offset + math.prod(expected) * dtype.itemsize:
        return f"u.npy has {size} bytes, expected {offset + math.prod(expected) * dtype.itemsize} (truncated)"
    try:  # the zip's CRC-32s are checked as its members are read
        with np.load(part / "meta.npz", allow_pickle=False) as z:
            meta = {name: z[name] for name in PART_META}
            recorded = str(z[PART_SHA256]) if PART_SHA256 in z.files else None  # absent in older journals
    except PART_READ_ERRORS as e:
        return f"meta.npz cannot be read: {_storage._short(e)}"
    u = np.load(part / "u.npy", mmap_mode="r", allow_pickle=False)
    h = Checksum()
    for k in range(n):  # memory: one sample
        if not np.all(np.isfinite(u[k])):
            return f"u.npy holds non-finite values in sample {a + k}"
        h.update(u[k])
    del u
    if recorded is not None and h.hexdigest() != recorded:
        return "u.npy's sha256 differs from the one recorded when it was written"
    err, params, redraws = meta["error"], meta["params"], meta["redraws"]
    if err.shape != (n, spec.n_frames) or not (np.all(np.isfinite(err)) and np.all(err >= 0)):
        return f"meta.npz's error bounds are not {n} x {spec.n_frames} finite values >= 0"
    names = spec.param_names
    if params.shape != (n, len(names)) or not np.all(np.isfinite(params)):
        return f"meta.npz's drawn parameters are not {n} x {len(names)} finite values"
    if (redraws.shape != (n,) or redraws.dtype.kind not in "iu"
            or not np.all((redraws >= 0) & (redraws <= MAX_REDRAWS))):
        return f"meta.npz's redraw counts are not {n} integers in [0, {MAX_REDRAWS}]"
    return None


def _check_journal(spec: DatasetSpec, journal: Path) -> None:
    """Remove every damaged or overlapping part of ``journal``, naming each in one line on stderr, so that its
    samples are solved again (the same bytes: a sample depends only on its seed, split and index)."""
    covered_to, covered_by = None, None
    for a, b, part in _part_entries(journal):
        reason = _check_part(spec, part, a, b)
        if reason is None and covered_to is not None and a < covered_to:
            reason = f"its samples overlap {covered_by.name}"
        if reason is None:
            covered_to, covered_by = b, part
            continue
        print(f"byai generate: {part} is damaged ({reason}); removed, its samples {a}..{b - 1} are solved again",
              file=sys.stderr, flush=True)
        if part.is_dir():
            shutil.rmtree(part)
        else:
            part.unlink()


# ------------------------------------------------------------------------------------------ cost
COST_FILE = "cost.json"  # in a journal: the seconds this split's runs spent so far, rewritten after each part


class _Clock:
    """Wall (``time.perf_counter``) and CPU (``time.process_time``, every thread of this process) seconds since
    it was made."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _prior_cost(journal: Path, fresh: bool) -> dict:
    """``{"wall_seconds", "cpu_seconds", "runs"}`` that earlier interrupted runs of this split recorded in
    ``journal`` (zero for a ``fresh`` journal; seconds ``None`` when a journal holds no readable record)."""
    if fresh:
        return {"wall_seconds": 0.0, "cpu_seconds": 0.0, "runs": 0}
    try:
        prior = json.loads((journal / COST_FILE).read_text())
        out = {"wall_seconds": prior["wall_seconds"], "cpu_seconds": prior["cpu_seconds"], "runs": int(prior["runs"])}
        if all(out[k] is None or (isinstance(out[k], int | float) and out[k] >= 0)
               for k in ("wall_seconds", "cpu_seconds")):
            return out
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {"wall_seconds": None, "cpu_seconds": None, "runs": 0}


def _cost(prior: dict, clock: _Clock) -> dict:
    """The split's ``cost`` attribute: ``prior`` plus this run's seconds so far, the runs counted, the devices.

    Seconds stop at the last part an interrupted run journalled (its later work is not counted); they are
    ``None``, with ``unknown`` saying why, when an earlier run recorded none.
    """
    import jax

    wall, cpu = clock.seconds()
    out = {"runs": prior["runs"] + 1, "device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count()}
    if prior["wall_seconds"] is None or prior["cpu_seconds"] is None:
        return {**out, "wall_seconds": None, "cpu_seconds": None,
                "unknown": "an earlier interrupted run of this split recorded no cost"}
    return {**out, "wall_seconds": prior["wall_seconds"] + wall, "cpu_seconds": prior["cpu_seconds"] + cpu}


def _combined_cost(costs: list) -> dict:
    """The cost of a split generated by several processes from their shards' costs: the longest wall time (they
    run side by side), the summed CPU time; unknown when any shard's is."""
    if any(c is None or c.get("wall_seconds") is None or c.get("cpu_seconds") is None for c in costs):
        return {"wall_seconds": None, "cpu_seconds": None, "runs": max((c or {}).get("runs", 0) for c in costs),
                "unknown": "a shard of this split recorded no cost"}
    return {"wall_seconds": max(c["wall_seconds"] for c in costs), "cpu_seconds": sum(c["cpu_seconds"] for c in costs),
            "runs": max(c["runs"] for c in costs), "device_kind": costs[0].get("device_kind"),
            "device_count": costs[0].get("device_count")}


# ------------------------------------------------------------------------------------ generation
def _make_solver(spec, devices):
    from ._solve import BatchSolver

    return BatchSolver(spec, devices)


def _generate_range(spec, split, lo, hi, path: Path, identity: dict, solver, quiet: bool, clock: _Clock) -> None:
    journal = _journal_dir(path)
    journal.mkdir(exist_ok=True)
    cfg = journal / "config.json"
    fresh = not cfg.exists()
    if fresh:
        _atomic_write(cfg, lambda fh: fh.write(json.dumps(identity, sort_keys=True).encode()))
    prior = _prior_cost(journal, fresh)

    def record():
        _atomic_write(journal / COST_FILE, lambda fh: fh.write(json.dumps(_cost(prior, clock)).encode()))

    record()
    _check_journal(spec, journal)
    done = np.zeros(hi - lo, dtype=bool)
    for a, b, _ in _parts(journal):
        done[max(a, lo) - lo:max(min(b, hi) - lo, 0)] = True
    todo = [lo + i for i in np.flatnonzero(~done)]
    bar = _progress(len(todo), hi - lo - len(todo), f"{split}", quiet)
    try:
        for block in _contiguous_batches(todo, spec.batch_size):
            result = _solve_block(spec, split, block, solver)
            _write_part(journal, block[0], block[-1] + 1, result)
            record()
            del result
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    _assemble(spec, split, lo, hi, path, identity, journal, lambda: _cost(prior, clock))
    _remove_journal(path)


def _contiguous_batches(indices, size):
    block = []
    for i in indices:
        if block and (i != block[-1] + 1 or len(block) == size):
            yield block
            block = []
        block.append(i)
    if block:
        yield block


def _solve_block(spec: DatasetSpec, split: str, block: list[int], solver) -> dict:
    """Solve samples ``block`` (redrawing failures if allowed) into the arrays of one part file.

    The stored-dtype output is allocated once and each solved sample is copied
    in as it arrives, so memory stays near one batch of output.
    """
    n, shape = len(block), (spec.n_frames, *spec.shape, len(spec.problem.channel_names(spec)))
    out = {"u": np.empty((n, *shape), dtype=spec.dtype), "error": np.empty((n, spec.n_frames)),
           "params": np.empty((n, len(spec.param_names))), "redraws": np.zeros(n, dtype=np.int64)}
    pending = list(range(n))
    while pending:
        draws = [draw_sample(spec, split, block[j], int(out["redraws"][j])) for j in pending]
        u0 = np.stack([d[0] for d in draws])
        params = np.stack([d[1] for d in draws]).reshape(len(pending), -1)

        def sink(k, u, err, pending=pending, params=params):
            j = pending[k]
            out["u"][j], out["error"][j] = _stored(u, err, spec.dtype)
            out["params"][j] = params[k]

        failures = solver(u0, params, sink)
        retry = []
        for j, failure in zip(pending, failures):
            if failure is None:
                continue
            i = block[j]
            if not spec.redraw_failed:
                raise type(failure)(f"{split} sample {i}: {failure} (set redraw_failed = true in [data] to redraw "
                                    "failed samples)") from None
            out["redraws"][j] += 1
            if out["redraws"][j] > MAX_REDRAWS:
                raise type(failure)(f"{split} sample {i}: failed {MAX_REDRAWS + 1} draws in a row, last: "
                                    f"{failure}") from None
            retry.append(j)
        pending = retry
    return out


def _stored(u: np.ndarray, err: np.ndarray, dtype: str):
    """One sample in the stored dtype; float32 rounding (RMS per frame) is added to its error bound."""
    if dtype == "float64":
        return u, err
    u32 = u.astype(np.float32)
    rounding = np.sqrt(np.mean((u32.astype(np.float64) - u) ** 2, axis=tuple(range(1, u.ndim))))
    return u32, err + rounding


def _file_attrs(spec: DatasetSpec, split: str, identity: dict) -> dict:
    """A split file's attributes: the problem kind's physics, method and distribution, then the provenance."""
    return {
        "schema_version": _storage.SCHEMA_VERSION, **spec.problem.file_attrs(spec),
        "grid_shape": np.asarray(spec.shape, np.int64), "grid_length": np.asarray(spec.length, np.float64),
        "rtol": spec.rtol, "atol": spec.atol, "tolerance_known": 1,
        "seed": spec.seed, "split": split, "split_index": SPLITS.index(split), "dtype": spec.dtype,
        "n_samples": getattr(spec.splits, split), "redraw_failed": int(spec.redraw_failed), "redraw_count": 0,
        "versions": _storage.versions(), "config": identity, "sha256": "",
    }


def _ensure_space(path: Path, nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` unless its folder has ``nbytes`` (plus 64 KiB) free: HDF5 can crash
    the process when the disk fills while it writes or closes a file, so a split file is only begun with room for
    all of it uncompressed."""
    need = int(nbytes) + 2**16
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(errno.ENOSPC, f"No space left on device ({need} bytes needed, {free} free)", str(path))


def _assemble(spec, split, lo, hi, path: Path, identity: dict, journal: Path, cost) -> None:
    """Write ``path`` from the journal's parts, in sample order; its ``cost`` attribute is ``cost()`` at the end."""
    attrs = _file_attrs(spec, split, identity)
    names = spec.param_names
    tmp = path.with_name(f".{path.name}.tmp")
    _ensure_space(tmp, (hi - lo) * (spec.sample_bytes(4 if spec.dtype == "float32" else 8) + 8 * spec.n_frames))
    checksum, redraws, next_i = Checksum(), 0, lo
    stats = SampleStats(len(spec.problem.channel_names(spec)), spec.problem)
    with _storage.create_file(tmp, n_samples=hi - lo, t=spec.problem.times(spec), coords=spec.problem.coords(spec),
                              channel_names=spec.problem.channel_names(spec), dtype=spec.dtype, param_names=names,
                              attrs=attrs) as f:
        if hi > lo:
            f["sample"][...] = np.arange(lo, hi)
        u_out = f["u"]
        err_out = np.full((hi - lo, spec.n_frames), np.nan)  # small: written once at the end
        params_out = np.full((hi - lo, len(names)), np.nan)
        for a, b, part in _parts(journal):
            a2, b2 = max(a, next_i), min(b, hi)
            if b2 <= a2:
                continue
            if a2 != next_i:
                raise DatasetError(f"{journal}: samples {next_i}..{a2 - 1} are missing from the journal")
            try:
                z = _read_part(part)
                u, err, params, rd = z["u"], z["error"], z["params"], z["redraws"]
            except PART_READ_ERRORS as e:
                raise DatasetError(f"{part} became unreadable after it was checked ({_storage._short(e)}); rerun "
                                   "the same generate command to solve its samples again") from None
            for i in range(a2, b2):
                ui = np.asarray(u[i - a])
                u_out[i - lo] = ui
                checksum.update(ui)
                stats.update(ui)
            err_out[a2 - lo:b2 - lo] = err[a2 - a:b2 - a]
            params_out[a2 - lo:b2 - lo] = params[a2 - a:b2 - a]
            redraws += int(np.sum(rd[a2 - a:b2 - a]))
            next_i = b2
        if next_i != hi:
            raise DatasetError(f"{journal}: samples {next_i}..{hi - 1} are missing from the journal")
        if hi > lo:
            f["error_estimate"][...] = err_out
            if names:
                f["params"][...] = params_out
            f["complete"][...] = 1
        f.attrs["redraw_count"] = redraws
        _storage.set_stats(f, stats)
        f.attrs["sha256"] = checksum.hexdigest()
        if identity.get("shard") is not None:
            f.attrs["sample_offset"] = lo
        _storage.set_attr(f, "cost", cost())
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_virtual(final: Path, spec: DatasetSpec, split: str, identity: dict, bounds) -> None:
    """Write ``final`` as virtual datasets over the shard files ``<split>.p<k>.h5`` (same folder)."""
    import h5py

    n = bounds[-1]
    attrs = _file_attrs(spec, split, identity)
    names = spec.param_names
    tmp = final.with_name(f".{final.name}.tmp")
    shards = [final.with_name(f"{split}.p{k}.h5") for k in range(len(bounds) - 1)]
    redraws, stats, costs = 0, SampleStats(len(spec.problem.channel_names(spec)), spec.problem), []
    for s in shards:
        with h5py.File(s, "r") as g:
            redraws += int(g.attrs["redraw_count"])
            stats.combine(g.attrs)
            costs.append(_storage.json_attr(g.attrs, "cost"))
    sources = [(s.name, a, b) for s, a, b in zip(shards, bounds, bounds[1:]) if b > a]
    with _storage.create_file(tmp, n_samples=n, t=spec.problem.times(spec), coords=spec.problem.coords(spec),
                              channel_names=spec.problem.channel_names(spec), dtype=spec.dtype, param_names=names,
                              attrs=attrs, virtual=sources) as f:
        f.attrs["redraw_count"] = redraws
        _storage.set_stats(f, stats)
        f.attrs["n_shards"] = len(shards)
        f.attrs["shards"] = json.dumps([s.name for s in shards])
        _storage.set_attr(f, "cost", _combined_cost(costs))
    with h5py.File(tmp, "r+") as f:  # the checksum is read through the virtual view, in sample order
        f.attrs["sha256"] = _storage.checksum_file(f)
    _fsync_file(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _progress(total: int, initial: int, desc: str, quiet: bool):
    if quiet or total == 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total + initial, initial=initial, desc=desc, unit="sample", dynamic_ncols=True,
                smoothing=0.1, file=sys.stderr)
