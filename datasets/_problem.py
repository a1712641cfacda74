"""Problem kinds: what one sample of a dataset is, as a type.

A kind is abstract (:class:`Problem`) or final (:class:`Trajectory`,
:class:`SteadyMap`). Each owns what differs between them on the data side: the
config fields that apply, the frame axis and its coordinates, how one sample
is drawn and solved, which frames the normalisation statistics describe, the
loader's windows and how a file's PDE is rebuilt. Code outside a kind asks the
kind instead of testing a name; the audit adds its own per-kind behaviour by
dispatching on the kind's type.

The file attribute ``problem`` stores :attr:`Problem.name` (absent in
trajectory files, which read as ``"trajectory"``); a config's PDE class decides
the kind (:func:`problem_for`).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar, final

import numpy as np

import solvers

from ._errors import DatasetError

FAILURES = (solvers.SolverDivergedError, solvers.ResolutionError)
# Grid dimensions whose trajectories are solved in lanes of one batched program. Measured on a 2-core CPU: 1-D
# Kuramoto-Sivashinsky (N=256, rtol 1e-6) 1.6x the samples/s of one at a time; 2-D Navier-Stokes (64^2 refined to
# 256^2) 0.33x, so 2-D and 3-D grids are solved one at a time.
BATCHED_DIMS = (1,)
STAGE_MEANINGS = "input_coefficient_a output_solution_u"


class Problem(abc.ABC):
    """A problem kind. Subclasses are final and stateless; kinds compare equal by type."""

    name: ClassVar[str]
    """The value of the file attribute ``problem``."""
    frame_axis: ClassVar[str]
    """The name of ``/u``'s second axis."""
    input_frames: ClassVar[int]
    """Leading frames of a sample normalised by their own statistics (``input_stats_*``); the rest by ``stats_*``."""

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @staticmethod
    @abc.abstractmethod
    def accepts(cls: type) -> bool:
        """Whether a PDE class is of this kind."""

    # --- the config --------------------------------------------------------------------------
    @abc.abstractmethod
    def default_length(self, ndim: int) -> tuple[float, ...]:
        """The box length per axis when the config leaves ``length`` out."""

    @abc.abstractmethod
    def check_spec(self, spec) -> None:
        """Refuse (``ValueError("field: ...")``) the config fields that do not apply to this kind."""

    @abc.abstractmethod
    def identity(self, spec, d: dict) -> dict:
        """``d`` (the spec as a dict) without the fields that do not apply: what determines the bytes."""

    @abc.abstractmethod
    def n_frames(self, spec) -> int:
        """Frames per sample in ``/u``."""

    @abc.abstractmethod
    def times(self, spec) -> np.ndarray:
        """The values of the frame axis (float64)."""

    @abc.abstractmethod
    def coords(self, spec) -> list[np.ndarray]:
        """The coordinates of the spatial axes."""

    @abc.abstractmethod
    def channel_names(self, spec) -> tuple[str, ...]:
        """Names of ``/u``'s channels."""

    @abc.abstractmethod
    def file_attrs(self, spec) -> dict:
        """The physics, method and distribution attributes of a split file."""

    # --- one sample --------------------------------------------------------------------------
    @abc.abstractmethod
    def draw(self, spec, key) -> tuple[np.ndarray, np.ndarray]:
        """The seeded input of one sample ``(*shape, C)`` and its drawn parameters ``(P,)``."""

    @abc.abstractmethod
    def solve(self, spec, u0: np.ndarray, params: np.ndarray):
        """``(u (frames, *shape, C), error (frames,))`` float64 of one sample, or a solver failure (returned)."""

    def solve_many(self, spec, u0s: np.ndarray, params: np.ndarray):
        """``(j, result)`` for samples ``u0s[j]``, ``params[j]`` as each is done, ``result`` as :meth:`solve`'s.

        The result of a sample must not depend on the others; this default solves them one at a time."""
        for j in range(len(u0s)):
            yield j, self.solve(spec, u0s[j], params[j])

    # --- the file ----------------------------------------------------------------------------
    @abc.abstractmethod
    def frame_coordinate(self, t) -> tuple[np.ndarray, dict]:
        """The frame axis' values as stored and its attributes, from the frame values ``t``."""

    def long_names(self, dims) -> dict[str, str]:
        """``long_name`` attributes that differ from a trajectory's, by variable."""
        return {}

    def check_u(self, path, shape) -> None:
        """Raise ``DatasetError`` naming ``path`` if ``/u``'s shape cannot be of this kind."""

    @abc.abstractmethod
    def pde(self, ds, sample, known=()):
        """``(pde, grid)`` of sample ``sample`` of an open dataset; ``DatasetError`` when it cannot be rebuilt."""

    def check_windows(self, path, input_steps: int, target_steps: int) -> None:
        """Refuse (``ValueError``) loader windows this kind does not have."""

    def check_stride(self, stride, where) -> int:
        """``stride`` (saved frames per surrogate step) when this kind takes it, else ``solvers.InputError``
        naming ``stride`` and ``where`` (a file or split). Any positive integer here; a kind may allow fewer."""
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
            raise solvers.InputError(f"stride: must be a positive integer (saved frames per surrogate step), "
                                     f"got {stride!r}")
        return int(stride)

    def save_interval(self, f) -> float | None:
        """The save interval of an open split file ``f`` (h5py): the uniform spacing of its frame axis
        (``datasets.uniform_spacing``), or None when the kind has no time axis or the axis is not uniform."""
        return None

    def strided(self, ds, stride: int):
        """The ``xarray.Dataset`` ``ds`` (this kind's, as from ``datasets.open``) seen at every ``stride``-th frame
        (frames ``0, k, 2k, ...``): what a surrogate stepping ``k`` saved frames at a time is compared with.
        ``ds`` itself when ``stride`` is 1."""
        stride = self.check_stride(stride, ds.encoding.get("source") or "the dataset")
        if stride == 1:
            return ds
        n = ds.sizes[self.frame_axis]
        if n < stride + 1:
            where = ds.encoding.get("source") or "the dataset"
            raise solvers.InputError(f"stride: {stride} saved frames per surrogate step, but {where} has only "
                                     f"{n} frames (fewer than one step of {stride} save intervals)")
        out = ds.isel({self.frame_axis: slice(None, None, stride)})
        out.encoding.update(ds.encoding)  # the source file, for messages
        return out


