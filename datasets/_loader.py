"""Training batches: (input window, target window) pairs, normalised, shuffled by (seed, epoch), prefetched.

A *window* is one sample and one start frame ``s``: the input is frames
``s .. s+I-1`` and the target frames ``s+I .. s+I+T-1`` (``I = input_steps``,
``T = target_steps``), so every ``s`` with ``s + I - 1 + T < n_time`` is used.
With ``stride = k`` the window's frames are ``k`` apart (input ``s, s+k, ..,
s+(I-1)k``, targets ``s+Ik, .., s+(I+T-1)k``; every ``s`` with ``s + (I+T-1)k <
n_time``): one surrogate step spans ``k`` save intervals.
``batch(step)`` is a pure function of ``(seed, step)``: ``epoch = step //
steps_per_epoch`` picks the permutation (seeded by ``(seed, epoch)``), so a
training run resumes exactly by asking for the same step again.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from pathlib import Path

import numpy as np

from solvers import InputError

from ._errors import DatasetError
from ._problem import Problem, Trajectory, problem_of
from ._storage import check_file, check_sha256, not_finite, open_h5, read_u, stream_u

CACHE_BYTES = 512 * 2**20  # files whose float32 u is smaller are held in memory (read once, by chunks)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-channel normalisation ``(u - mean) / std``; ``mean``, ``std`` are ``(C,)`` float64.

    Works on NumPy and JAX arrays whose last axis is the channel axis.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"std: expected {mean.shape[0]} channels like mean, got {std.shape[0]}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"std: must be finite and > 0 (and mean finite), got mean={mean}, std={std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def normalize(self, u):
        return (u - self.mean.astype(u.dtype)) / self.std.astype(u.dtype)

    def denormalize(self, u):
        return u * self.std.astype(u.dtype) + self.mean.astype(u.dtype)

    def as_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]))


class StatsAccumulator:
    """Per-channel mean and standard deviation over all points, combined sample by sample (Chan et al.)."""

    def __init__(self, channels: int):
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def update(self, u: np.ndarray) -> None:
        x = np.asarray(u, dtype=np.float64).reshape(-1, u.shape[-1])
        mean_b = x.mean(axis=0) if len(x) else 0.0
        self._merge(x.shape[0], mean_b, ((x - mean_b) ** 2).sum(axis=0))

    def combine(self, count: int, mean, std) -> None:
        """Merge the statistics of another part of the data (``count`` points)."""
        mean = np.asarray(mean, np.float64)
        self._merge(int(count), mean, np.asarray(std, np.float64) ** 2 * count)

    def _merge(self, n_b, mean_b, m2_b) -> None:
        if n_b == 0:
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def result(self) -> Normalization:
        std = np.sqrt(self.m2 / max(self.n, 1))
        return Normalization(self.mean, np.where(std > 0, std, 1.0))


class SampleStats:
    """The statistics a file stores, fed one ``(T, *space, C)`` sample at a time.

    The problem kind's ``input_frames`` leading frames (a steady map's input
    stage 0) get statistics of their own (``input_stats_*``), since a coefficient
    and a solution have nothing in common but the grid; the other frames (every
    frame of a trajectory) share ``stats_*``.
    """

    def __init__(self, channels: int, kind: Problem = Trajectory()):
        self.first = kind.input_frames
        self.output = StatsAccumulator(channels)
        self.input = StatsAccumulator(channels) if self.first else None

    def update(self, u: np.ndarray) -> None:
        if self.input is not None:
            self.input.update(u[:self.first])
        self.output.update(u[self.first:])

    def combine(self, attrs) -> None:
        """Merge the statistics stored in another file's attributes (a shard)."""
        self.output.combine(int(attrs["stats_count"]), attrs["stats_mean"], attrs["stats_std"])
        if self.input is not None:
            self.input.combine(int(attrs["input_stats_count"]), attrs["input_stats_mean"], attrs["input_stats_std"])


def compute_input_stats(path) -> Normalization | None:
    """A file's statistics of its input frames (a steady map's ``input_stats_*``); ``None`` when its kind has none
    (trajectories). ``DatasetError`` naming the file (and sample) as :func:`compute_stats`."""
    first = problem_of(check_file(path)).input_frames
    if not first:
        return None
    with open_h5(path) as f:
        return _stored_or_computed(f, path, "input_stats", slice(0, first))


