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

import contextlib
import json
import re
from pathlib import Path

import h5py
import numpy as np

from solvers import InputError

from ._errors import DatasetError
from ._import_io import Extra, Source, dtype_name, split_sizes, time_axis, write_source, write_splits
from ._storage import SPACE_DIMS

_CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")
_COORDS = ("x-coordinate", "y-coordinate", "z-coordinate")
FORMATS = ("pdebench", "the_well")


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


def _attrs_json(obj) -> dict:
    return {k: _jsonable(v) for k, v in obj.attrs.items()}


# ------------------------------------------------------------------------------------------ PDEBench
def import_pdebench(path, out_path=None, *, pde: str = "unknown", pde_params: dict | None = None,
                    dtype: str | None = None):
    """Convert a PDEBench HDF5 file to the byai schema.

    Layouts (as PDEBench's ``data_gen`` writes them):
        merged (``Data_Merge.transform``): ``tensor`` ``(N, T, X[, Y[, Z]][, C])``, ``x-coordinate``[,
            ``y-coordinate``], ``t-coordinate`` (``T`` or ``T + 1`` values: the 1-D writers save
            ``arange(T + 1) * dt_save``); the time axis becomes the exact uniform ``t0 + k dt`` when the
            stored values are uniform up to their float rounding (:func:`datasets.uniform_spacing`),
            the attribute ``time_spacing`` records ``dt`` and the variable ``source_time`` the stored values.
        compressible CFD (``Data_Merge.merge``): ``density``, ``pressure``, ``Vx``[, ``Vy``[, ``Vz``]]
            ``(N, T, X[, Y[, Z]])`` as channels, coordinates as above.
        Darcy (``Data_Merge.merge``, ``ReacDiff``): ``tensor`` ``(N, 1, X, Y)`` (the steady solution),
            ``nu`` ``(N, X, Y)`` (the coefficient), ``x-``/``y-coordinate``, no ``t-coordinate``, the
            source term ``beta`` as a root attribute (or in the file name, ``..._beta1.0_...``). Imported as a
            steady map (``problem = "steady_map"``, ``pde = "darcy"``, ``pde_params = {"source": beta}``):
            stage 0 = ``nu``, stage 1 = the solution, on the cell centres of the unit square (the source's
            coordinates kept as ``source_x``, ``source_y``).
        incompressible Navier-Stokes (``gen_ns_incomp``): ``velocity`` ``(N, T, X, Y, 2)`` and ``particles``
            ``(N, T, X, Y, 1)`` as channels ``velocity_x, velocity_y, particles``, the per-sample,
            time-constant ``force`` ``(N, X, Y, 2)`` as the variable ``force`` (sample, x, y, component),
            ``t`` ``(N, T)`` (equal for all samples); no coordinates are stored: the writer's domain is
            ``Box[0:X, 0:Y]``, so ``x``, ``y`` are the cell centres ``i + 1/2``.
        per-seed (``gen_diff_react``, ``gen_radial_dam_break``): groups ``0000``, ``0001``, ... with
            ``data`` ``(T, X[, Y], C)``, ``grid/x``[, ``grid/y``], ``grid/t``.

    Every dataset of the source that is not imported is listed with the reason in the JSON
    attribute ``dropped``; the source's attributes are kept as JSON in ``source_attrs``.

    Args:
        path: the PDEBench ``.hdf5``/``.h5`` file.
        out_path: where to write the byai file; ``None`` returns an in-memory
            ``xarray.Dataset`` instead (small files only).
        pde, pde_params: the byai PDE the data satisfies, if the caller knows it
            (left ``"unknown"`` otherwise; PDEBench's scalings differ from byai's). A Darcy file is
            ``darcy`` with the file's source unless ``pde_params`` says otherwise.
        dtype: stored dtype (default: the source's, float32 or float64).
    Returns the written path, or the dataset.
    Raises DatasetError for a file in no PDEBench layout.
    """
    with _open_source(path, "PDEBench") as f:
        src, pde, pde_params = read_pdebench(f, Path(path), pde, pde_params)
        return write_source(src, out_path, pde=pde, pde_params=pde_params, dtype=dtype)