@final
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Trajectory(Problem):
    """A time-dependent PDE (``solvers.SemiLinearPDE``): each sample is a trajectory ``(time, *space, channel)``
    from a random initial condition, saved at ``linspace(0, t_end, n_times)``; a surrogate step advances one
    saved frame."""

    name: ClassVar[str] = "trajectory"
    frame_axis: ClassVar[str] = "time"
    input_frames: ClassVar[int] = 0

    @staticmethod
    def accepts(cls: type) -> bool:
        return issubclass(cls, solvers.SemiLinearPDE)

    def default_length(self, ndim: int) -> tuple[float, ...]:
        return (2 * math.pi,) * ndim

    def check_spec(self, spec) -> None:
        from ._pdes import has_forcing
        from ._spec import DEFAULTS

        for name in ("coefficient", "source"):
            if getattr(spec, name) != DEFAULTS[name]:
                raise ValueError(f"{name}: applies to the steady map pde = darcy only, got {getattr(spec, name)!r}")
        if spec.forcing != "none" and not has_forcing(spec.pde_class):
            raise ValueError(f"forcing: applies to navier_stokes only (a PDE with a forcing field), got {spec.forcing!r}")
        allowed = spec.pde_class.parameters()
        for field in ("params", "param_ranges"):
            for name, value in getattr(spec, field).items():
                if name not in allowed:
                    raise ValueError(f"{field}.{name}: unknown parameter for {spec.pde} "
                                     f"(allowed: {', '.join(allowed) or 'none'}), got {value!r}")
        n = min(spec.shape)
        if 2 * spec.ic.cutoff >= n:
            raise ValueError(f"ic.cutoff: must be < N/2 = {n // 2} for grid {list(spec.shape)}, got {spec.ic.cutoff}")
        spec.example_pde()  # the PDE's own checks of the fixed physics (e.g. nu > 0)

    def identity(self, spec, d: dict) -> dict:
        d.pop("coefficient")
        d.pop("source")
        return d

    def n_frames(self, spec) -> int:
        return spec.n_times

    def times(self, spec) -> np.ndarray:
        return np.linspace(0.0, spec.t_end, spec.n_times)

    def coords(self, spec) -> list[np.ndarray]:
        return spec.grid.coordinates()

    def channel_names(self, spec) -> tuple[str, ...]:
        return tuple(spec.example_pde().channel_names)

    def file_attrs(self, spec) -> dict:
        pde_params = dict(spec.params)
        if spec.forcing != "none":
            pde_params["forcing"] = spec.forcing
        return {"pde": spec.pde_name, "pde_params": pde_params,
                "param_ranges": {k: list(v) for k, v in spec.param_ranges.items()},
                "t_end": spec.t_end, "solver_method": spec.method, "ic": _fields(spec.ic)}

    def draw(self, spec, key):
        from ._ic import normals, random_field, uniforms

        names = spec.param_names
        p = np.asarray(uniforms(key, len(names)))[: len(names)]
        params = np.array([lo + (hi - lo) * p[j] for j, (lo, hi) in enumerate(spec.param_ranges[n] for n in names)],
                          dtype=np.float64)
        pde = spec.example_pde()
        z = np.asarray(normals(key, spec.shape, pde.channels))
        ic = spec.ic
        if ic.kind != "default":
            return random_field(z, spec.shape, ic, kind=ic.kind), params
        ic = dataclasses.replace(ic, **{"kind": "fourier", **pde.default_ic})
        return np.asarray(pde.initial_state(random_field(z, spec.shape, ic)), dtype=np.float64), params

    def solve(self, spec, u0, params):
        """One sample, by the batched solver (so its bytes are those of the sample in any batch)."""
        return next(self.solve_many(spec, u0[None], np.asarray(params)[None]))[1]

    def solve_many(self, spec, u0s, params):
        """The samples, each with its drawn physics parameters: ``solvers.solve_batch_iter`` on the grids in
        ``BATCHED_DIMS``, one ``solvers.solve`` after the other on the others (the choice depends on the grid
        only, so the bytes do not depend on the batch)."""
        from ._pdes import build_pde

        pdes = [build_pde(spec.pde_class, spec.grid,
                          dict(spec.params, **{n: float(v) for n, v in zip(spec.param_names, p)}), spec.forcing)
                for p in params]
        t, options = self.times(spec), dict(rtol=spec.rtol, atol=spec.atol, refine=True, method=spec.method)
        if spec.grid.ndim in BATCHED_DIMS:
            results = solvers.solve_batch_iter(pdes, u0s, t, **options)
        else:
            results = ((j, _solve_or_failure(pde, u0, t, options)) for j, (pde, u0) in enumerate(zip(pdes, u0s)))
        for j, sol in results:
            if isinstance(sol, FAILURES):
                yield j, sol
            else:
                yield j, (np.asarray(sol.u, dtype=np.float64), np.asarray(sol.error, dtype=np.float64))

    def frame_coordinate(self, t):
        return np.asarray(t, dtype=np.float64), {}

    def save_interval(self, f) -> float | None:
        from ._time import uniform_spacing

        if self.frame_axis not in f:
            return None
        t = f[self.frame_axis]
        try:
            return float(uniform_spacing(t[...], dtype=t.dtype if t.dtype.kind == "f" else None, name="time"))
        except solvers.InputError:
            return None

    def pde(self, ds, sample, known=()):
        from ._pdes import build_pde, known_class, make_grid
        from ._storage import json_attr, text

        attrs = ds.attrs
        cls = known_class(text(attrs.get("pde", "unknown")), known)
        params = dict(json_attr(ds, "pde_params", {}) or {})
        forcing = params.pop("forcing", "none")
        if "params" in getattr(ds, "variables", {}):
            names = [text(n) for n in np.asarray(ds["param"].values)]
            if sample is None:
                raise DatasetError("dataset has per-sample physics parameters "
                                   f"({', '.join(names)}); pass sample=i to pde_from_attrs")
            values = np.asarray(ds["params"][sample].values, dtype=np.float64)
            params.update({n: float(v) for n, v in zip(names, values)})
        grid = make_grid(np.atleast_1d(attrs["grid_shape"]), np.atleast_1d(attrs["grid_length"]))
        try:
            return build_pde(cls, grid, params, forcing), grid
        except ValueError as e:
            raise DatasetError(f"dataset's PDE parameters are invalid: {e}") from None