def compute_stats(path) -> Normalization:
    """Per-channel statistics of a file's ``u`` (a steady map: of its output stage): the stored
    ``stats_mean``/``stats_std`` or, if absent, computed reading one sample at a time (memory: one sample).

    Raises :class:`DatasetError` naming the file for a bad file (``check_file``) and, naming the sample too,
    for a chunk that fails its checksum or non-finite values (which also make stored statistics non-finite).
    """
    first = problem_of(check_file(path)).input_frames  # a steady map's output stage only
    with open_h5(path) as f:
        return _stored_or_computed(f, path, "stats", slice(first, None))


def _stored_or_computed(f, path, prefix: str, frames: slice) -> Normalization:
    """The statistics stored as ``<prefix>_mean``/``<prefix>_std``, else those of ``u[:, frames]`` sample by sample.

    Stored statistics that are not valid (finite, positive, one per channel) mostly come from non-finite data:
    the first sample holding NaN or inf is named (``DatasetError``), else the attributes are.
    """
    stored = f"{prefix}_mean" in f.attrs and f"{prefix}_std" in f.attrs
    if stored:
        try:
            return Normalization(f.attrs[f"{prefix}_mean"], f.attrs[f"{prefix}_std"])
        except ValueError:
            pass  # find the non-finite sample below
    u = f["u"]
    acc = StatsAccumulator(u.shape[-1])
    for i in range(u.shape[0]):
        ui = read_u(u, i, frames, path)
        if not np.all(np.isfinite(ui)):
            raise not_finite(path, i)
        acc.update(ui)
    if stored:
        raise DatasetError(f"{path}: its stored {prefix}_mean/{prefix}_std are not finite, positive values per "
                           "channel although /u is finite, so the attributes are damaged; regenerate the file or "
                           "restore it from a copy")
    return acc.result()


