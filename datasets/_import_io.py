"""What an importer read from a foreign file, and how it becomes byai files: one, or seeded splits.

An importer turns a source into a :class:`Source`: the samples of ``/u`` (read one at a time),
the frame axis, the spatial coordinates, the channels, per-sample parameters, the variables
kept beside ``/u`` (:class:`Extra`) and what it did not import (``dropped``, with the reason).
:func:`write_source` writes all samples or a chosen subset as one byai file;
:func:`write_splits` writes ``train/val/calibration/test.h5`` from a seeded permutation of the
source's samples.

Extra variables keep what is not the state: a coefficient field, a forcing, a boundary mask, a
time series of a scalar, the source's original coordinate values. Each has named dimensions:
the byai ones (``sample``, ``time``, ``x``, ``y``, ``z``) or its own (created as integer index
scales, or as a coordinate when the variable is named after its one dimension), so xarray and
netCDF readers see them as ordinary variables. A variable with a leading ``sample`` dimension is
subset with the samples of a split.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from solvers import InputError

from ._errors import DatasetError
from ._problem import problem_of
from ._spec import SPLITS
from ._storage import SCHEMA_VERSION, SPACE_DIMS, check_file, read_attrs, versions, write_samples
from ._time import uniform_values

DEFAULT_FRACTIONS = {"val": 0.1, "calibration": 0.1, "test": 0.1}
"""``byai import``'s default splits: 10 % each for val, calibration and test (at least one sample each), the rest train."""


@dataclasses.dataclass(frozen=True)
class Extra:
    """A variable kept beside ``/u``: ``data`` (array-like, read lazily) with named dimensions ``dims``."""

    name: str
    dims: tuple[str, ...]
    data: object
    attrs: dict = dataclasses.field(default_factory=dict)

    def rows(self, indices):
        """The data for the samples ``indices`` (all of it when it has no ``sample`` dimension)."""
        if self.dims[:1] != ("sample",):
            return np.asarray(self.data[...] if hasattr(self.data, "shape") else self.data)
        return np.stack([np.asarray(self.data[int(i)]) for i in indices]) if len(indices) else \
            np.zeros((0, *self.data.shape[1:]), self.data.dtype)


@dataclasses.dataclass
class Source:
    """A foreign dataset as the importer read it; samples are read one at a time through ``sample(i)``."""

    path: Path
    n: int
    sample: Callable[[int], np.ndarray]
    t: np.ndarray
    coords: list
    channel_names: list
    dtype: str
    attrs: dict
    params: Callable[[int], np.ndarray] | None = None
    param_names: tuple = ()
    extras: list = dataclasses.field(default_factory=list)
    dropped: dict = dataclasses.field(default_factory=dict)
    error: Callable[[int], np.ndarray] | None = None


def dtype_name(dt) -> str:
    return "float32" if np.dtype(dt) == np.float32 else "float64"


def time_axis(t_src, dtype, name: str, n_frames: int):
    """``(t, attrs, extras)`` for a source's time values: the first ``n_frames`` as the exact uniform
    ``t_0 + k dt`` (float64) when :func:`uniform_spacing` accepts them, else as stored; ``attrs``
    records ``time_spacing`` (NaN for a non-uniform axis) and ``extras`` the original values (the
    variable ``source_time``, in its stored dtype) whenever the stored axis is not exactly ``t``."""
    src = np.asarray(t_src).reshape(-1)
    frames = src[:n_frames].astype(np.float64)
    try:
        t, dt = uniform_values(frames, dtype, name=name)
    except InputError:
        t, dt = frames, math.nan
    extras = []
    if len(src) != len(t) or not np.array_equal(src.astype(np.float64), t):
        extras.append(Extra("source_time", ("source_time",), np.asarray(src, dtype),
                            {"long_name": f"the source's {name} as stored (the time axis holds the first "
                                          f"{n_frames} as t0 + k * time_spacing)"}))
    return t, {"time_spacing": dt}, extras