def read_pdebench(f: h5py.File, path: Path, pde: str = "unknown", pde_params: dict | None = None):
    """``(Source, pde, pde_params)`` of an open PDEBench file (see :func:`import_pdebench`)."""
    attrs = {"source": "PDEBench", "source_file": path.name, "source_attrs": _attrs_json(f)}
    pde_params = dict(pde_params or {})
    if "tensor" in f and "nu" in f and "t-coordinate" not in f:
        return _pdebench_darcy(f, path, attrs, pde, pde_params)
    if "velocity" in f and "t" in f:
        return _pdebench_ns(f, path, attrs), pde, pde_params
    if "tensor" in f or any(k in f for k in _CFD_FIELDS):
        return _pdebench_merged(f, path, attrs), pde, pde_params
    seeds = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group) and "data" in f[k])
    if seeds:
        return _pdebench_seeds(f, path, seeds, attrs), pde, pde_params
    raise DatasetError(f"{path}: not a PDEBench file (no 'tensor', CFD fields, 'velocity' or per-seed groups "
                       "'0000/data'); for The Well files use import_the_well")


def _unread(f, used, layout: str) -> dict:
    return {k: f"not part of the PDEBench {layout} layout" for k in f.keys() if k not in used}


def _pdebench_merged(f, path, attrs):
    coord_names = [c for c in _COORDS if c in f]
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
            raise DatasetError(f"{path}: 'tensor' has shape {tensor.shape}, expected (N, T, "
                               f"{', '.join('XYZ'[:d])}[, C]) for its coordinates")
        n, n_t, space = tensor.shape[0], tensor.shape[1], tensor.shape[2:2 + d]
        dt, used = tensor.dtype, ["tensor"]
    else:
        names = [k for k in _CFD_FIELDS if k in f]
        fields = [f[k] for k in names]
        n, n_t, space = fields[0].shape[0], fields[0].shape[1], fields[0].shape[2:]
        if any(fl.shape != fields[0].shape for fl in fields):
            raise DatasetError(f"{path}: PDEBench fields {names} differ in shape")

        def sample(i):
            return np.stack([fl[i] for fl in fields], axis=-1)
        channels, dt, used = names, fields[0].dtype, names
    if tuple(len(c) for c in coords) != tuple(space):
        raise DatasetError(f"{path}: coordinates of lengths {[len(c) for c in coords]} do not match the data's "
                           f"spatial shape {tuple(space)}")
    t_src = f["t-coordinate"]
    if len(t_src) not in (n_t, n_t + 1):  # PDEBench's 1-D writers store one more time than frames
        raise DatasetError(f"{path}: 't-coordinate' has {len(t_src)} values for {n_t} frames")
    t, t_attrs, extras = time_axis(t_src[...], t_src.dtype, "t-coordinate", n_t)
    return Source(path, n, sample, t, coords, channels, dtype_name(dt), dict(attrs, source_layout="merged", **t_attrs),
                  extras=extras, dropped=_unread(f, [*used, *coord_names, "t-coordinate"], "merged"))


_BETA = re.compile(r"beta(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")


