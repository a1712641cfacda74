"""Importers for the HDF5 layouts users already hold: PDEBench and The Well.

Both produce the byai schema (``datasets.open`` reads the result) with the
tolerance marked unknown (``rtol = atol = NaN``, ``tolerance_known = 0``,
``error_estimate`` NaN), ``pde = "unknown"`` unless the caller names the byai
PDE the data satisfies (the conventions of the sources differ from byai's, so
this is never guessed), and the source's own metadata kept as JSON in
``source_attrs``. Samples are streamed one at a time (memory: one trajectory).

Layouts (see the PDEBench ``data_gen`` scripts and The Well's data format):
    PDEBench merged: ``tensor`` ``(N, T, X)`` / ``(N, T, X, Y)`` / ``(N, T, X[, Y], C)``,
        ``x-coordinate``[, ``y-coordinate``], ``t-coordinate`` (``T`` or ``T + 1`` values);
        2-D CFD files hold ``density``, ``pressure``, ``Vx``, ``Vy`` ``(N, T, X, Y)`` instead of ``tensor``.
    PDEBench per-seed: groups ``0000``, ``0001``, ... with ``data`` ``(T, X[, Y], C)``,
        ``grid/x``[, ``grid/y``], ``grid/t``.
    The Well: ``t0_fields/<name>`` ``(n_traj, T, X[, Y])``, ``t1_fields/<name>``
        ``(..., D)``, ``t2_fields/<name>`` ``(..., D, D)``, ``dimensions/time``,
        ``dimensions/<x, y>`` (named by ``dimensions@spatial_dims``),
        ``boundary_conditions/<group>@bc_type``, ``scalars/<name>``, root attributes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

from ._storage import SCHEMA_VERSION, DatasetError, versions, write_samples

_CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")


def _open_source(path, what: str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such {what} file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read as HDF5 ({' '.join(str(e).split())[:160]})") from None


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.dtype.kind in "OSU" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _grid_length(c: np.ndarray) -> float:
    c = np.asarray(c, np.float64)
    return float((c[-1] - c[0]) * len(c) / (len(c) - 1)) if len(c) > 1 else 1.0


def _finish(out_path, n, sample, *, t, coords, channel_names, dtype, attrs, pde, pde_params, params=None,
            param_names=()):
    base = {
        "schema_version": SCHEMA_VERSION, "pde": pde, "pde_params": dict(pde_params or {}),
        "grid_shape": np.asarray([len(c) for c in coords], np.int64),
        "grid_length": np.asarray([_grid_length(c) for c in coords], np.float64),
        "solver_method": "unknown", "rtol": math.nan, "atol": math.nan, "tolerance_known": 0,
        "dtype": dtype, "n_samples": n, "versions": versions(), "sha256": "",
    }
    base.update(attrs)
    T = len(t)
    if out_path is None:
        return _in_memory(n, sample, t=t, coords=coords, channel_names=channel_names, dtype=dtype, attrs=base,
                          params=params, param_names=param_names)
    return write_samples(out_path, n, sample, t=t, coords=coords, channel_names=channel_names, dtype=dtype,
                         error_estimate=lambda i: np.full(T, np.nan), params=params, param_names=param_names,
                         attrs=base)


def _in_memory(n, sample, *, t, coords, channel_names, dtype, attrs, params, param_names):
    import xarray as xr

    from ._storage import SPACE_DIMS, Checksum

    u = np.stack([np.asarray(sample(i)).astype(dtype) for i in range(n)])
    h = Checksum()
    for ui in u:
        h.update(ui)
    dims = ("sample", "time", *SPACE_DIMS[: len(coords)], "channel")
    data = {"u": (dims, u), "error_estimate": (("sample", "time"), np.full(u.shape[:2], np.nan)),
            "complete": (("sample",), np.ones(n, np.int8))}
    if params is not None:
        data["params"] = (("sample", "param"), np.stack([params(i) for i in range(n)]).astype(np.float64))
    crd = {"sample": np.arange(n), "time": np.asarray(t, np.float64), "channel": list(channel_names)}
    crd.update({d: np.asarray(c, np.float64) for d, c in zip(SPACE_DIMS, coords)})
    if params is not None:
        crd["param"] = list(param_names)
    attrs = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v) for k, v in attrs.items()}
    attrs["sha256"] = h.hexdigest()
    attrs["byai_schema"] = "byai.dataset"
    return xr.Dataset(data, coords=crd, attrs=attrs)


def import_pdebench(path, out_path=None, *, pde: str = "unknown", pde_params: dict | None = None,
                    dtype: str | None = None):
    """Convert a PDEBench HDF5 file (merged ``tensor`` or per-seed groups) to the byai schema.

    Args:
        path: the PDEBench ``.hdf5``/``.h5`` file.
        out_path: where to write the byai file; ``None`` returns an in-memory
            ``xarray.Dataset`` instead (small files only).
        pde, pde_params: the byai PDE the data satisfies, if the caller knows it
            (left ``"unknown"`` otherwise; PDEBench's scalings differ from byai's).
        dtype: stored dtype (default: the source's, float32 or float64).
    Returns the written path, or the dataset.
    Raises DatasetError for a file in neither PDEBench layout.
    """
    path = Path(path)
    with _open_source(path, "PDEBench") as f:
        attrs = {"source": "PDEBench", "source_file": path.name,
                 "source_attrs": {k: _jsonable(v) for k, v in f.attrs.items()}}
        if "tensor" in f or any(k in f for k in _CFD_FIELDS):
            return _pdebench_merged(f, path, out_path, attrs, pde, pde_params, dtype)
        seeds = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group) and "data" in f[k])
        if seeds:
            return _pdebench_seeds(f, path, seeds, out_path, attrs, pde, pde_params, dtype)
        raise DatasetError(f"{path}: not a PDEBench file (neither a 'tensor' dataset nor per-seed groups "
                           "'0000/data'); for The Well files use import_the_well")


def _pdebench_merged(f, path, out_path, attrs, pde, pde_params, dtype):
    coord_names = [c for c in ("x-coordinate", "y-coordinate", "z-coordinate") if c in f]
    if not coord_names or "t-coordinate" not in f:
        raise DatasetError(f"{path}: PDEBench merged file lacks 'x-coordinate' or 't-coordinate'")
    coords = [f[c][...] for c in coord_names]
    d = len(coords)
    if "tensor" in f:
        tensor = f["tensor"]
        if tensor.ndim == 2 + d:
            def sample(i):
                return tensor[i][..., None]
            channels = ["u"]
        elif tensor.ndim == 3 + d:
            def sample(i):
                return tensor[i]
            channels = [f"c{k}" for k in range(tensor.shape[-1])]
        else:
            raise DatasetError(f"{path}: 'tensor' has shape {tensor.shape}, expected (N, T, {'X, Y' if d == 2 else 'X'}"
                               "[, C]) for its coordinates")
        n, n_t, space = tensor.shape[0], tensor.shape[1], tensor.shape[2:2 + d]
        dt = tensor.dtype
    else:
        names = [k for k in _CFD_FIELDS if k in f]
        fields = [f[k] for k in names]
        n, n_t, space = fields[0].shape[0], fields[0].shape[1], fields[0].shape[2:]
        if any(fl.shape != fields[0].shape for fl in fields):
            raise DatasetError(f"{path}: PDEBench fields {names} differ in shape")

        def sample(i):
            return np.stack([fl[i] for fl in fields], axis=-1)
        channels, dt = names, fields[0].dtype
    if tuple(len(c) for c in coords) != tuple(space):
        raise DatasetError(f"{path}: coordinates of lengths {[len(c) for c in coords]} do not match the data's "
                           f"spatial shape {tuple(space)}")
    t = np.asarray(f["t-coordinate"][...], np.float64)
    if len(t) == n_t + 1:  # PDEBench stores the time edges: one more than frames
        t = t[:n_t]
    if len(t) != n_t:
        raise DatasetError(f"{path}: 't-coordinate' has {len(t)} values for {n_t} frames")
    dtype = dtype or ("float32" if dt == np.float32 else "float64")
    return _finish(out_path, n, sample, t=t, coords=coords, channel_names=channels, dtype=dtype,
                   attrs=dict(attrs, source_layout="merged"), pde=pde, pde_params=pde_params)


def _pdebench_seeds(f, path, seeds, out_path, attrs, pde, pde_params, dtype):
    first = f[seeds[0]]
    if "grid" not in first or "t" not in first["grid"] or "x" not in first["grid"]:
        raise DatasetError(f"{path}: PDEBench group {seeds[0]!r} lacks grid/x or grid/t")
    g = first["grid"]
    coords = [g[c][...] for c in ("x", "y", "z") if c in g]
    t = np.asarray(g["t"][...], np.float64)
    shape = first["data"].shape
    d = len(coords)
    if len(shape) not in (1 + d, 2 + d):
        raise DatasetError(f"{path}: {seeds[0]}/data has shape {shape}, expected (T, X{', Y' if d == 2 else ''}"
                           "[, C])")
    with_channel = len(shape) == 2 + d
    for s in seeds:
        if f[s]["data"].shape != shape:
            raise DatasetError(f"{path}: {s}/data has shape {f[s]['data'].shape}, {seeds[0]}/data {shape}")
    if len(t) == shape[0] + 1:
        t = t[: shape[0]]
    if len(t) != shape[0] or tuple(len(c) for c in coords) != tuple(shape[1:1 + d]):
        raise DatasetError(f"{path}: grid/t or grid/x do not match {seeds[0]}/data of shape {shape}")

    def sample(i):
        a = f[seeds[i]]["data"][...]
        return a if with_channel else a[..., None]
    channels = [f"c{k}" for k in range(shape[-1])] if with_channel else ["u"]
    if len(channels) == 1:
        channels = ["u"]
    dt = f[seeds[0]]["data"].dtype
    dtype = dtype or ("float32" if dt == np.float32 else "float64")
    return _finish(out_path, len(seeds), sample, t=t, coords=coords, channel_names=channels, dtype=dtype,
                   attrs=dict(attrs, source_layout="per-seed", source_seeds=json.dumps(seeds)), pde=pde,
                   pde_params=pde_params)


def import_the_well(path, out_path=None, *, pde: str = "unknown", pde_params: dict | None = None,
                    dtype: str | None = None):
    """Convert a The Well HDF5 file to the byai schema.

    The state is every field of ``t0_fields`` (one channel each), ``t1_fields``
    (``D`` channels ``name_x, name_y, ...``) and ``t2_fields`` (``D*D`` channels)
    that varies over samples and time; constant fields and scalars are kept
    as metadata (``source_attrs``), per-sample constant scalars become ``params``.
    Boundary conditions go to the JSON attribute ``boundary_conditions``.

    Args and returns as :func:`import_pdebench`.
    """
    path = Path(path)
    with _open_source(path, "The Well") as f:
        if "dimensions" not in f or not any(g in f for g in ("t0_fields", "t1_fields", "t2_fields")):
            raise DatasetError(f"{path}: not a The Well file (needs 'dimensions' and 't0_fields'/'t1_fields')")
        dims = f["dimensions"]
        spatial = [_jsonable(s) for s in np.atleast_1d(dims.attrs.get("spatial_dims", []))]
        if not spatial:
            spatial = [s for s in ("x", "y", "z") if s in dims]
        if "time" not in dims or not spatial or any(s not in dims for s in spatial):
            raise DatasetError(f"{path}: 'dimensions' lacks 'time' or the spatial coordinates {spatial}")
        coords = [dims[s][...] for s in spatial]
        t = np.asarray(dims["time"][...], np.float64)
        d = len(coords)
        n = int(f.attrs.get("n_trajectories", 0)) or None
        fields, channels = [], []
        skipped = []
        for order, group in enumerate(("t0_fields", "t1_fields", "t2_fields")):
            if group not in f:
                continue
            names = [_jsonable(x) for x in np.atleast_1d(f[group].attrs.get("field_names", list(f[group].keys())))]
            for name in names:
                ds = f[group][name]
                if not (bool(ds.attrs.get("sample_varying", True)) and bool(ds.attrs.get("time_varying", True))):
                    skipped.append(f"{group}/{name}")
                    continue
                expect = 2 + d + order
                if ds.ndim != expect:
                    raise DatasetError(f"{path}: {group}/{name} has shape {ds.shape}, expected {expect} axes "
                                       f"(n_traj, time, {', '.join(spatial)}{', D' * order})")
                n = n or ds.shape[0]
                if ds.shape[0] != n or ds.shape[1] != len(t) or tuple(ds.shape[2:2 + d]) != tuple(map(len, coords)):
                    raise DatasetError(f"{path}: {group}/{name} has shape {ds.shape}, which does not match "
                                       f"{n} trajectories, {len(t)} times and the grid {tuple(map(len, coords))}")
                fields.append((ds, order))
                comps = [""] if order == 0 else [f"_{s}" for s in spatial] if order == 1 else \
                    [f"_{a}{b}" for a in spatial for b in spatial]
                channels += [f"{name}{c}" for c in comps]
        if not fields:
            raise DatasetError(f"{path}: no field varies over samples and time")

        def sample(i):
            parts = []
            for ds, order in fields:
                a = ds[i]
                parts.append(a[..., None] if order == 0 else a.reshape(*a.shape[:1 + d], -1))
            return np.concatenate(parts, axis=-1)

        bcs = {}
        if "boundary_conditions" in f:
            for name, g in f["boundary_conditions"].items():
                bcs[name] = {k: _jsonable(v) for k, v in g.attrs.items()}
        params, param_names, scalars = None, (), {}
        if "scalars" in f:
            varying = []
            for name, ds in f["scalars"].items():
                sv, tv = bool(ds.attrs.get("sample_varying", False)), bool(ds.attrs.get("time_varying", False))
                if sv and not tv and ds.shape[:1] == (n,):
                    varying.append((name, ds[...].reshape(n, -1)[:, 0]))
                elif not sv and not tv:
                    scalars[name] = _jsonable(np.asarray(ds[...]).reshape(-1)[0]) if ds.size else None
            if varying:
                param_names = tuple(v[0] for v in varying)
                table = np.stack([v[1] for v in varying], axis=1).astype(np.float64)
                params = lambda i: table[i]  # noqa: E731
        dt = fields[0][0].dtype
        dtype = dtype or ("float32" if dt == np.float32 else "float64")
        attrs = {"source": "The Well", "source_file": path.name,
                 "source_attrs": dict({k: _jsonable(v) for k, v in f.attrs.items()}, scalars=scalars),
                 "boundary_conditions": json.dumps(bcs, sort_keys=True),
                 "source_skipped_fields": json.dumps(skipped)}
        return _finish(out_path, n, sample, t=t, coords=coords, channel_names=channels, dtype=dtype, attrs=attrs,
                       pde=pde, pde_params=pde_params, params=params, param_names=param_names)