def grid_length(c) -> float:
    """The periodic length ``n * dx`` a coordinate implies (its spacing read with float rounding allowed)."""
    c = np.asarray(c)
    if len(c) < 2:
        return 1.0
    try:
        _, dx = uniform_values(c, c.dtype if c.dtype.kind == "f" else None)
    except InputError:
        dx = float(c[-1] - c[0]) / (len(c) - 1)
    return float(dx * len(c))


def base_attrs(src: Source, pde: str, pde_params) -> dict:
    base = {
        "schema_version": SCHEMA_VERSION, "pde": pde, "pde_params": dict(pde_params or {}),
        "grid_shape": np.asarray([len(c) for c in src.coords], np.int64),
        "grid_length": np.asarray([grid_length(c) for c in src.coords], np.float64),
        "solver_method": "unknown", "rtol": math.nan, "atol": math.nan, "tolerance_known": 0,
        "dtype": src.dtype, "n_samples": src.n, "versions": versions(), "sha256": "",
    }
    base.update(src.attrs)
    base["dropped"] = json.dumps(src.dropped, sort_keys=True)
    base["extra_variables"] = json.dumps([e.name for e in src.extras])
    return base


def write_source(src: Source, out_path, *, pde: str, pde_params, dtype=None, indices=None, attrs=None):
    """Write the samples ``indices`` (default all, in order) of ``src`` as one byai file (atomically), or
    return an in-memory ``xarray.Dataset`` when ``out_path`` is ``None``."""
    indices = np.arange(src.n) if indices is None else np.asarray(indices, np.int64)
    dtype = dtype or src.dtype
    base = base_attrs(src, pde, pde_params)
    base["n_samples"] = len(indices)
    base.update(attrs or {})
    T = len(src.t)
    error = src.error or (lambda i: np.full(T, np.nan))
    params = None if src.params is None else (lambda k: src.params(int(indices[k])))
    if out_path is None:
        return _in_memory(src, indices, dtype, base, error)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.import")
    try:
        write_samples(tmp, len(indices), lambda k: src.sample(int(indices[k])), t=src.t, coords=src.coords,
                      channel_names=src.channel_names, dtype=dtype, error_estimate=lambda k: error(int(indices[k])),
                      params=params, param_names=src.param_names if params else (), attrs=base)
        with h5py.File(tmp, "a") as f:
            for e in src.extras:
                _add_extra(f, e, e.rows(indices))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out_path)
    return out_path


def _add_extra(f: h5py.File, e: Extra, data: np.ndarray) -> None:
    if e.name in f:
        raise DatasetError(f"{f.filename}: the source's variable {e.name!r} clashes with a byai variable")
    if data.ndim != len(e.dims):
        raise DatasetError(f"variable {e.name}: shape {data.shape} does not match its dimensions {e.dims}")
    if data.dtype == bool:
        data = data.astype(np.int8)  # netCDF has no bool
    own = len(e.dims) == 1 and e.dims[0] == e.name
    kw = dict(compression="gzip", compression_opts=1, shuffle=True) if data.size > 4096 else {}
    d = f.create_dataset(e.name, data=data, **kw)
    for k, v in e.attrs.items():
        d.attrs[k] = v
    if own:
        d.make_scale(e.name)
        return
    for axis, dim in enumerate(e.dims):
        if dim not in f:
            f.create_dataset(dim, data=np.arange(data.shape[axis], dtype=np.int64)).make_scale(dim)
        scale = f[dim]
        if scale.shape != (data.shape[axis],):
            raise DatasetError(f"variable {e.name}: dimension {dim} has {scale.shape[0]} values in the file, "
                               f"{data.shape[axis]} in the source")
        d.dims[axis].attach_scale(scale)