@final
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SteadyMap(Problem):
    """A steady coefficient -> solution map (``solvers.Darcy``, ``a -> u``): each sample is the pair (input
    coefficient, output solution) stored as the two ``stage``s of ``/u`` (stage 0 exact, error 0); a surrogate
    maps stage 0 to stage 1 in one step. The grid is ``n x n`` cells of the unit square."""

    name: ClassVar[str] = "steady_map"
    frame_axis: ClassVar[str] = "stage"
    input_frames: ClassVar[int] = 1

    @staticmethod
    def accepts(cls: type) -> bool:
        return issubclass(cls, solvers.Darcy)

    def default_length(self, ndim: int) -> tuple[float, ...]:
        return (1.0,) * ndim  # the unit square

    def check_spec(self, spec) -> None:
        from ._spec import DEFAULTS, TIME_FIELDS

        if len(spec.shape) != 2 or spec.shape[0] != spec.shape[1]:
            raise ValueError(f"shape: must be a square [n, n] (cells on the unit square) for {spec.pde}, "
                             f"got {list(spec.shape)!r}")
        if spec.length != (1.0, 1.0):
            raise ValueError(f"length: must be [1, 1] (the unit square) or left out for {spec.pde}, "
                             f"got {spec.length!r}")
        for name in TIME_FIELDS:
            if getattr(spec, name) != DEFAULTS[name]:
                raise ValueError(f"{name}: does not apply to the steady map {spec.pde} (no time axis, no initial "
                                 f"condition; leave it out), got {getattr(spec, name)!r}")
        if not math.isfinite(spec.source):
            raise ValueError(f"source: must be finite, got {spec.source!r}")

    def identity(self, spec, d: dict) -> dict:
        from ._spec import TIME_FIELDS

        for name in TIME_FIELDS:
            d.pop(name)
        d["problem"] = self.name
        return d

    def n_frames(self, spec) -> int:
        return 2

    def times(self, spec) -> np.ndarray:
        return np.array([0.0, 1.0])  # the two stages (input, output), stored as the integer axis "stage"

    def coords(self, spec) -> list[np.ndarray]:
        return [(np.arange(n) + 0.5) / n for n in spec.shape]  # cell centres

    def channel_names(self, spec) -> tuple[str, ...]:
        return ("a_then_u",)  # stage 0 holds the coefficient a, stage 1 the solution u

    def file_attrs(self, spec) -> dict:
        return {"problem": self.name, "pde": spec.pde_name, "pde_params": {"source": spec.source},
                "solver_method": "cell-centred finite volumes (harmonic faces), PCG; error bound by Richardson "
                                 "extrapolation over grids n, 2n, 4n plus the CG residual bound",
                "coefficient": _fields(spec.coefficient)}

    def draw(self, spec, key):
        from ._ic import normals, threshold_grf

        return threshold_grf(np.asarray(normals(key, spec.shape, 1)), spec.coefficient), np.zeros(0)

    def solve(self, spec, a, params):
        """``u = [a, solution]`` ``(2, n, n, 1)``, ``error = [0, bound]``: the coefficient is the exact input;
        the solution's bound is ``Darcy.solve_steady``'s (Richardson over three grids plus the CG error)."""
        try:
            pde = spec.pde_class(spec.grid, coefficient=a[..., 0], source=spec.source)
            sol = solvers.solve_steady(pde, rtol=spec.rtol, atol=spec.atol)
        except FAILURES as e:
            return e
        return np.stack([a, np.asarray(sol.u[0], dtype=np.float64)]), np.array([0.0, float(sol.error[0])])

    def frame_coordinate(self, t):
        if not np.array_equal(np.asarray(t), [0.0, 1.0]):
            raise ValueError(f"t: a steady map has the two stages [0, 1] (input, output), got {np.asarray(t).tolist()}")
        return np.array([0, 1], dtype=np.int64), {
            "long_name": "stage of the steady map (not a time): 0 = input, 1 = output",
            "flag_values": np.array([0, 1], dtype=np.int64), "flag_meanings": STAGE_MEANINGS}

    def long_names(self, dims) -> dict[str, str]:
        names = {"u": "stage 0: coefficient a (the map's input); stage 1: solution u (its output)",
                 "error_estimate": "upper bound of the RMS error of each stage (0 for the exact input)"}
        names.update({d: f"cell centre {d} = (i + 1/2) / n on the unit square" for d in dims})
        return names

    def check_u(self, path, shape) -> None:
        if shape[1] != 2:
            raise DatasetError(f"{path}: a steady map's /u must have 2 stages (input, output), got shape {shape}")

    def pde(self, ds, sample, known=()):
        """The PDE of one sample: its stored coefficient (stage 0) and the file's source."""
        from ._pdes import known_class, make_grid
        from ._storage import map_source, text, xarray_u

        cls = known_class(text(ds.attrs.get("pde", "unknown")), known)
        if not self.accepts(cls):
            raise DatasetError(f"steady map of pde {cls.name!r}: only a solvers.Darcy is a steady map in this byai")
        if sample is None or "u" not in getattr(ds, "variables", {}):
            raise DatasetError("a steady map's PDE depends on the sample (its coefficient is the input stage); "
                               "pass sample=i to pde_from_attrs on a dataset from datasets.open")
        grid = make_grid(np.atleast_1d(ds.attrs["grid_shape"]), np.atleast_1d(ds.attrs["grid_length"]))
        a = np.asarray(xarray_u(ds, sample, 0), dtype=np.float64)[..., 0]
        try:
            return cls(grid, coefficient=a, source=map_source(ds)), grid
        except ValueError as e:
            raise DatasetError(f"dataset's Darcy problem of sample {sample} is invalid: {e}") from None

    def check_stride(self, stride, where) -> int:
        """A steady map has one input and one output stage, so a surrogate's step is always one (stride 1)."""
        stride = super().check_stride(stride, where)
        if stride != 1:
            raise solvers.InputError(f"stride: a steady map ({where}) maps its input stage to its output stage in "
                                     f"one step, so it must be 1 (leave model.stride out), got {stride}")
        return stride

    def check_windows(self, path, input_steps: int, target_steps: int) -> None:
        for name, v in (("input_steps", input_steps), ("target_steps", target_steps)):
            if v != 1:
                raise solvers.InputError(f"{name}: a steady map ({path}) has one input and one output stage, so "
                                 f"it must be 1 (train.input_steps and train.unroll = 1), got {v}")


KINDS: tuple[Problem, ...] = (Trajectory(), SteadyMap())


def _solve_or_failure(pde, u0, t, options):
    """``solvers.solve``'s solution, or the solver failure it raised."""
    try:
        return solvers.solve(pde, u0, t, **options)
    except FAILURES as e:
        return e


def _fields(config) -> dict:
    return {k: getattr(config, k) for k in config.__dataclass_fields__}


def problem_for(cls: type) -> Problem:
    """The kind of a PDE class; ``ValueError`` for a class of no kind."""
    for kind in KINDS:
        if kind.accepts(cls):
            return kind
    raise ValueError(f"pde: {cls.__name__} is neither a solvers.SemiLinearPDE nor a steady solvers.Darcy")


def problem_named(name: str) -> Problem:
    """The kind whose :attr:`~Problem.name` is ``name``; ``DatasetError`` for an unknown one."""
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise DatasetError(f"unknown problem kind {name!r} (this byai reads {', '.join(k.name for k in KINDS)})")


def problem_of(attrs) -> Problem:
    """A file's problem kind from its attributes (a trajectory when the attribute ``problem`` is absent)."""
    v = attrs.get("problem", Trajectory.name)
    return problem_named(v.decode() if isinstance(v, bytes) else str(v))