def _pdebench_darcy(f, path, attrs, pde, pde_params):
    tensor, nu = f["tensor"], f["nu"]
    if tensor.ndim != 4 or tensor.shape[1] != 1 or nu.shape != (tensor.shape[0], *tensor.shape[2:]):
        raise DatasetError(f"{path}: a PDEBench Darcy file holds 'tensor' (N, 1, X, Y) and 'nu' (N, X, Y), got "
                           f"{tensor.shape} and {nu.shape}")
    if pde not in ("unknown", "darcy"):
        raise InputError(f"pde: a PDEBench Darcy file is the steady map of pde darcy, got {pde!r}")
    if "source" not in pde_params:
        beta = f.attrs.get("beta")
        if beta is None:
            m = _BETA.search(path.name)
            beta = None if m is None else float(m.group(1))
        if beta is None:
            raise InputError(f"{path}: the Darcy source term beta is neither an attribute nor in the file name; "
                             "give it as --param source=VALUE")
        pde_params["source"] = float(np.asarray(beta).reshape(-1)[0])
    shape = tensor.shape[2:]
    coords = [(np.arange(m) + 0.5) / m for m in shape]
    extras = []
    for name, dim, c in zip(_COORDS, "xy", coords):
        if name in f:
            stored = f[name][...]
            if stored.shape != c.shape or not np.allclose(stored, c, rtol=0, atol=1e-5):
                raise DatasetError(f"{path}: {name} is not the cell centres (i + 1/2)/{len(c)} of the unit square "
                                   f"(spans {float(np.min(stored)):g} to {float(np.max(stored)):g})")
            extras.append(Extra(f"source_{dim}", (f"source_{dim}",), stored,
                                {"long_name": f"the source's {name} as stored"}))

    def sample(i):
        return np.stack([nu[i], tensor[i, 0]])[..., None]

    src = Source(path, tensor.shape[0], sample, np.array([0.0, 1.0]), coords, ["a_then_u"],
                 dtype_name(tensor.dtype), dict(attrs, source_layout="darcy", problem="steady_map"), extras=extras,
                 dropped=_unread(f, ["tensor", "nu", *_COORDS], "Darcy"),
                 error=lambda i: np.array([0.0, np.nan]))
    return src, "darcy", pde_params


def _pdebench_ns(f, path, attrs):
    vel, t_all = f["velocity"], f["t"]
    n, n_t, *space, dim = vel.shape
    if len(space) != dim or t_all.shape != (n, n_t):
        raise DatasetError(f"{path}: PDEBench incompressible NS holds 'velocity' (N, T, X, Y, 2) and 't' (N, T), got "
                           f"{vel.shape} and {t_all.shape}")
    t_rows = t_all[...]
    if not np.all(t_rows == t_rows[:1]):
        raise DatasetError(f"{path}: 't' differs between samples (a byai dataset has one time axis)")
    fields, channels = [vel], [f"velocity_{s}" for s in SPACE_DIMS[:dim]]
    if "particles" in f:
        p = f["particles"]
        if p.shape[:-1] != vel.shape[:-1]:
            raise DatasetError(f"{path}: 'particles' has shape {p.shape}, 'velocity' {vel.shape}")
        fields.append(p)
        channels += ["particles"] if p.shape[-1] == 1 else [f"particles_{k}" for k in range(p.shape[-1])]
    extras, used = [], ["velocity", "particles", "t"]
    if "force" in f:
        if f["force"].shape != (n, *space, dim):
            raise DatasetError(f"{path}: 'force' has shape {f['force'].shape}, expected {(n, *space, dim)}")
        extras.append(Extra("force", ("sample", *SPACE_DIMS[:dim], "component"), f["force"],
                            {"long_name": "the sample's time-constant body force (PDEBench 'force')"}))
        used.append("force")
    t, t_attrs, t_extras = time_axis(t_rows[0], t_all.dtype, "t", n_t)

    def sample(i):
        return np.concatenate([fl[i] for fl in fields], axis=-1)

    coords = [np.arange(m) + 0.5 for m in space]  # the writer's phiflow Box[0:X, 0:Y]: unit cells
    return Source(path, n, sample, t, coords, channels, dtype_name(vel.dtype),
                  dict(attrs, source_layout="ns_incomp", **t_attrs), extras=extras + t_extras,
                  dropped=_unread(f, used, "incompressible Navier-Stokes"))