def _in_memory(src: Source, indices, dtype, attrs, error):
    import xarray as xr

    from ._storage import Checksum

    kind = problem_of(attrs)
    u = np.stack([np.asarray(src.sample(int(i))).astype(dtype) for i in indices])
    h = Checksum()
    for ui in u:
        h.update(ui)
    axis = kind.frame_axis
    dims = ("sample", axis, *SPACE_DIMS[: len(src.coords)], "channel")
    data = {"u": (dims, u), "error_estimate": (("sample", axis), np.stack([error(int(i)) for i in indices])),
            "complete": (("sample",), np.ones(len(indices), np.int8))}
    if src.params is not None:
        data["params"] = (("sample", "param"), np.stack([src.params(int(i)) for i in indices]).astype(np.float64))
    crd = {"sample": np.arange(len(indices)), axis: kind.frame_coordinate(src.t)[0], "channel": list(src.channel_names)}
    crd.update({d: np.asarray(c, np.float64) for d, c in zip(SPACE_DIMS, src.coords)})
    if src.params is not None:
        crd["param"] = list(src.param_names)
    for e in src.extras:
        (crd if len(e.dims) == 1 and e.dims[0] == e.name else data)[e.name] = (e.dims, e.rows(indices), e.attrs)
    attrs = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v) for k, v in attrs.items()}
    attrs["sha256"] = h.hexdigest()
    attrs["byai_schema"] = "byai.dataset"
    return xr.Dataset(data, coords=crd, attrs=attrs)


# ------------------------------------------------------------------------------------------ splits
def split_sizes(n: int, splits: dict | None, path) -> dict[str, int]:
    """The samples per split: ``splits`` as given (each of ``SPLITS``; missing ones 0), or the default
    fractions (:data:`DEFAULT_FRACTIONS`, at least one sample each, the rest train).
    Raises :class:`solvers.InputError` when they need more samples than the source's ``n``."""
    if splits is None:
        sizes = {s: max(1, int(n * f)) for s, f in DEFAULT_FRACTIONS.items()}
        sizes = {"train": n - sum(sizes.values()), **sizes}
        if sizes["train"] < 1:
            raise InputError(f"splits: {path} holds {n} samples, too few for the default splits (at least one "
                             "each for train, val, calibration and test); give --splits")
        return sizes
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise InputError(f"splits: unknown split {unknown[0]!r} (allowed: {', '.join(SPLITS)})")
    sizes = {s: int(splits.get(s, 0)) for s in SPLITS}
    if any(v < 0 for v in sizes.values()) or not any(sizes.values()):
        raise InputError(f"splits: sizes must be >= 0 and not all 0, got {sizes}")
    need = sum(sizes.values())
    if need > n:
        raise InputError(f"splits: {', '.join(f'{s}={v}' for s, v in sizes.items())} need {need} samples but "
                         f"{path} holds {n}")
    return sizes


def write_splits(src: Source, out_dir, *, sizes: dict, seed: int, identity: dict, pde: str, pde_params,
                 dtype=None) -> dict[str, Path]:
    """Write ``<split>.h5`` for each split of ``sizes`` (> 0) into ``out_dir``: a permutation of the source's
    samples drawn with ``numpy.random.default_rng(seed)``, cut in the order of ``SPLITS``.

    Each file records ``split``, ``seed``, ``source_samples`` (the source indices of its samples, in
    order) and ``import_identity`` (``identity`` plus the split, as JSON). A file already there with the
    same identity is kept as it is (a rerun of an interrupted import finishes the others and leaves
    identical files); one with another identity is refused.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    perm = np.random.default_rng(seed).permutation(src.n)
    out, start = {}, 0
    for split in SPLITS:
        k = sizes.get(split, 0)
        idx, start = perm[start:start + k], start + k
        if k == 0:
            continue
        path = out_dir / f"{split}.h5"
        ident = json.dumps(dict(identity, split=split), sort_keys=True)
        if path.exists():
            if _identity(path) == ident:
                out[split] = path
                continue
            raise DatasetError(f"{path}: holds other data than this import would write (another source, seed or "
                               "splits); choose another --out or remove the file")
        write_source(src, path, pde=pde, pde_params=pde_params, dtype=dtype, indices=idx,
                     attrs={"split": split, "seed": int(seed), "source_samples": np.asarray(idx, np.int64),
                            "import_identity": ident})
        out[split] = path
    return out


def _identity(path: Path) -> str | None:
    try:
        check_file(path)
        with h5py.File(path, "r") as f:
            v = read_attrs(f).get("import_identity")
    except (DatasetError, OSError):
        return None
    return v if isinstance(v, str) else None
