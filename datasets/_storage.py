"""The byai HDF5 schema: writing, opening as xarray, checking, and rebuilding the PDE.

A dataset file is netCDF4-compatible HDF5 written with h5py dimension scales,
so ``xarray.open_dataset(path, engine="h5netcdf")`` reads it as it is::

    /u               (sample, time, x[, y[, z]], channel)  stored dtype, one sample per chunk,
                     gzip level 4 + shuffle + fletcher32 (a corrupt chunk fails to read; every read
                     of a sample by datasets names the file and the sample: :func:`read_u`)
    /error_estimate  (sample, time) float64: upper bound of each frame's RMS error
                     (the solver's, plus the float32 rounding when stored as float32)
    /params          (sample, param) float64: physics drawn per sample (only when some vary)
    /complete        (sample,) int8: 1 once a sample is written (netCDF has no bool)
    /sample, /time, /x[, /y, /z], /channel[, /param]  coordinates (dimension scales)

Steady maps (``problem = "steady_map"``, e.g. Darcy ``a -> u``). Layout decision: the
pair is stored as ``/u``'s two-frame second axis, named ``stage`` (not ``time``: it is no
physical time), a dimension scale of integers ``[0, 1]`` with the CF attributes
``flag_values``/``flag_meanings`` = ``input_coefficient_a output_solution_u``. Stage 0 is
the map's input (the coefficient, exact: ``error_estimate`` 0), stage 1 its output (the
solution, with the solver's error bound). Then a training window (input frame ->
target frame), an audit rollout of one step from frame 0 and the predictions file are
the trajectory machinery with horizon 1, and generation, resume, checksums and shards
are unchanged; only the normalisation differs: ``stats_*`` describe stage 1 and
``input_stats_*`` stage 0. The file attribute ``problem`` says which kind a file is (absent
in trajectory files, which is read as ``"trajectory"``), ``coefficient`` (JSON) gives the
input's distribution, ``pde_params`` the source. Coordinates ``x``, ``y`` are the cell
centres ``(i + 1/2)/n`` of the unit square.

Attributes (all netCDF types: strings, numbers, number arrays; dicts as JSON text):
``byai_schema`` = "byai.dataset", ``schema_version``, ``pde``, ``pde_params``
(JSON of the fixed physics), ``grid_shape``, ``grid_length``, ``solver_method``,
``rtol``, ``atol`` (NaN when unknown), ``tolerance_known`` (1/0), ``ic`` (JSON),
``seed``, ``split``, ``dtype``, ``redraw_count``, ``versions`` (JSON), ``config`` (JSON
of everything that determines the data) and ``sha256``: the SHA-256 of the
C-order, little-endian bytes of ``/u`` in its stored dtype, sample after sample.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np

from solvers import InputError

from ._errors import DatasetError
from ._problem import problem_of

SCHEMA = "byai.dataset"
SCHEMA_VERSION = 1
SPACE_DIMS = ("x", "y", "z")
REQUIRED_ATTRS = ("schema_version", "pde", "pde_params", "grid_shape", "grid_length", "rtol", "atol",
                  "tolerance_known", "sha256")




def versions() -> dict:
    import jax

    try:
        from importlib.metadata import version

        byai = version("byai")
    except Exception:  # not installed as a distribution
        byai = "unknown"
    return {"byai": byai, "jax": jax.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version}


def _u_chunks(shape):
    return (1, *shape[1:])


def create_file(path, *, n_samples: int, t, coords, channel_names, dtype="float64", param_names=(),
                attrs: dict | None = None, virtual=None) -> h5py.File:
    """Create an empty dataset file with its full shape (samples not yet written).

    The problem kind named by ``attrs["problem"]`` (a trajectory when absent) names the
    second axis and stores its values (a steady map's ``stage``: ``t`` must be ``[0, 1]``).

    Args:
        path: the file to create (overwritten).
        n_samples: number of samples.
        t: ``(T,)`` saved times.
        coords: one 1-D coordinate array per spatial axis.
        channel_names: names of the ``C`` channels.
        dtype: stored dtype of ``u``, ``"float64"`` or ``"float32"``.
        param_names: names of the per-sample parameters (``/params`` only when given).
        attrs: file attributes (numbers, strings, number arrays; dicts become JSON).
        virtual: ``[(file name, start, stop), ...]``: make ``u``, ``error_estimate``,
            ``params`` and ``complete`` HDF5 virtual datasets over those files'
            samples ``start:stop`` (file names relative to this file's folder).
    Returns the open ``h5py.File`` (mode ``w``); the caller closes it.
    """
    t = np.asarray(t, dtype=np.float64)
    coords = [np.asarray(c, dtype=np.float64) for c in coords]
    kind = problem_of(attrs or {})
    axis = kind.frame_axis
    frames, frame_attrs = kind.frame_coordinate(t)
    if not 1 <= len(coords) <= 3:
        raise ValueError(f"coords: 1 to 3 spatial axes expected, got {len(coords)}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype: must be 'float64' or 'float32', got {dtype!r}")
    # no chunk cache: each sample is compressed and written as it comes (memory: one sample)
    f = h5py.File(path, "w", libver=("earliest", "v110"), rdcc_nbytes=0)
    try:
        f.attrs["byai_schema"] = SCHEMA
        for k, v in (attrs or {}).items():
            set_attr(f, k, v)
        scales = {}

        def scale(name, data, dt=None):
            d = f.create_dataset(name, data=data, dtype=dt)
            d.make_scale(name)
            scales[name] = d
            return d

        scale("sample", np.arange(n_samples, dtype=np.int64))
        frame = scale(axis, frames)
        for k, v in frame_attrs.items():
            frame.attrs[k] = v
        dims = SPACE_DIMS[: len(coords)]
        for name, c in zip(dims, coords):
            scale(name, c)
        scale("channel", np.array(list(channel_names), dtype=object), h5py.string_dtype())
        shape = (n_samples, len(t), *(len(c) for c in coords), len(channel_names))

        def variable(name, shape, dt, fill, **kw):
            if virtual is None:
                return f.create_dataset(name, shape=shape, dtype=dt, fillvalue=fill, **kw)
            layout = h5py.VirtualLayout(shape=shape, dtype=dt)
            for fname, a, b in virtual:
                layout[a:b] = h5py.VirtualSource(fname, name, shape=(b - a, *shape[1:]))
            return f.create_virtual_dataset(name, layout, fillvalue=fill)

        chunked = dict(chunks=_u_chunks(shape), compression="gzip", compression_opts=1, shuffle=True,
                       fletcher32=True) if n_samples else {}
        u = variable("u", shape, dtype, np.nan, **chunked)
        _attach(u, [scales[n] for n in ("sample", axis, *dims, "channel")])
        err = variable("error_estimate", (n_samples, len(t)), "float64", np.nan)
        _attach(err, [scales["sample"], scales[axis]])
        if param_names:
            scale("param", np.array(list(param_names), dtype=object), h5py.string_dtype())
            p = variable("params", (n_samples, len(param_names)), "float64", np.nan)
            _attach(p, [scales["sample"], scales["param"]])
        c = variable("complete", (n_samples,), "int8", 0)
        c.attrs["flag_values"] = np.array([0, 1], dtype=np.int8)
        c.attrs["flag_meanings"] = "missing written"
        _attach(c, [scales["sample"]])
        u.attrs["long_name"] = "state"
        err.attrs["long_name"] = "upper bound of the RMS error of each frame"
        for name, long_name in kind.long_names(dims).items():
            f[name].attrs["long_name"] = long_name
        return f
    except BaseException:
        f.close()
        raise


def _attach(dset, scales):
    for i, s in enumerate(scales):
        dset.dims[i].attach_scale(s)


def set_attr(obj, key: str, value) -> None:
    """Store an attribute in a netCDF-compatible type (dicts/lists of strings as JSON text)."""
    if isinstance(value, dict) or (isinstance(value, list | tuple) and any(isinstance(v, str) for v in value)):
        value = json.dumps(value, sort_keys=True)
    elif isinstance(value, bool):
        value = int(value)
    elif isinstance(value, list | tuple):
        value = np.asarray(value)
    if value is None:
        value = ""
    obj.attrs[key] = value


class Checksum:
    """SHA-256 of ``/u`` fed sample by sample in order (C order, little-endian, stored dtype)."""

    def __init__(self):
        self._h = hashlib.sha256()

    def update(self, u_sample: np.ndarray) -> None:
        a = np.ascontiguousarray(u_sample)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        self._h.update(memoryview(a).cast("B"))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def damaged(path, sample, error: OSError) -> DatasetError:
    """The error for sample ``sample`` of ``path``'s ``/u`` whose chunk fails to read.

    A chunk whose bytes changed fails its fletcher32 checksum (HDF5's "filter returned failure during read");
    any other read failure (bytes missing) is quoted.
    """
    msg = _short(error)
    why = ("its chunk fails its checksum" if "filter returned failure" in msg
           else f"its chunk cannot be read: {msg[:120]}")
    return DatasetError(f"{path}: sample {sample} is damaged ({why}), so the file is corrupt; regenerate it or "
                        "restore it from a copy")


def not_finite(path, sample) -> DatasetError:
    """The error for sample ``sample`` of ``path``'s ``/u`` holding NaN or inf: the data is bad, not the training."""
    return DatasetError(f"{path}: sample {sample} holds non-finite values (NaN or inf) in /u, so the data file is bad "
                        "(not the training); regenerate it or restore it from a copy")


def read_u(u, sample, frames=slice(None), path=None) -> np.ndarray:
    """Frames ``frames`` of sample ``sample`` of ``/u`` (an ``h5py.Dataset``) in its stored dtype.

    Raises :class:`DatasetError` naming the file and the sample when the sample's chunk fails to read
    (``path`` names the file in the message; default the dataset's own file).
    """
    try:
        return u[sample, frames]
    except OSError as e:
        raise damaged(u.file.filename if path is None else path, sample, e) from None


def stream_u(f: h5py.File, path=None, *, finite: bool = False, each=None) -> str:
    """Read ``/u`` one sample at a time in sample order and return its SHA-256 (as the ``sha256`` attribute
    defines it). Memory: one sample.

    Args:
        f: the open file.
        path: the file's name in error messages (default ``f.filename``).
        finite: also refuse NaN or inf values, naming the first sample that holds them.
        each: ``each(i, u_i)`` is called with every sample as read (stored dtype), e.g. to fill a cache.
    Raises :class:`DatasetError` naming the file and sample for a chunk that fails to read (or, with
    ``finite``, non-finite values).
    """
    path = f.filename if path is None else path
    u = f["u"]
    h = Checksum()
    for i in range(u.shape[0]):
        ui = read_u(u, i, path=path)
        if finite and not np.all(np.isfinite(ui)):
            raise not_finite(path, i)
        h.update(ui)
        if each is not None:
            each(i, ui)
    return h.hexdigest()


def checksum_file(f: h5py.File, path=None) -> str:
    """Recompute the SHA-256 of ``/u`` by reading one sample at a time (see :func:`stream_u`)."""
    return stream_u(f, path)


def check_sha256(path, digest: str, recorded) -> str:
    """``digest`` when it equals the file's recorded ``sha256``; else :class:`DatasetError` naming ``path``."""
    recorded = text(recorded or "")
    if not recorded:
        raise DatasetError(f"{path}: no sha256 recorded, cannot verify")
    if digest != recorded:
        raise DatasetError(f"{path}: checksum mismatch: /u has sha256 {digest[:16]}..., the file records "
                           f"{recorded[:16]}... (data changed after writing); regenerate it or restore it from a copy")
    return digest


def verified_sha256(path) -> str:
    """The SHA-256 of a dataset file's ``/u``, recomputed sample by sample and checked against its ``sha256``.

    What a consumer records as the provenance of the data it used (e.g. training's ``dataset_sha256``): one
    streaming pass over the file (memory: one sample) that also refuses non-finite values.
    Raises :class:`DatasetError`, one sentence naming the file (and the sample), for a bad file
    (:func:`check_file`), a chunk that fails its checksum, NaN or inf in ``/u``, no recorded checksum or a
    checksum mismatch (data changed after writing).
    """
    attrs = check_file(path)
    with open_h5(path) as f:
        digest = stream_u(f, path, finite=True)
    return check_sha256(path, digest, attrs["sha256"])


def write(path, u, *, t=None, grid=None, coords=None, error_estimate=None, params=None, param_names=(),
          channel_names=None, pde: str = "unknown", pde_params: dict | None = None, rtol: float = math.nan,
          atol: float = math.nan, dtype: str | None = None, attrs: dict | None = None) -> Path:
    """Write in-memory trajectories as a complete byai dataset file.

    For predictions, small synthetic test data and importers. ``u`` is
    ``(sample, time, *space, C)``, or an ``xarray.Dataset`` in the byai layout
    (e.g. from :func:`open`, possibly modified), whose ``u``, ``time``, spatial
    coordinates, ``channel``, ``error_estimate``, ``params`` and attributes are
    used unless given here. The spatial coordinates come from ``grid`` (a
    ``solvers.Grid``; then ``grid_shape``/``grid_length`` are recorded and
    :func:`pde_from_attrs` works) or from ``coords`` (one array per axis).

    Args:
        path: output file (overwritten, atomically: written under a temporary name).
        u: ``(S, T, *space, C)`` states, or an ``xarray.Dataset``.
        t: ``(T,)`` times.
        grid / coords: the spatial grid, one of the two.
        error_estimate: ``(S, T)`` error bound per frame; NaN (unknown) when omitted.
        params: ``(S, P)`` per-sample physics with ``param_names``.
        channel_names: names of the ``C`` channels (default ``c0, c1, ...``).
        pde, pde_params: the equation's name (see ``datasets.PDES``) and fixed physics.
        rtol, atol: the tolerance of ``u``; NaN means unknown (``tolerance_known = 0``).
        dtype: stored dtype (default: float32 if ``u`` is float32, else float64).
        attrs: extra attributes (e.g. ``source``, ``model_sha256``); the keys
            ``pde``, ``pde_params``, ``rtol``, ``atol`` here act as the arguments.
    """
    attrs = dict(attrs or {})
    if hasattr(u, "data_vars"):  # an xarray.Dataset in the byai layout
        ds = u
        dropped = ("sha256", "byai_schema", "stats_mean", "stats_std", "stats_count", "n_samples", "versions",
                   "input_stats_mean", "input_stats_std", "input_stats_count")
        keep = {k: v for k, v in ds.attrs.items() if k not in dropped}
        attrs = dict(keep, **attrs)
        u = xarray_u(ds)
        t = ds[ds["u"].dims[1]].values.astype(np.float64) if t is None else t
        if grid is None and coords is None:
            coords = [ds[d].values for d in SPACE_DIMS if d in ds["u"].dims]
            if "grid_shape" in ds.attrs and "grid_length" in ds.attrs:
                from ._pdes import make_grid

                g = make_grid(np.atleast_1d(ds.attrs["grid_shape"]), np.atleast_1d(ds.attrs["grid_length"]))
                if all(np.allclose(c, gc) for c, gc in zip(coords, g.coordinates())):
                    grid, coords = g, None
        if error_estimate is None and "error_estimate" in ds:
            error_estimate = ds["error_estimate"].values
        if params is None and "params" in ds:
            params, param_names = ds["params"].values, [str(n) for n in ds["param"].values]
        if channel_names is None and "channel" in ds.coords:
            channel_names = [str(c) for c in ds["channel"].values]
    pde = text(attrs.pop("pde", pde))
    pde_params = attrs.pop("pde_params", pde_params)
    if isinstance(pde_params, str):
        pde_params = json.loads(pde_params) if pde_params else {}
    rtol = float(attrs.pop("rtol", rtol))
    atol = float(attrs.pop("atol", atol))
    attrs.pop("tolerance_known", None)
    if t is None:
        raise ValueError("t: the save times are required")
    u = np.asarray(u)
    if u.ndim < 4:
        raise ValueError(f"u: expected (sample, time, *space, channel) with 1 to 3 spatial axes, got shape {u.shape}")
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (u.shape[1],):
        raise ValueError(f"t: expected {u.shape[1]} times to match u, got shape {t.shape}")
    space = u.shape[2:-1]
    if grid is not None:
        if tuple(grid.shape) != space:
            raise ValueError(f"grid: shape {grid.shape} does not match u's spatial shape {space}")
        coords = grid.coordinates()
        grid_shape, grid_length = list(grid.shape), list(grid.length)
    elif coords is not None:
        coords = [np.asarray(c, dtype=np.float64) for c in coords]
        if tuple(len(c) for c in coords) != space:
            raise ValueError(f"coords: lengths {[len(c) for c in coords]} do not match u's spatial shape {space}")
        grid_shape = list(space)
        grid_length = [float(c[1] - c[0]) * len(c) if len(c) > 1 else 1.0 for c in coords]
    else:
        raise ValueError("grid: give a solvers.Grid or coords (one array per spatial axis)")
    dtype = dtype or ("float32" if u.dtype == np.float32 else "float64")
    channel_names = list(channel_names or [f"c{i}" for i in range(u.shape[-1])])
    if len(channel_names) != u.shape[-1]:
        raise ValueError(f"channel_names: expected {u.shape[-1]} names, got {channel_names}")
    err = np.full(u.shape[:2], np.nan) if error_estimate is None else np.asarray(error_estimate, np.float64)
    if err.shape != u.shape[:2]:
        raise ValueError(f"error_estimate: expected shape {u.shape[:2]}, got {err.shape}")
    if params is not None:
        params = np.asarray(params, np.float64).reshape(u.shape[0], -1)
        if len(param_names) != params.shape[1]:
            raise ValueError(f"param_names: expected {params.shape[1]} names, got {list(param_names)}")
    known = math.isfinite(rtol) and math.isfinite(atol)
    base = {
        "schema_version": SCHEMA_VERSION, "pde": pde, "pde_params": dict(pde_params or {}),
        "grid_shape": np.asarray(grid_shape, np.int64), "grid_length": np.asarray(grid_length, np.float64),
        "solver_method": "unknown", "rtol": float(rtol), "atol": float(atol), "tolerance_known": int(known),
        "dtype": dtype, "n_samples": u.shape[0], "versions": versions(), "sha256": "",
    }
    base.update(attrs)
    return write_samples(path, u.shape[0], lambda i: u[i], t=t, coords=coords, channel_names=channel_names,
                         dtype=dtype, error_estimate=lambda i: err[i],
                         params=None if params is None else (lambda i: params[i]),
                         param_names=tuple(param_names) if params is not None else (), attrs=base)


def write_samples(path, n_samples: int, sample, *, t, coords, channel_names, dtype, error_estimate, params=None,
                  param_names=(), attrs: dict) -> Path:
    """Stream samples into a complete dataset file (a temporary name, renamed when done).

    ``sample(i)``, ``error_estimate(i)``, ``params(i)`` return sample ``i``'s
    ``(T, *space, C)`` states, ``(T,)`` error bounds and ``(P,)`` physics; one
    sample is in memory at a time. Records ``sha256`` and the per-channel
    statistics ``stats_mean``, ``stats_std``, ``stats_count``. A sample holding
    NaN or inf is refused (``solvers.InputError`` naming it; nothing is written).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _write_samples(tmp, n_samples, sample, t=t, coords=coords, channel_names=channel_names, dtype=dtype,
                       error_estimate=error_estimate, params=params, param_names=param_names, attrs=attrs, path=path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _write_samples(tmp, n_samples, sample, *, t, coords, channel_names, dtype, error_estimate, params, param_names,
                   attrs, path) -> None:
    """:func:`write_samples` into the temporary file ``tmp`` (``path`` names the final file in errors)."""
    from ._loader import SampleStats

    with create_file(tmp, n_samples=n_samples, t=t, coords=coords, channel_names=channel_names, dtype=dtype,
                     param_names=param_names, attrs=attrs) as f:
        h, stats = Checksum(), SampleStats(len(channel_names), problem_of(attrs))
        for i in range(n_samples):
            ui = np.asarray(sample(i)).astype(dtype)
            if not np.all(np.isfinite(ui)):
                raise InputError(f"u: sample {i} holds non-finite values (NaN or inf), so {path} is not written "
                                 "(a byai dataset holds finite data only)")
            f["u"][i] = ui
            h.update(ui)
            stats.update(ui)
            f["error_estimate"][i] = np.asarray(error_estimate(i), np.float64)
            if params is not None:
                f["params"][i] = np.asarray(params(i), np.float64)
        f["complete"][...] = 1
        set_stats(f, stats)
        f.attrs["sha256"] = h.hexdigest()


def set_stats(f, acc) -> None:
    """Store a :class:`StatsAccumulator`'s per-channel mean, std and point count as attributes.

    A ``SampleStats`` stores its output statistics as ``stats_*`` and, for a
    steady map, its input statistics as ``input_stats_*``.
    """
    inp = getattr(acc, "input", None)
    acc = getattr(acc, "output", acc)
    norm = acc.result()
    f.attrs["stats_mean"] = norm.mean
    f.attrs["stats_std"] = norm.std
    f.attrs["stats_count"] = acc.n
    if inp is not None:
        norm = inp.result()
        f.attrs["input_stats_mean"] = norm.mean
        f.attrs["input_stats_std"] = norm.std
        f.attrs["input_stats_count"] = inp.n


# ---------------------------------------------------------------------------------------- reading
def check_file(path, *, verify: bool = False, require_complete: bool = True) -> dict:
    """Validate a byai dataset file; return its attributes (JSON ones decoded).

    Raises :class:`DatasetError` with one sentence for a missing, truncated,
    corrupt or foreign file, an incomplete one (``require_complete``), and with
    ``verify=True`` a checksum mismatch or an unreadable chunk.
    """
    path = Path(path)
    if not path.exists():
        if path.with_name(f".{path.name}.partial").exists():
            raise DatasetError(f"{path}: not written yet (an interrupted generation is journalled beside it); "
                               "rerun the same generate command to finish it")
        raise DatasetError(f"{path}: no such dataset file")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a dataset file")
    f = open_h5(path)
    try:
        with f:
            if f.attrs.get("byai_schema") is None or text(f.attrs["byai_schema"]) != SCHEMA:
                raise DatasetError(f"{path}: not a byai dataset (no byai_schema = {SCHEMA!r} attribute); "
                                   "import foreign data with datasets.import_pdebench or import_the_well")
            attrs = read_attrs(f)
            missing = [a for a in REQUIRED_ATTRS if a not in attrs]
            if missing:
                raise DatasetError(f"{path}: byai dataset lacks the attribute {missing[0]!r}")
            if int(attrs["schema_version"]) > SCHEMA_VERSION:
                raise DatasetError(f"{path}: schema version {attrs['schema_version']} is newer than this byai "
                                   f"reads ({SCHEMA_VERSION}); upgrade byai")
            try:
                kind = problem_of(attrs)
            except DatasetError as e:
                raise DatasetError(f"{path}: {e}") from None
            axis = kind.frame_axis
            for name in ("u", "error_estimate", "complete", axis, "sample", "channel"):
                if name not in f:
                    raise DatasetError(f"{path}: byai dataset lacks the variable /{name}")
            u = f["u"]
            if u.ndim < 4 or u.dtype not in (np.float32, np.float64):
                raise DatasetError(f"{path}: /u has shape {u.shape} and dtype {u.dtype}, expected float "
                                   f"(sample, {axis}, *space, channel)")
            kind.check_u(path, u.shape)
            if f["error_estimate"].shape != u.shape[:2] or f["complete"].shape != u.shape[:1]:
                raise DatasetError(f"{path}: /error_estimate or /complete does not match /u's shape {u.shape}")
            if tuple(int(n) for n in np.atleast_1d(attrs["grid_shape"])) != tuple(u.shape[2:-1]):
                raise DatasetError(f"{path}: grid_shape {attrs['grid_shape']} does not match /u {u.shape}")
            if u.is_virtual:  # a split file over per-process shard files: they must all be there
                for src in u.virtual_sources():
                    shard = path.parent / src.file_name
                    if src.file_name != "." and not shard.is_file():
                        raise DatasetError(f"{path}: its shard file {shard.name} is missing (keep the "
                                           f"<split>.p<k>.h5 files beside the split file)")
            if require_complete or verify:
                try:
                    complete = f["complete"][...]
                except OSError as e:
                    raise DatasetError(f"{path}: /complete cannot be read ({_short(e)})") from None
                if not np.all(complete == 1):
                    first = int(np.argmin(complete == 1))
                    raise DatasetError(f"{path}: incomplete dataset ({int(np.sum(complete != 1))} of "
                                       f"{complete.size} samples missing, first {first}); rerun the generate "
                                       "command to finish it")
            if verify:
                check_sha256(path, checksum_file(f, path), attrs["sha256"])
            return attrs
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetError(f"{path}: corrupt dataset file ({_short(e)})") from None


def open_h5(path, **kwargs) -> h5py.File:
    """``h5py.File(path, "r")``; :class:`DatasetError` naming ``path`` when it is truncated, corrupt or not HDF5."""
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as e:
        reason = "truncated" if "truncated" in str(e).lower() else "corrupt or not HDF5"
        raise DatasetError(f"{path}: cannot be read as HDF5 (file {reason}: {_short(e)})") from None


def _short(e) -> str:
    return " ".join(str(e).split())[:200]


def text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


JSON_ATTRS = ("pde_params", "ic", "versions", "config", "param_ranges", "source_attrs", "coefficient")


def read_attrs(f) -> dict:
    """File attributes as Python values, JSON text attributes decoded."""
    out = {}
    for k, v in f.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if k in JSON_ATTRS and isinstance(v, str):
            try:
                v = json.loads(v) if v else {}
            except json.JSONDecodeError:
                raise DatasetError(f"{getattr(f, 'filename', '?')}: attribute {k!r} is not valid JSON") from None
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def xarray_u(ds, sample=None, frames=slice(None)) -> np.ndarray:
    """``ds["u"]`` (or frames ``frames`` of one sample) of a dataset from :func:`open`, read from its file.

    Raises :class:`DatasetError` naming the file and the sample whose chunk fails to read.
    """
    where = ds.encoding.get("source", "dataset")
    if sample is not None:
        try:
            return ds["u"][sample, frames].values
        except OSError as e:
            raise damaged(where, sample, e) from None
    try:
        return ds["u"].values
    except OSError:
        for i in range(ds["u"].shape[0]):  # name the first sample that fails
            xarray_u(ds, i)
        raise


def open(path, verify: bool = False, *, require_complete: bool = True):  # noqa: A001 - the public name
    """Open a byai dataset file as a lazily backed ``xarray.Dataset``.

    Variables ``u`` (sample, time, x[, y], channel), ``error_estimate``
    (sample, time), ``complete``, ``params`` (sample, param) when present;
    coordinates ``sample``, ``time``, ``x``[, ``y``], ``channel``; the file's
    attributes, JSON ones (``pde_params``, ``ic``, ``versions``, ``config``) as text.

    Args:
        path: the ``.h5`` file.
        verify: also recompute the SHA-256 of ``u`` (reads the whole file, by
            chunks) and check every chunk's fletcher32 checksum.
        require_complete: refuse a file with unwritten samples.
    Raises:
        DatasetError: one sentence for a missing, truncated, corrupt, foreign,
            incomplete file or (``verify``) a checksum mismatch.
    """
    import xarray as xr

    check_file(path, verify=verify, require_complete=require_complete)
    try:
        return xr.open_dataset(path, engine="h5netcdf", chunks=None, cache=False)
    except Exception as e:  # h5netcdf/xarray errors on a malformed file
        raise DatasetError(f"{path}: cannot be read by xarray ({_short(e)})") from None


def json_attr(ds, name: str, default=None):
    """A JSON attribute of an ``xarray.Dataset`` (or attrs mapping) decoded."""
    attrs = getattr(ds, "attrs", ds)
    v = attrs.get(name, default)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        try:
            return json.loads(v) if v else default
        except json.JSONDecodeError:
            raise DatasetError(f"attribute {name!r} is not valid JSON") from None
    return v


def pde_from_attrs(ds, sample: int | None = None, known=()):
    """Rebuild the ``solvers`` PDE (and its grid) a dataset was generated with.

    The file's recorded ``pde`` is looked up among the built-in classes and
    ``known`` (e.g. the class a config names); nothing is imported because a
    file says so.

    Args:
        ds: a dataset from :func:`open` (or its ``attrs`` with, for per-sample
            physics, a ``params`` variable).
        sample: index of the sample whose drawn parameters (a steady map: whose
            coefficient) to use; required when the physics varies per sample.
        known: PDE classes besides the built-ins that the file may name.
    Returns ``(pde, grid)``.
    Raises DatasetError if the file names no known PDE (imported data).
    """
    return problem_of(ds.attrs).pde(ds, sample, tuple(known))


def map_source(ds) -> float:
    """A steady map file's constant source ``f`` (its ``pde_params.source``; 1 where the file does not say)."""
    return float((json_attr(ds, "pde_params", {}) or {}).get("source", 1.0))