def _pdebench_seeds(f, path, seeds, attrs):
    first = f[seeds[0]]
    if "grid" not in first or "t" not in first["grid"] or "x" not in first["grid"]:
        raise DatasetError(f"{path}: PDEBench group {seeds[0]!r} lacks grid/x or grid/t")
    g = first["grid"]
    coords = [g[c][...] for c in ("x", "y", "z") if c in g]
    shape = first["data"].shape
    d = len(coords)
    if len(shape) not in (1 + d, 2 + d):
        raise DatasetError(f"{path}: {seeds[0]}/data has shape {shape}, expected (T, X{', Y' if d == 2 else ''}"
                           "[, C])")
    with_channel = len(shape) == 2 + d
    for s in seeds:
        if f[s]["data"].shape != shape:
            raise DatasetError(f"{path}: {s}/data has shape {f[s]['data'].shape}, {seeds[0]}/data {shape}")
    t_src = g["t"]
    if len(t_src) not in (shape[0], shape[0] + 1) or tuple(len(c) for c in coords) != tuple(shape[1:1 + d]):
        raise DatasetError(f"{path}: grid/t or grid/x do not match {seeds[0]}/data of shape {shape}")
    t, t_attrs, extras = time_axis(t_src[...], t_src.dtype, "grid/t", shape[0])

    def sample(i):
        a = f[seeds[i]]["data"][...]
        return a if with_channel else a[..., None]
    channels = [f"c{k}" for k in range(shape[-1])] if with_channel else ["u"]
    if len(channels) == 1:
        channels = ["u"]
    dropped = _unread(f, seeds, "per-seed")
    for s in seeds:
        dropped.update({f"{s}/{k}": "not part of the PDEBench per-seed layout" for k in f[s].keys()
                        if k not in ("data", "grid")})
        dropped.update({f"{s}/grid/{k}": "not part of the PDEBench per-seed layout" for k in f[s]["grid"].keys()
                        if k not in ("x", "y", "z", "t")})
    return Source(path, len(seeds), sample, t, coords, channels, dtype_name(first["data"].dtype),
                  dict(attrs, source_layout="per-seed", source_seeds=json.dumps(seeds), **t_attrs), extras=extras,
                  dropped=dropped)


# ------------------------------------------------------------------------------------------ The Well
def import_the_well(path, out_path=None, *, pde: str = "unknown", pde_params: dict | None = None,
                    dtype: str | None = None):
    """Convert a The Well HDF5 file, or a split folder of them, to the byai schema.

    ``path`` is one ``.hdf5`` file or a folder of them (a split, e.g. ``data/train``), read as one
    dataset: the files' trajectories one after the other (in file-name order), their time axis,
    grid and fields alike; The Well's ``stats.yaml`` (in the folder or up to two folders above)
    is kept verbatim as the attribute ``source_stats_yaml``.

    What becomes what (The Well's data format, ``docs/data_format.md``):
        - fields of ``t0_fields`` (one channel), ``t1_fields`` (``D`` channels ``name_x, name_y, ...``)
          and ``t2_fields`` (``D*D`` channels ``name_xx, name_xy, ...``) that vary over samples and
          time are the channels of ``/u``; one that does not vary along a spatial axis
          (``dim_varying`` False: the axis is not stored) is broadcast along it;
        - every other field (constant in time, or the same for all samples) is kept as the variable
          ``field_<name>`` over the axes it varies along (``sample``, ``time``, spatial axes,
          ``component``[, ``component_j``]), not broadcast; the attribute
          ``source_skipped_fields`` lists these fields (not channels of ``/u``);
        - scalars: per-sample constants become ``params``; constants of the whole file stay in
          ``source_attrs["scalars"]`` (across the files of a folder, a constant that differs between
          files becomes a ``params`` column); time-varying scalars the variable ``scalar_<name>``;
        - boundary conditions: their attributes in the JSON attribute ``boundary_conditions``, their
          ``mask`` (int8) and ``values`` as the variables ``bc_<name>_mask`` (over the associated
          spatial axes) and ``bc_<name>_values`` (over ``bc_<name>_point``);
        - anything else is listed in ``dropped`` with the reason.
    A constant field of a folder's files that differs between the files becomes a per-sample
    variable (a leading ``sample`` axis).

    Args and returns as :func:`import_pdebench`.
    """
    with contextlib.ExitStack() as stack:
        src = read_the_well(stack, Path(path))
        return write_source(src, out_path, pde=pde, pde_params=pde_params, dtype=dtype)


