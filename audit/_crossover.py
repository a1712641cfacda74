"""Where a surrogate starts to pay: its cost and real error across grid sizes, against the solver at equal accuracy.

:func:`crossover` generates (or reuses) a small reference test set at each grid size with the
data config's PDE, parameters, tolerance, time axis and seed (``datasets.generate``; the
initial-condition sampler's draws depend on the grid, so each size holds its own draws from the same
distribution, not the same samples resampled), rolls each surrogate out from every
initial condition over the audit's horizon, measures its error with the requirement's metric
and aggregate (the audit's score, e.g. the q0.95 over samples of the max over steps of rel_l2)
and its wall time, runs the audit's equal-accuracy search at that error (the cheapest solver
setting at least as accurate, timed the same way, compilation excluded) and states

* ``speedup = solver seconds / surrogate seconds`` per (grid, model) row;
* per model, the fitted cost scaling ``seconds ~ a N^p`` of surrogate and solver, ``N`` the
  grid points (``n^d`` for a grid of ``n`` points per axis), least squares in log-log over the
  measured rows (:func:`fit_power_law`);
* where the speedup crosses 1 (:func:`find_crossing`): ``measured`` when two measured sizes
  bracket it, ``extrapolated`` from the fitted scaling when it lies beyond the measured sizes
  (labelled as such, with the direction), ``none`` with the reason when the fits never cross.

Seconds are per rollout (the whole sample set's rollout time over the sample count, fastest of
``repeats`` timed runs after an untimed compiling one, :func:`audit.time_call`). A surrogate that
steps ``stride`` saved frames at a time is compared, as ``audit.run`` compares it, with every
``stride``-th reference frame over the audit's horizon counted in its steps; the solver then covers
the same physical interval per step.
A model that cannot run at a size (a U-Net whose size its levels do not divide, an FNO whose
trained modes the grid cannot hold) gives a row marked ``skipped`` with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import datasets
import solvers

from . import _kinds, _run
from ._config import AuditConfig, AuditError, Requirement
from ._equal_accuracy import MIN_POINTS, check_repeats, time_call
from ._progress import bar


# ------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass(frozen=True)
class CrossoverConfig:
    """The ``[crossover]`` section: the grid sizes measured and the reference samples per size.

    Args:
        shapes: grid sizes ``n`` per axis (a 2-D size ``n`` is an ``n x n`` grid), at least two
            distinct, each >= 8 (the coarsest equal-accuracy solve keeps 8 points per axis).
            Good values: powers of two spanning a factor 8 or more, e.g. ``[32, 64, 128, 256]``.
        samples: reference samples per size (the error's quantile and the timings run over them), >= 1.
            Good values 8-16: the rows' errors are order statistics of this many samples.
    """

    shapes: tuple[int, ...] = (32, 64, 128, 256)
    samples: int = 8

    def __post_init__(self):
        shapes = self.shapes
        if not (isinstance(shapes, tuple | list) and all(_is_int(n) for n in shapes)):
            raise ValueError(f"shapes: must be a list of grid sizes (integers >= 8), got {shapes!r}")
        shapes = tuple(sorted({int(n) for n in shapes}))
        if len(shapes) < 2 or shapes[0] < 8:
            raise ValueError(f"shapes: must hold at least two distinct grid sizes, each >= 8, got {self.shapes!r}")
        object.__setattr__(self, "shapes", shapes)
        if not (_is_int(self.samples) and self.samples >= 1):
            raise ValueError(f"samples: must be an integer >= 1, got {self.samples!r}")
        object.__setattr__(self, "samples", int(self.samples))


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------------ models
@dataclasses.dataclass(frozen=True)
class CrossoverModel:
    """A surrogate placed on the map.

    Attributes:
        name: how rows name it (e.g. its folder).
        stepper: ``step(u) -> u`` (``step(u, p)`` with ``with_params``) on one ``(*space, C)`` state at any
            grid it supports, advancing ``stride`` saved frames.
        stride: saved frames per surrogate step, >= 1.
        with_params: the stepper takes each sample's physics parameters ``p = params[i]``.
        grid_problem: ``grid_problem(shape) -> str | None``, why the model cannot run on a grid of
            ``shape`` (None when it can); :func:`model_grid_problem` reads it from a model config.
    """

    name: str
    stepper: Callable
    stride: int = 1
    with_params: bool = False
    grid_problem: Callable[[tuple[int, ...]], str | None] = lambda shape: None

    def __post_init__(self):
        if not (_is_int(self.stride) and self.stride >= 1):
            raise AuditError(f"{self.name}: stride must be an integer >= 1, got {self.stride!r}")


def model_stride(meta: dict, where: str) -> int:
    """The ``stride`` a model's metadata states (1 when absent); ``AuditError`` naming ``where`` when invalid."""
    for node in (meta, meta.get("model_config") if isinstance(meta.get("model_config"), dict) else {},
                 meta.get("train_config") if isinstance(meta.get("train_config"), dict) else {}):
        if "stride" in node:
            k = node["stride"]
            if not (_is_int(k) and 1 <= k <= 10_000):
                raise AuditError(f"{where}: stride must be an integer from 1 to 10000, got {k!r}")
            return int(k)
    return 1


def model_grid_problem(model_config: dict, shape: tuple[int, ...]) -> str | None:
    """Why a model of ``model_config`` (``byai_model.json``'s ``model_config``) cannot be evaluated on ``shape``.

    An FNO runs on any grid, but one whose trained modes the grid cannot hold (per axis, ``modes``
    wavenumbers counting negative ones: ``n // 2 + 1 < modes // 2 + 1`` on the real-FFT axis, fewer than
    ``modes`` on the others) would silently drop weights: it is another operator, not this model. A
    U-Net needs every size divisible by ``2 ** (levels - 1)``. Other kinds run on any grid.
    """
    kind = model_config.get("kind")
    if kind == "fno":
        modes = model_config.get("modes") or ()
        modes = tuple(modes) * len(shape) if len(modes) == 1 else tuple(modes)
        if len(modes) != len(shape) or not all(_is_int(m) and m >= 1 for m in modes):
            return f"the FNO's modes {model_config.get('modes')!r} do not fit a {len(shape)}-D grid"
        for axis, (n, m) in enumerate(zip(shape, modes)):
            last = axis == len(shape) - 1
            held, need = (n // 2 + 1, m // 2 + 1) if last else (n, m)
            if held < need:
                return (f"the FNO keeps {m} Fourier modes per axis; a {_shape_text(shape)} grid holds only "
                        f"{held if not last else 2 * (held - 1)} (its weights would be cut)")
    elif kind == "unet":
        levels = len(model_config.get("multipliers") or (1,))
        factor = 2 ** (levels - 1)
        if any(n % factor for n in shape):
            return f"the U-Net's {levels} levels need grid sizes divisible by {factor}, got {_shape_text(shape)}"
    return None


def _shape_text(shape) -> str:
    return "x".join(str(n) for n in shape)


# ------------------------------------------------------------------------------------------- references
def reference_spec(spec: datasets.DatasetSpec, n: int, samples: int) -> datasets.DatasetSpec:
    """``spec`` on an ``n`` per axis grid with ``samples`` test samples and no other split."""
    return dataclasses.replace(spec, shape=(n,) * len(spec.shape),
                               splits=datasets.SplitSizes(train=0, val=0, calibration=0, test=samples))


def _reusable(path: Path | None, spec: datasets.DatasetSpec, samples: int):
    """``path`` opened (its first ``samples`` samples) when it holds ``spec``'s test split with at least that
    many samples (its recorded generation config equals ``spec``'s but for the sample count), else None."""
    if path is None or not Path(path).is_file():
        return None
    ds = datasets.open(path, verify=True)
    try:
        recorded = json.loads(str(ds.attrs.get("config", "")))
        n = int(recorded["n_samples"])
    except (ValueError, KeyError, TypeError):
        return None
    want = dataclasses.replace(spec, splits=datasets.SplitSizes(train=0, val=0, calibration=0, test=max(n, 1)))
    if n < samples or _canon(recorded) != _canon(want.identity("test")):
        return None
    return ds.isel(sample=slice(0, samples))


FAILED = "failed.json"  # a size's recorded generation failure


def _recorded_failure(folder: Path, spec: datasets.DatasetSpec) -> str | None:
    """The reason recorded in ``folder/failed.json`` for ``spec``'s test split, or None (none, or for another
    config, or unreadable: then generation runs again)."""
    try:
        record = json.loads((folder / FAILED).read_text())
        if _canon(record["identity"]) == _canon(spec.identity("test")) and isinstance(record["reason"], str):
            return record["reason"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _record_failure(folder: Path, spec: datasets.DatasetSpec, reason: str) -> None:
    """Write ``folder/failed.json`` whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FAILED}.tmp"
    tmp.write_text(json.dumps({"identity": json.loads(_canon(spec.identity("test"))), "reason": reason}))
    tmp.replace(folder / FAILED)


def _canon(d) -> str:
    return json.dumps(json.loads(json.dumps(d, default=str)), sort_keys=True)


def reference_sets(spec: datasets.DatasetSpec, shapes: Sequence[int], samples: int, cache, *,
                   original: Path | None = None, say: Callable[[str], None] = lambda m: None,
                   quiet: bool = True) -> dict:
    """``{n: xarray.Dataset or reason}``: a test set of ``samples`` samples per grid size ``n``.

    Each is ``datasets.generate`` of :func:`reference_spec` into ``cache/<n>[x<n>]-s<samples>/test.h5``
    (a finished file is reused, an interrupted one resumed; the generator writes atomically). At the
    data's own size ``original`` (its ``test.h5``) is used instead when it was made by the same config
    with at least ``samples`` samples. A size at which the solver cannot meet the tolerance or diverges
    gives the reason (a string) instead of a dataset; generation being deterministic, the reason is kept
    in the folder's ``failed.json`` (with the config it is for) and a rerun gives it without solving again.
    ``quiet``: no progress bars (over the sizes, and the generator's over each size's samples).
    """
    out = {}
    with bar(len(shapes), "reference data", quiet, unit="grid") as ticks:
        for n in shapes:
            out[n] = _reference_set(spec, n, samples, cache, original, say, quiet)
            ticks.update()
    return out


def _reference_set(spec: datasets.DatasetSpec, n: int, samples: int, cache, original: Path | None, say,
                   quiet: bool):
    """:func:`reference_sets` at one size ``n``: the dataset, or the reason there is none (``quiet``: without
    the generator's progress bar over the samples)."""
    spec_n = reference_spec(spec, n, samples)
    reuse = _reusable(original, spec_n, samples) if tuple(spec_n.shape) == tuple(spec.shape) else None
    if reuse is not None:
        say(f"grid {_shape_text(spec_n.shape)}: reusing {original}")
        return reuse
    folder = Path(cache) / f"{_shape_text(spec_n.shape)}-s{samples}"
    failed = _recorded_failure(folder, spec_n)
    if failed is not None:
        say(f"grid {_shape_text(spec_n.shape)}: the solver failed here before ({folder / FAILED})")
        return failed
    say(f"grid {_shape_text(spec_n.shape)}: reference data in {folder}")
    try:
        path = datasets.generate(spec_n, folder, quiet=quiet, splits=("test",))["test"]
    except (solvers.ResolutionError, solvers.SolverDivergedError) as e:
        reason = f"no reference data at this size: {' '.join(str(e).split())[:400]}"
        _record_failure(folder, spec_n, reason)
        return reason
    return datasets.open(path, verify=True)


# ---------------------------------------------------------------------------------------------- one row
@dataclasses.dataclass(frozen=True)
class Row:
    """One (grid size, model) measurement.

    Attributes:
        grid: points per axis ``n``; ``shape`` the grid, ``points`` its ``N = n^d`` points.
        model, stride: the surrogate and its saved frames per step.
        status: ``"measured"`` (both costs known), ``"surrogate_only"`` (the solver's side is unknown:
            ``reason``), or ``"skipped"`` (nothing measured: ``reason``).
        samples: reference samples at this size; steps: surrogate steps rolled out (the audit's horizon).
        surrogate_error: the requirement's aggregate error of the surrogate at this size.
        surrogate_seconds, solver_seconds: wall time (s) of one rollout over the horizon, compilation excluded.
        solver_error, solver_setting: the chosen equal-accuracy setting's error and description.
        speedup: ``solver_seconds / surrogate_seconds`` (may be < 1); speedup_bound: ``exact``, ``upper`` (the
            cheapest setting tried already matched) or ``lower`` (no setting reached the surrogate's error).
    """

    grid: int
    shape: tuple[int, ...]
    points: int
    model: str
    stride: int
    status: Literal["measured", "surrogate_only", "skipped"]
    reason: str | None = None
    samples: int = 0
    steps: int = 0
    surrogate_error: float | None = None
    surrogate_seconds: float | None = None
    solver_seconds: float | None = None
    solver_error: float | None = None
    solver_setting: dict | None = None
    speedup: float | None = None
    speedup_bound: str | None = None

    def to_json(self) -> dict:
        return _run._jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


def measure(test, model: CrossoverModel, requirement: Requirement, config: AuditConfig, *, repeats: int = 3,
            pde_classes: tuple = (), say: Callable[[str], None] = lambda m: None, quiet: bool = True) -> Row:
    """The :class:`Row` of ``model`` on the reference set ``test`` (an ``xarray.Dataset`` as from ``datasets.open``).

    As ``audit.run`` does, the set is seen at every ``stride``-th frame and the audit's horizon counts
    the surrogate's steps (of ``stride`` save intervals); the surrogate is rolled out from each initial
    condition and scored with the audit's score; the kind's equal-accuracy search (:mod:`audit._kinds`)
    then finds the cheapest solver setting at that error over the same frames and interval
    (with its progress bar unless ``quiet``).
    """
    kind = datasets.problem_of(test.attrs)
    shape = tuple(int(n) for n in test["u"].shape[2:-1])
    head = dict(grid=shape[0], shape=shape, points=math.prod(shape), model=model.name, stride=model.stride,
                samples=int(test["u"].shape[0]))
    reason = model.grid_problem(shape)
    if reason is not None:
        return Row(**head, status="skipped", reason=reason)
    try:  # as audit.run: every stride-th frame, the horizon in the stepper's steps
        test = _run.strided(test, model.stride)
        ref, t, _ = _run._split_arrays(test, "reference", kind)
        problem = _kinds.problem_audit(kind, test, None, pde_classes)
        steps = problem.horizon(requirement, ref.shape[1], ref.shape[1])
    except (AuditError, solvers.InputError) as e:
        return Row(**head, status="skipped", reason=" ".join(str(e).split()))
    ref_h, t_h = ref[:, :steps + 1], t[:steps + 1]
    dt = _run.save_interval(test, t_h, "reference")
    params = _run._params(test, "reference", model.with_params)
    f = _run._bind(model.stepper, model.with_params)
    try:
        _run._check_stepper(f, ref.shape[2:], params.shape[1])
    except AuditError as e:
        return Row(**head, status="skipped", reason=str(e))
    say(f"grid {_shape_text(shape)}, {model.name}: rolling out {ref.shape[0]} samples over {steps} steps")
    roll = jax.jit(jax.vmap(lambda u0, p: solvers.rollout(lambda u: f(u, p), u0, steps)))
    seconds, pred = time_call(roll, jnp.asarray(ref_h[:, 0]), jnp.asarray(params), repeats=repeats)
    pred = np.asarray(pred, dtype=np.float64)
    per = float(ref.shape[0])
    head.update(steps=steps, surrogate_seconds=seconds / per)
    if not np.all(np.isfinite(pred)):
        return Row(**head, status="skipped", reason="the surrogate diverged (non-finite values) at this size")
    tolerance = _run._tolerance(dict(test.attrs))
    tol = None if tolerance is None else _run._frame_tolerance(ref_h, tolerance)
    score = _run._score_fn(requirement, config, ref_h, tol)
    error = float(score(pred))
    head.update(surrogate_error=error)
    eq = problem.equal_accuracy(requirement, ref_h, t_h, dt, score, seconds, error, config.equal_accuracy, None,
                                say, repeats=repeats, quiet=quiet)
    if eq.status != "measured" or eq.search is None:
        return Row(**head, status="surrogate_only", reason=eq.reason or "the equal-accuracy search did not run")
    chosen = eq.search["chosen"]
    solver_seconds = float(chosen["seconds"]) / per
    return Row(**head, status="measured", solver_seconds=solver_seconds, solver_error=float(chosen["error"]),
               solver_setting=chosen["setting"], speedup=solver_seconds / head["surrogate_seconds"],
               speedup_bound=eq.search["bound"])


# ----------------------------------------------------------------------------------------- fit, crossing
@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """``seconds = a * N^p`` over grid points ``N``, fitted by least squares on ``log seconds`` vs ``log N``
    over ``sizes`` measured rows."""

    a: float
    p: float
    sizes: int

    def __call__(self, points):
        return self.a * np.asarray(points, dtype=np.float64) ** self.p

    def to_json(self) -> dict:
        return {"a": self.a, "p": self.p, "sizes": self.sizes, "law": "seconds = a * N^p, N = grid points"}


def fit_power_law(points: Sequence[float], seconds: Sequence[float]) -> PowerLaw | None:
    """The least-squares power law through ``(points, seconds)`` pairs with finite positive values, or None with
    fewer than two distinct sizes."""
    x, y = np.asarray(points, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log(x[ok]), np.log(y[ok])
    if np.unique(x).size < 2:
        return None
    p, log_a = np.polyfit(x, y, 1)
    return PowerLaw(float(np.exp(log_a)), float(p), int(x.size))


@dataclasses.dataclass(frozen=True)
class Crossing:
    """Where the speedup crosses 1.

    ``kind``: ``"measured"`` (two measured sizes ``between`` bracket it; ``grid`` is the log-log
    interpolation between them), ``"extrapolated"`` (from the fitted power laws, beyond the
    measured sizes: ``direction`` ``"above"`` or ``"below"`` them, ``grid`` the fitted crossing and
    ``beyond`` its factor in grid points past the nearest measured size) or ``"none"`` (``reason``).
    ``pays_above``: whether the surrogate pays above the crossing (speedup rising with the grid).
    """

    kind: Literal["measured", "extrapolated", "none"]
    grid: float | None = None
    between: tuple[int, int] | None = None
    direction: str | None = None
    beyond: float | None = None
    pays_above: bool | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        out = {"kind": self.kind}
        if self.kind == "measured":
            out.update(between=list(self.between), grid=self.grid, pays_above=self.pays_above,
                       note="speedup interpolated log-log between the two measured sizes")
        elif self.kind == "extrapolated":
            out.update(grid=self.grid, direction=self.direction, beyond=self.beyond, pays_above=self.pays_above,
                       note=f"extrapolated from the fitted cost scaling, {self.direction} the measured sizes; "
                            "not measured")
        else:
            out["reason"] = self.reason
        return out

    def sentence(self) -> str:
        where = "above" if self.pays_above else "below"
        if self.kind == "measured":
            return (f"the speedup crosses 1 between the measured grids {self.between[0]} and {self.between[1]} "
                    f"(about {self.grid:.0f}); the surrogate pays {where} it")
        if self.kind == "extrapolated":
            return (f"the speedup crosses 1 at about grid {self.grid:.3g}, EXTRAPOLATED from the fitted cost scaling "
                    f"{self.direction} the measured sizes ({self.beyond:.3g}x the grid points of the nearest "
                    f"measured size); the surrogate would pay {where} it")
        return f"no crossing: {self.reason}"


MAX_EXTRAPOLATION = 1000.0  # grid points beyond the nearest measured size a fitted power law is extrapolated to


def find_crossing(grids: Sequence[int], ndim: int, speedups: Sequence[float], surrogate: PowerLaw | None,
                  solver: PowerLaw | None) -> Crossing:
    """Where ``speedup`` (measured at grid sizes ``grids``, ``ndim``-D) crosses 1.

    Two consecutive measured sizes on either side of 1 (or at it) bracket it (``measured``). Otherwise the
    fitted laws give the speedup ``(a_solver / a_surrogate) N^(p_solver - p_surrogate)``, equal to 1 at
    ``N* = (a_surrogate / a_solver)^(1 / (p_solver - p_surrogate))``: ``extrapolated`` when ``N*`` lies
    beyond the measured sizes on the side the measured speedups point to; ``none`` when the exponents are
    equal (the fits never cross), fewer than two sizes were measured, or the fits cross inside the measured
    range although no two measured sizes bracket 1 (the fit and the measurements disagree), below the
    smallest grid a solve can use (``MIN_POINTS`` per axis), or more than :data:`MAX_EXTRAPOLATION` times
    the grid points of the nearest measured size away (a power law fitted on a few sizes says nothing there).
    """
    pts = sorted((int(g), float(s)) for g, s in zip(grids, speedups)
                 if s is not None and np.isfinite(s) and s > 0)
    if not pts:
        return Crossing("none", reason="no size was measured")
    for (g1, s1), (g2, s2) in zip(pts, pts[1:]):
        if (s1 - 1) * (s2 - 1) <= 0:
            if s1 == s2:
                est = float(g1)
            else:  # log speedup linear in log grid between the two sizes
                w = -math.log(s1) / (math.log(s2) - math.log(s1))
                est = float(math.exp(math.log(g1) + w * (math.log(g2) - math.log(g1))))
            return Crossing("measured", grid=est, between=(g1, g2), pays_above=s2 > s1)
    if surrogate is None or solver is None or len(pts) < 2:
        return Crossing("none", reason="fewer than two measured sizes: no cost scaling to extrapolate from")
    q = solver.p - surrogate.p
    ratio = solver.a / surrogate.a
    if abs(q) < 1e-6:
        return Crossing("none", reason=f"the fitted costs scale alike (exponents {solver.p:.3g} and "
                                       f"{surrogate.p:.3g}): the fitted speedup stays {ratio:.3g} at every size")
    n_star = (1.0 / ratio) ** (1.0 / q)  # grid points
    lo, hi = pts[0][0] ** ndim, pts[-1][0] ** ndim
    grid = float(n_star ** (1.0 / ndim))
    pays = "rises" if q > 0 else "falls"
    if lo <= n_star <= hi:
        side = "above" if pts[0][1] > 1 else "below"
        return Crossing("none", reason=f"every measured speedup is {side} 1, yet the fitted scaling crosses 1 "
                                       f"inside the measured sizes (about grid {grid:.3g}): the fits do not describe "
                                       "the measurements well enough to extrapolate")
    direction = "above" if n_star > hi else "below"
    if direction == "below" and grid < MIN_POINTS:
        return Crossing("none", reason=f"the fitted speedup {pays} as the grid grows (exponent {q:.3g} in grid points) "
                                       f"and reaches 1 only at about grid {grid:.3g}, below any grid a solve can use "
                                       f"({MIN_POINTS} points per axis): the surrogate pays at no size, measured or "
                                       "extrapolated")
    beyond = n_star / hi if direction == "above" else lo / n_star
    if not math.isfinite(grid) or not math.isfinite(beyond) or beyond > MAX_EXTRAPOLATION:
        return Crossing("none", reason=f"the fitted speedup {pays} as the grid grows (exponent {q:.3g} in grid "
                                       f"points) but reaches 1 only at about grid {grid:.3g}, {beyond:.3g}x the grid "
                                       f"points of the nearest measured size: a power law is not extrapolated beyond "
                                       f"{MAX_EXTRAPOLATION:g}x")
    return Crossing("extrapolated", grid=grid, direction=direction, beyond=float(beyond), pays_above=q > 0)


# --------------------------------------------------------------------------------------------- the study
@dataclasses.dataclass(frozen=True)
class Series:
    """One model's rows, its fitted cost scaling (None with fewer than two measured sizes) and crossing."""

    model: str
    stride: int
    surrogate_fit: PowerLaw | None
    solver_fit: PowerLaw | None
    crossing: Crossing

    def to_json(self) -> dict:
        fit = lambda f: None if f is None else f.to_json()  # noqa: E731
        speedup_p = (None if self.surrogate_fit is None or self.solver_fit is None
                     else self.solver_fit.p - self.surrogate_fit.p)
        return {"model": self.model, "stride": self.stride,
                "scaling": {"surrogate": fit(self.surrogate_fit), "solver": fit(self.solver_fit),
                            "speedup_exponent": speedup_p},
                "crossing": self.crossing.to_json()}


@dataclasses.dataclass(frozen=True)
class CrossoverResult:
    """The result of :func:`crossover`; :attr:`summary` is ``crossover.json``.

    Attributes:
        rows: one :class:`Row` per (grid size, model), sizes ascending.
        series: one :class:`Series` per model, in the order given.
        requirement: the requirement whose metric and aggregate define the errors.
        error_definition: what ``surrogate_error`` and ``solver_error`` are.
        ndim: spatial dimensions (``N = grid^ndim`` points).
        skipped_sizes: ``{grid: reason}`` for sizes without reference data.
    """

    rows: tuple[Row, ...]
    series: tuple[Series, ...]
    requirement: Requirement
    error_definition: str
    ndim: int
    skipped_sizes: dict = dataclasses.field(default_factory=dict)

    @property
    def best(self) -> Series:
        """The series whose crossing comes at the smallest grid (measured before extrapolated before none)."""
        order = {"measured": 0, "extrapolated": 1, "none": 2}
        return min(self.series, key=lambda s: (order[s.crossing.kind],
                                               s.crossing.grid if s.crossing.grid is not None else math.inf))

    @property
    def summary(self) -> dict:
        """``crossover.json``: ``rows``, ``series`` (per model: ``scaling``, ``crossing``), the best series'
        ``scaling`` and ``crossing`` (with its model and stride), the error definition and the units."""
        best = self.best.to_json()
        return _run._jsonable({
            "rows": [r.to_json() for r in self.rows],
            "series": [s.to_json() for s in self.series],
            "scaling": best["scaling"],
            "crossing": {**best["crossing"], "model": best["model"], "stride": best["stride"]},
            "requirement": str(self.requirement),
            "error_definition": self.error_definition,
            "ndim": self.ndim,
            "units": {"seconds": "wall time of one rollout over the horizon, compilation excluded (fastest repeat)",
                      "grid": "points per axis", "points": "grid points N = grid^ndim",
                      "speedup": "solver seconds at equal accuracy / surrogate seconds (may be < 1)"},
            "skipped_sizes": {str(k): v for k, v in self.skipped_sizes.items()},
        })

    def sentence(self) -> str:
        """One paragraph: the measured range of the speedup and where it crosses 1, per model."""
        parts = []
        for s in self.series:
            rows = [r for r in self.rows if r.model == s.model and r.status == "measured"]
            if rows:
                lo, hi = min(rows, key=lambda r: r.speedup), max(rows, key=lambda r: r.speedup)
                measured = (f"measured speedup at equal accuracy {lo.speedup:.3g} (grid {lo.grid}) to {hi.speedup:.3g} "
                            f"(grid {hi.grid}) over grids {', '.join(str(r.grid) for r in rows)}")
            else:
                measured = "no size measured"
            fits = ""
            if s.surrogate_fit is not None and s.solver_fit is not None:
                fits = (f"; cost ~ N^{s.surrogate_fit.p:.2f} (surrogate) vs N^{s.solver_fit.p:.2f} (solver at equal "
                        "accuracy)")
            parts.append(f"{s.model} (stride {s.stride}): {measured}{fits}; {s.crossing.sentence()}.")
        return f"Crossover ({self.requirement}, {self.error_definition}): " + " ".join(parts)

    def plot(self, path) -> None:
        """``crossover.png``: seconds per rollout vs grid (log-log, both sides with their fits) and speedup vs grid
        with the line at 1."""
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for i, s in enumerate(self.series):
            color = f"C{i % 10}"
            rows = [r for r in self.rows if r.model == s.model and r.surrogate_seconds is not None]
            measured = [r for r in rows if r.status == "measured"]
            label = f"{'/'.join(Path(s.model).parts[-2:])} (stride {s.stride})"
            ax1.loglog([r.grid for r in rows], [r.surrogate_seconds for r in rows], "o", color=color,
                       label=f"surrogate {label}")
            ax1.loglog([r.grid for r in measured], [r.solver_seconds for r in measured], "s", mfc="none",
                       color=color, label=f"solver at equal accuracy ({label})")
            grids = np.array([r.grid for r in measured] or [r.grid for r in rows], dtype=np.float64)
            if grids.size:
                lo, hi = grids.min(), grids.max()
                if s.crossing.kind == "extrapolated":
                    lo, hi = min(lo, s.crossing.grid), max(hi, s.crossing.grid)
                g = np.geomspace(lo, hi, 50)
                for fit, style, who in ((s.surrogate_fit, "-", "surrogate"), (s.solver_fit, "--", "solver")):
                    if fit is not None:
                        ax1.loglog(g, fit(g ** self.ndim), style, color=color, lw=0.8,
                                   label=f"fit {who}: N^{fit.p:.2f}")
                if s.surrogate_fit is not None and s.solver_fit is not None:
                    ax2.loglog(g, s.solver_fit(g ** self.ndim) / s.surrogate_fit(g ** self.ndim), "--", color=color,
                               lw=0.8, label=f"fitted {label}")
            ax2.loglog([r.grid for r in measured], [r.speedup for r in measured], "o-", color=color,
                       label=f"measured {label}")
            if s.crossing.grid is not None:
                ax2.axvline(s.crossing.grid, color=color, ls=":", lw=0.8,
                            label=f"crossing ({s.crossing.kind}) ~{s.crossing.grid:.3g}")
        ax2.axhline(1.0, color="k", lw=1, label="speedup 1")
        ax1.set_xlabel("grid points per axis")
        ax1.set_ylabel("seconds per rollout")
        skipped = ", ".join(str(n) for n in self.skipped_sizes)
        ax1.set_title("cost (compilation excluded)" + (f"; no reference data at grid {skipped}" if skipped else ""),
                      fontsize=9)
        ax2.set_xlabel("grid points per axis")
        ax2.set_ylabel("speedup = solver / surrogate")
        ax2.set_title(f"speedup at equal accuracy ({self.requirement})", fontsize=9)
        for ax in (ax1, ax2):
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def crossover(spec: datasets.DatasetSpec, models: Sequence[CrossoverModel], *, shapes: Sequence[int],
              samples: int, cache, requirement: Requirement | None = None, config: AuditConfig | None = None,
              original: Path | None = None, repeats: int = 3, pde_classes: tuple = (),
              say: Callable[[str], None] = lambda m: None, quiet: bool = True) -> CrossoverResult:
    """Measure each model against the solver at equal accuracy across grid sizes; fit and find the crossing.

    Args:
        spec: the data config (PDE, parameters, tolerance, time axis, initial conditions, seed); its
            grid is replaced by each size.
        models: the surrogates (:class:`CrossoverModel`), e.g. one per stride.
        shapes: grid sizes ``n`` per axis (``n x n`` in 2-D).
        samples: reference samples per size.
        cache: folder holding the generated reference sets (reused by a rerun).
        requirement: the metric, quantile and horizon defining the errors (default: ``config``'s).
        config: the audit settings, its equal-accuracy settings in particular (default ``AuditConfig()``).
        original: the data's own ``test.h5``, reused at its size when made by the same config.
        repeats: timed runs of each rollout and solver setting (fastest kept, compilation excluded).
        pde_classes: PDE classes besides the built-ins the reference files may name.
        say: progress messages (write them with :func:`audit._progress.echo` to keep them above the bars).
        quiet: no progress bars (over the reference sizes, the (size, model) measurements and each
            equal-accuracy search); bars show only when stderr is a terminal.
    """
    config = config or AuditConfig()
    requirement = requirement or config.to_requirement()
    repeats = check_repeats(repeats)
    if not models:
        raise AuditError("crossover needs at least one model")
    shapes = CrossoverConfig(shapes=tuple(shapes), samples=samples).shapes
    refs = reference_sets(spec, shapes, samples, cache, original=original, say=say, quiet=quiet)
    rows, skipped = [], {}
    with bar(len(shapes) * len(models), "crossover", quiet, unit="model") as ticks:
        for n in shapes:
            if isinstance(refs[n], str):
                skipped[n] = refs[n]
                shape = (n,) * len(spec.shape)
                rows += [Row(grid=n, shape=shape, points=math.prod(shape), model=m.name, stride=m.stride,
                             status="skipped", reason=refs[n]) for m in models]
                ticks.update(len(models))
                continue
            for m in models:
                rows.append(measure(refs[n], m, requirement, config, repeats=repeats, pde_classes=pde_classes,
                                    say=say, quiet=quiet))
                ticks.update()
    ndim = len(spec.shape)
    series = []
    for m in models:
        mine = [r for r in rows if r.model == m.name and r.status == "measured"]
        sur = fit_power_law([r.points for r in mine], [r.surrogate_seconds for r in mine])
        sol = fit_power_law([r.points for r in mine], [r.solver_seconds for r in mine])
        series.append(Series(m.name, m.stride, sur, sol,
                             find_crossing([r.grid for r in mine], ndim, [r.speedup for r in mine], sur, sol)))
    first = next((ds for ds in refs.values() if not isinstance(ds, str)), None)
    definition = ("unknown (no reference data at any size)" if first is None else
                  _kinds.problem_audit(datasets.problem_of(first.attrs), first, None, pde_classes)
                  .error_definition(requirement))
    return CrossoverResult(tuple(rows), tuple(series), requirement, definition, ndim, skipped)