class Loader:
    """Batches of normalised (input, target) windows from one dataset file.

    Args:
        path: a byai dataset file (``train.h5``).
        batch_size: windows per batch (global, over all processes).
        input_steps: frames in the input window (``I``), stacked along channels.
        target_steps: frames in the target window (``T``).
        seed: shuffling seed.
        shuffle: shuffle the windows each epoch (else in order).
        sharding: a ``jax.sharding.NamedSharding`` over the batch axis; batches
            are placed with it (each process loads only its addressable rows).
            ``None``: NumPy batches.
        prefetch: batches prepared ahead by a background thread in :meth:`iterate`.
        drop_remainder: drop the last incomplete batch of each epoch.
        stats: the normalisation (default: the file's stored statistics, so a
            validation loader should get the training loader's ``stats``).
        input_stats: the normalisation of a steady map's (``datasets.SteadyMap``)
            input stage (default: the file's ``input_stats_*``); the output stage uses
            ``stats``. A steady map gives one window per sample: input = stage 0 (the
            coefficient), target = stage 1 (the solution); ``input_steps`` and
            ``target_steps`` must be 1. ``None`` (trajectories): every frame uses ``stats``.
        stride: saved frames between consecutive frames of a window (``k``, a positive integer; default 1):
            a model trained on them steps ``k`` save intervals at a time. A steady map takes 1 only.

    ``dt``: the physical time between consecutive frames of a window (``stride`` save intervals), or None
    (a steady map, or a time axis that is not uniform).

    A batch is a dict: ``"input"`` ``(B, *space, C*I)`` float32 (frame-major:
    channel ``j*C + c`` is channel ``c`` of frame ``j``), ``"target"``
    ``(B, T, *space, C)`` float32, both normalised; ``"params"`` ``(B, P)``
    float32 (raw values) when the file has per-sample physics.

    What the loader reads is verified: a sample whose chunk fails its checksum or that holds NaN or inf
    raises ``DatasetError`` naming the file and the sample. A file that fits the cache (``cache_bytes``) is
    read once at construction, and the SHA-256 of its ``/u`` checked against the recorded ``sha256`` on the
    way (:attr:`sha256`); a larger file is checked by :meth:`verify` (one more streaming pass), which
    training calls before it records the checksum as its data's provenance.
    """

    def __init__(self, path, *, batch_size: int, input_steps: int = 1, target_steps: int = 1, seed: int = 0,
                 shuffle: bool = True, sharding=None, prefetch: int = 2, drop_remainder: bool = True,
                 stats: Normalization | None = None, cache_bytes: int = CACHE_BYTES,
                 input_stats: Normalization | None = None, stride: int = 1):
        self.path = Path(path)
        for name, v, lo in (("batch_size", batch_size, 1), ("input_steps", input_steps, 1),
                            ("target_steps", target_steps, 1), ("prefetch", prefetch, 0)):
            if not isinstance(v, int | np.integer) or v < lo:
                raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
        attrs = check_file(self.path)
        self.problem = problem_of(attrs)
        self._recorded_sha256 = attrs["sha256"]
        self.problem.check_windows(self.path, input_steps, target_steps)
        self.stride = self.problem.check_stride(stride, self.path)
        if sharding is not None:
            n_shards = sharding.mesh.size
            if batch_size % n_shards:
                raise InputError(f"batch_size: {batch_size} does not split evenly over the {n_shards} devices of "
                                 "the sharding; use a multiple")
        self.batch_size, self.input_steps, self.target_steps = int(batch_size), int(input_steps), int(target_steps)
        self.seed, self.shuffle, self.sharding = int(seed), bool(shuffle), sharding
        self.prefetch, self.drop_remainder = int(prefetch), bool(drop_remainder)
        self._file = open_h5(self.path, rdcc_nbytes=64 * 2**20)
        try:
            self._setup(stats, input_stats, cache_bytes)
        except BaseException:
            self._file.close()
            raise
        self._perm_epoch, self._perm = None, None

    def _setup(self, stats, input_stats, cache_bytes) -> None:
        """Sizes, statistics and (when it fits ``cache_bytes``) the verified, normalised cache of the open file."""
        u = self._file["u"]
        self.n_samples, self.n_time = u.shape[0], u.shape[1]
        self.space, self.channels = tuple(u.shape[2:-1]), u.shape[-1]
        span = (self.input_steps + self.target_steps - 1) * self.stride  # save intervals a window spans
        self.windows_per_sample = self.n_time - span
        if self.windows_per_sample < 1:
            if self.stride == 1:
                raise InputError(f"input_steps + target_steps = {self.input_steps + self.target_steps} exceeds the "
                                 f"{self.n_time} frames of {self.path}")
            raise InputError(f"stride: {self.input_steps + self.target_steps} frames {self.stride} apart (input_steps "
                             f"+ target_steps at stride {self.stride}) span {span + 1} frames, more than the "
                             f"{self.n_time} of {self.path}")
        if self.n_samples * self.windows_per_sample < self.batch_size and self.drop_remainder:
            raise InputError(f"batch_size: {self.batch_size} exceeds the {len(self)} windows of {self.path}")
        self.stats = stats if stats is not None else compute_stats(self.path)
        if self.stats.mean.shape != (self.channels,):
            raise InputError(f"stats: {self.stats.mean.shape[0]} channels, the file has {self.channels}")
        self.input_stats = None
        if self.problem.input_frames:
            self.input_stats = input_stats if input_stats is not None else compute_input_stats(self.path)
            if self.input_stats.mean.shape != (self.channels,):
                raise InputError(f"input_stats: {self.input_stats.mean.shape[0]} channels, the file has "
                                 f"{self.channels}")
        self.params = self._file["params"][...].astype(np.float32) if "params" in self._file else None
        save = self.problem.save_interval(self._file)
        self.dt = None if save is None else save * self.stride  # the physical time one window step spans
        frame_bytes = int(np.prod(self.space)) * self.channels * 4
        self._cache = None
        self.sha256: str | None = None  # the verified SHA-256 of /u: set here when cached, else by verify()
        if self.n_samples * self.n_time * frame_bytes <= cache_bytes:
            cache = np.empty((self.n_samples, self.n_time, *self.space, self.channels), np.float32)

            def keep(i, ui):  # by chunks: one sample at a time, checksummed on the way
                cache[i] = self._normalize(ui.astype(np.float64), 0).astype(np.float32)

            self.sha256 = check_sha256(self.path, stream_u(self._file, self.path, finite=True, each=keep),
                                       self._recorded_sha256)
            self._cache = cache

    def verify(self) -> str:
        """The SHA-256 of the file's ``/u``, recomputed sample by sample (NaN, inf and chunks failing their
        checksum refused, naming the sample) and checked against the recorded ``sha256``: the checksum a
        consumer may record as the data it used. Free for a cached loader (done at construction); otherwise
        one streaming pass over the file (memory: one sample), done once.

        Raises ``DatasetError`` naming the file (and sample) when the data differ from what was written.
        """
        if self.sha256 is None:
            self.sha256 = check_sha256(self.path, stream_u(self._file, self.path, finite=True),
                                       self._recorded_sha256)
        return self.sha256

    def _normalize(self, frames: np.ndarray, first: int) -> np.ndarray:
        """Frames ``first, first + 1, ...`` of one sample, normalised (the kind's input frames by ``input_stats``)."""
        out = self.stats.normalize(frames)
        n_in = max(self.problem.input_frames - first, 0)
        if n_in:
            out[:n_in] = self.input_stats.normalize(frames[:n_in])
        return out

    # ------------------------------------------------------------------------------------- sizes
    def __len__(self) -> int:
        """Number of windows (sample, start frame)."""
        return self.n_samples * self.windows_per_sample

    @property
    def steps_per_epoch(self) -> int:
        n = len(self)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    # ------------------------------------------------------------------------------------ batches
    def indices(self, step: int) -> np.ndarray:
        """Window indices of global batch ``step`` (a pure function of ``seed`` and ``step``)."""
        if step < 0:
            raise ValueError(f"step: must be >= 0, got {step}")
        epoch, k = divmod(int(step), self.steps_per_epoch)
        if self._perm_epoch != epoch:
            n = len(self)
            self._perm = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                          else np.arange(n))
            self._perm_epoch = epoch
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]

    def _local_rows(self, n_rows: int) -> np.ndarray:
        """Rows of a global batch this process must load (all rows without multi-process sharding)."""
        import jax

        if self.sharding is None or jax.process_count() == 1:
            return np.arange(n_rows)
        rows = set()
        for idx in self.sharding.addressable_devices_indices_map((n_rows,)).values():
            rows.update(range(n_rows)[idx[0]])
        return np.array(sorted(rows))

    def _read(self, windows: np.ndarray) -> dict:
        I, T, k = self.input_steps, self.target_steps, self.stride
        span = (I + T - 1) * k + 1  # frames from a window's first to its last, both included
        samples, starts = np.divmod(windows, self.windows_per_sample)
        frames = np.empty((len(windows), I + T, *self.space, self.channels), np.float32)
        if self._cache is not None:
            for j, (s, t0) in enumerate(zip(samples, starts)):
                frames[j] = self._cache[s, t0:t0 + span:k]
        else:
            u = self._file["u"]
            for s in np.unique(samples):  # one chunk read per distinct sample
                rows = np.flatnonzero(samples == s)
                lo, hi = starts[rows].min(), starts[rows].max() + span
                raw = read_u(u, s, slice(lo, hi), self.path)
                if not np.all(np.isfinite(raw)):
                    raise not_finite(self.path, s)
                block = self._normalize(raw.astype(np.float64), lo).astype(np.float32)
                for j in rows:
                    frames[j] = block[starts[j] - lo:starts[j] - lo + span:k]
        x = frames[:, :I]
        x = np.moveaxis(x, 1, -2).reshape(len(windows), *self.space, I * self.channels)
        out = {"input": x, "target": np.ascontiguousarray(frames[:, I:])}
        if self.params is not None:
            out["params"] = self.params[samples]
        return out

    def batch(self, step: int) -> dict:
        """The batch of global ``step``: NumPy arrays, or global ``jax.Array``s placed with ``sharding``."""
        windows = self.indices(step)
        if self.sharding is None:
            return self._read(windows)
        import jax

        if jax.process_count() == 1:
            return {k: jax.device_put(v, self.sharding) for k, v in self._read(windows).items()}
        rows = self._local_rows(len(windows))
        local = self._read(windows[rows])
        return {k: jax.make_array_from_process_local_data(self.sharding, v, (len(windows), *v.shape[1:]))
                for k, v in local.items()}

    def iterate(self, start_step: int = 0, num_steps: int | None = None):
        """Yield ``(step, batch)`` for ``start_step, start_step + 1, ...`` (``num_steps`` of them, or
        forever), prepared ``prefetch`` batches ahead by a background thread."""
        stop = None if num_steps is None else start_step + int(num_steps)
        if self.prefetch == 0:
            step = start_step
            while stop is None or step < stop:
                yield step, self.batch(step)
                step += 1
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        done = threading.Event()

        def worker():
            step = start_step
            try:
                while not done.is_set() and (stop is None or step < stop):
                    item = (step, self.batch(step))
                    while not done.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    step += 1
                q.put(None)
            except BaseException as e:  # re-raised in the consumer
                q.put(e)

        thread = threading.Thread(target=worker, daemon=True, name="byai-loader")
        thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            done.set()
            while thread.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