def _well_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
        if not files:
            raise DatasetError(f"{path}: a The Well split folder holds .hdf5 files; found none")
        return files
    return [path]


def _stats_yaml(path: Path) -> str | None:
    folder = path if path.is_dir() else path.parent
    for d in (folder, folder.parent, folder.parent.parent):
        if (d / "stats.yaml").is_file():
            return (d / "stats.yaml").read_text()
    return None


def read_the_well(stack: contextlib.ExitStack, path: Path) -> Source:
    """The :class:`Source` of a The Well file or split folder; files stay open in ``stack``."""
    files = _well_files(path)
    parts = [_WellFile(stack.enter_context(_open_source(p, "The Well")), p) for p in files]
    first = parts[0]
    for p in parts[1:]:
        for what in ("channels", "spatial"):
            if getattr(p, what) != getattr(first, what):
                raise DatasetError(f"{p.path}: its {what} {getattr(p, what)} differ from {first.path.name}'s "
                                   f"{getattr(first, what)}")
        if not (np.array_equal(p.t_src, first.t_src) and all(map(np.array_equal, p.coords, first.coords))):
            raise DatasetError(f"{p.path}: its time axis or grid differs from {first.path.name}'s")
    offsets = np.cumsum([0] + [p.n for p in parts])
    n = int(offsets[-1])

    def where(i):
        k = int(np.searchsorted(offsets, i, side="right")) - 1
        return parts[k], i - int(offsets[k])

    def sample(i):
        p, j = where(i)
        return p.sample(j)

    extras = _merge_extras(parts, offsets)
    # scalars: per-sample ones and file constants that differ between files become params
    names = list(first.sv_scalars)
    table = [np.concatenate([p.sv_scalars[s] for p in parts]) for s in names]
    constants = {}
    for s, v in first.const_scalars.items():
        values = [p.const_scalars.get(s) for p in parts]
        if all(_equal(v, w) for w in values):
            constants[s] = _jsonable(v)
        elif all(np.size(w) == 1 for w in values):
            names.append(s)
            table.append(np.repeat([float(np.asarray(w).reshape(-1)[0]) for w in values], [p.n for p in parts]))
        else:
            raise DatasetError(f"{path}: scalar {s} differs between the files and is not a number")
    params = None
    if names:
        table = np.stack(table, axis=1).astype(np.float64)
        params = lambda i: table[i]  # noqa: E731
    bcs = [p.bcs for p in parts]
    root = [p.root for p in parts]
    source_attrs = dict(root[0], scalars=constants)
    if any(r != root[0] for r in root):
        source_attrs["per_file"] = {p.path.name: r for p, r in zip(parts, root)}
    attrs = {"source": "The Well", "source_file": path.name,
             "source_files": json.dumps([p.name for p in files]),
             "source_attrs": source_attrs,
             "boundary_conditions": json.dumps(bcs[0] if all(b == bcs[0] for b in bcs)
                                               else {p.path.name: b for p, b in zip(parts, bcs)}, sort_keys=True),
             "source_skipped_fields": json.dumps(first.skipped), **first.t_attrs}
    stats = _stats_yaml(path)
    if stats is not None:
        attrs["source_stats_yaml"] = stats
    dropped = {}
    for p in parts:
        dropped.update({(k if len(parts) == 1 else f"{p.path.name}:{k}"): why for k, why in p.dropped.items()})
    return Source(path, n, sample, first.t, first.coords, first.channels, first.dtype, attrs, params=params,
                  param_names=tuple(names), extras=extras, dropped=dropped)


def _equal(a, b) -> bool:
    return b is not None and np.shape(a) == np.shape(b) and np.array_equal(np.asarray(a), np.asarray(b))


class _Rows:
    """A per-sample array over several files: row ``i`` from the file holding sample ``i``."""

    def __init__(self, pieces, offsets, per_sample: bool):
        self.pieces, self.offsets, self.per_sample = pieces, offsets, per_sample
        first = np.asarray(pieces[0][0]) if per_sample else np.asarray(pieces[0])
        self.shape, self.dtype = (int(offsets[-1]), *first.shape), first.dtype

    def __getitem__(self, i):
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.pieces[k][i - int(self.offsets[k])] if self.per_sample else self.pieces[k]


def _merge_extras(parts, offsets) -> list[Extra]:
    out = []
    for e in parts[0].extras:
        others = [next((x for x in p.extras if x.name == e.name), None) for p in parts]
        if any(x is None or x.dims != e.dims for x in others):
            raise DatasetError(f"{parts[0].path.parent}: the files differ in their variable {e.name}")
        if len(parts) == 1:
            out.append(e)
        elif e.dims[:1] == ("sample",):
            out.append(Extra(e.name, e.dims, _Rows([x.data for x in others], offsets, True), e.attrs))
        else:
            values = [np.asarray(x.data[...]) for x in others]
            if all(np.array_equal(v, values[0]) for v in values):
                out.append(Extra(e.name, e.dims, values[0], e.attrs))
            else:  # constant within each file, different between them: per sample
                out.append(Extra(e.name, ("sample", *e.dims), _Rows(values, offsets, False), e.attrs))
    return out


class _WellFile:
    """One The Well file as channels, variables, scalars and boundary conditions (see :func:`import_the_well`)."""

    def __init__(self, f: h5py.File, path: Path):
        self.path, self.f = path, f
        if "dimensions" not in f or not any(g in f for g in ("t0_fields", "t1_fields", "t2_fields")):
            raise DatasetError(f"{path}: not a The Well file (needs 'dimensions' and 't0_fields'/'t1_fields')")
        dims = f["dimensions"]
        spatial = [_jsonable(s) for s in np.atleast_1d(dims.attrs.get("spatial_dims", []))]
        if not spatial:
            spatial = [s for s in ("x", "y", "z") if s in dims]
        if "time" not in dims or not spatial or any(s not in dims for s in spatial) or len(spatial) > 3:
            raise DatasetError(f"{path}: 'dimensions' lacks 'time' or the spatial coordinates {spatial}")
        self.spatial, self.byai_dims = spatial, dict(zip(spatial, SPACE_DIMS))
        self.dropped = {f"dimensions/{k}": "not a coordinate of dimensions@spatial_dims" for k in dims.keys()
                        if k not in ("time", *spatial)}
        self.coords = [self._axis(dims[s], f"dimensions/{s}") for s in spatial]
        t_src = self._axis(dims["time"], "dimensions/time")
        self.n = int(f.attrs.get("n_trajectories", 0)) or None
        self.fields, self.channels, self.skipped, self.extras = [], [], [], []
        dtype = None
        for order, group in enumerate(("t0_fields", "t1_fields", "t2_fields")):
            if group not in f:
                continue
            listed = [_jsonable(x) for x in np.atleast_1d(f[group].attrs.get("field_names", list(f[group].keys())))]
            self.dropped.update({f"{group}/{k}": f"not in {group}@field_names" for k in f[group].keys()
                                 if k not in listed})
            for name in listed:
                ds = f[group][name]
                dtype = dtype or ds.dtype
                self._field(group, name, ds, order, len(t_src))
        if not self.fields:
            raise DatasetError(f"{path}: no field varies over samples and time")
        self.t_src = t_src
        self.t, self.t_attrs, t_extras = time_axis(t_src, dims["time"].dtype, "dimensions/time", len(t_src))
        self.extras += t_extras
        self.dtype = dtype_name(dtype)
        self._scalars()
        self._boundary_conditions()
        self.root = _attrs_json(f)
        self.dropped.update({k: "not part of The Well's data format" for k in f.keys() if k not in
                             ("dimensions", "t0_fields", "t1_fields", "t2_fields", "scalars", "boundary_conditions")})

    def _axis(self, ds, name):
        a = ds[...]
        if a.ndim == 2:  # sample_varying: one row per trajectory; a byai dataset has one axis
            if not np.all(a == a[:1]):
                raise DatasetError(f"{self.path}: {name} differs between trajectories (byai holds one grid and one "
                                   "time axis per dataset)")
            a = a[0]
        return a

    def _field(self, group, name, ds, order, n_t):
        d = len(self.spatial)
        sv, tv = bool(ds.attrs.get("sample_varying", True)), bool(ds.attrs.get("time_varying", True))
        varying = [bool(v) for v in np.atleast_1d(ds.attrs.get("dim_varying", [True] * d))]
        if sv and self.n is None:
            self.n = ds.shape[0]
        expect = ((self.n,) if sv else ()) + ((n_t,) if tv else ()) + tuple(
            len(c) for c, v in zip(self.coords, varying) if v) + (d,) * order
        if len(varying) != d or tuple(ds.shape) != expect:
            raise DatasetError(f"{self.path}: {group}/{name} has shape {ds.shape}, expected {expect} (sample_varying "
                               f"{sv}, time_varying {tv}, dim_varying {varying}, tensor order {order})")
        comps = [""] if order == 0 else [f"_{s}" for s in self.spatial] if order == 1 else \
            [f"_{a}{b}" for a in self.spatial for b in self.spatial]
        if sv and tv:
            self.fields.append((ds, order, varying))
            self.channels += [f"{name}{c}" for c in comps]
            return
        self.skipped.append(f"{group}/{name}")
        axes = (("sample",) if sv else ()) + (("time",) if tv else ()) + tuple(
            self.byai_dims[s] for s, v in zip(self.spatial, varying) if v) + ("component", "component_j")[:order]
        self.extras.append(Extra(f"field_{name}", axes, ds, {
            "long_name": f"The Well {group}/{name} (sample_varying {sv}, time_varying {tv}, dim_varying {varying})"}))

    def sample(self, i):
        d = len(self.spatial)
        space = tuple(len(c) for c in self.coords)
        parts = []
        for ds, order, varying in self.fields:
            a = ds[i]
            index = (slice(None),) + tuple(slice(None) if v else None for v in varying) + (slice(None),) * order
            a = np.broadcast_to(a[index], (a.shape[0], *space, *(d,) * order))
            parts.append(a.reshape(a.shape[0], *space, -1))
        return np.concatenate(parts, axis=-1)

    def _scalars(self):
        self.sv_scalars, self.const_scalars = {}, {}
        if "scalars" not in self.f:
            return
        for name, ds in self.f["scalars"].items():
            sv, tv = bool(ds.attrs.get("sample_varying", False)), bool(ds.attrs.get("time_varying", False))
            if sv and not tv and ds.shape[:1] == (self.n,) and ds.size == self.n:
                self.sv_scalars[name] = ds[...].reshape(-1).astype(np.float64)
            elif not sv and not tv:
                a = np.asarray(ds[...])
                self.const_scalars[name] = a.reshape(-1)[0] if a.size == 1 else a
            elif tv and ds.ndim == int(sv) + 1:
                self.extras.append(Extra(f"scalar_{name}", (("sample",) if sv else ()) + ("time",), ds,
                                         {"long_name": f"The Well scalars/{name} (time_varying)"}))
            else:
                self.dropped[f"scalars/{name}"] = f"shape {ds.shape} fits neither a parameter nor a time series"

    def _boundary_conditions(self):
        self.bcs = {}
        if "boundary_conditions" not in self.f:
            return
        for name, g in self.f["boundary_conditions"].items():
            self.bcs[name] = _attrs_json(g)
            sv, tv = bool(g.attrs.get("sample_varying", False)), bool(g.attrs.get("time_varying", False))
            lead = (("sample",) if sv else ()) + (("time",) if tv else ())
            assoc = [_jsonable(s) for s in np.atleast_1d(g.attrs.get("associated_dims", []))]
            for k in g.keys():
                ds = g[k]
                if k == "mask" and ds.ndim == len(lead) + len(assoc) and all(s in self.byai_dims for s in assoc):
                    self.extras.append(Extra(f"bc_{name}_mask", lead + tuple(self.byai_dims[s] for s in assoc), ds,
                                             {"long_name": f"The Well boundary_conditions/{name}/mask: 1 where the "
                                                           f"boundary condition {self.bcs[name].get('bc_type')} holds"}))
                elif k == "values" and ds.ndim >= len(lead):
                    rest = ds.ndim - len(lead)
                    point = [f"bc_{name}_point" if rest == 1 else f"bc_{name}_point{j}" for j in range(rest)]
                    self.extras.append(Extra(f"bc_{name}_values", lead + tuple(point), ds,
                                             {"long_name": f"The Well boundary_conditions/{name}/values (on the "
                                                           "mask's points)"}))
                else:
                    self.dropped[f"boundary_conditions/{name}/{k}"] = f"shape {ds.shape} is not a mask or values array"


# ------------------------------------------------------------------------------------------ splits
def import_splits(fmt: str, source, out_dir, *, splits: dict | None = None, seed: int = 0, pde: str = "unknown",
                  pde_params: dict | None = None, dtype: str | None = None) -> dict[str, Path]:
    """Import one source (a PDEBench file, a The Well file or split folder) as ``train/val/calibration/test.h5``.

    The source's samples are permuted with ``numpy.random.default_rng(seed)`` and cut in the order
    train, val, calibration, test, so the folder is a ``--data`` for ``byai train``, ``audit`` and
    ``hybrid``. Rerunning with the same arguments keeps the files already written (identical) and
    writes those missing; each file is written atomically.

    Args:
        fmt: ``"pdebench"`` or ``"the_well"``.
        source: the file (or, for The Well, the split folder).
        out_dir: the output folder.
        splits: samples per split (``{"train": 80, "test": 10, ...}``; missing splits 0); default 10 %
            each for val, calibration and test (at least one each) and the rest for train.
        seed: the permutation's seed.
        pde, pde_params, dtype: as :func:`import_pdebench`.
    Returns ``{split: path}``.
    Raises DatasetError for a bad source or an output file from other arguments, ``solvers.InputError`` for
    splits that need more samples than the source holds.
    """
    if fmt not in FORMATS:
        raise InputError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    source = Path(source)
    with contextlib.ExitStack() as stack:
        if fmt == "pdebench":
            src, pde, pde_params = read_pdebench(stack.enter_context(_open_source(source, "PDEBench")), source, pde,
                                                 pde_params)
            files = [source]
        else:
            src = read_the_well(stack, source)
            files = _well_files(source)
        sizes = split_sizes(src.n, splits, source)
        identity = {"format": fmt, "source": [[p.name, p.stat().st_size] for p in files], "pde": pde,
                    "pde_params": pde_params or {}, "splits": sizes, "seed": int(seed), "dtype": dtype or src.dtype}
        return write_splits(src, out_dir, sizes=sizes, seed=seed, identity=identity, pde=pde, pde_params=pde_params,
                            dtype=dtype)
