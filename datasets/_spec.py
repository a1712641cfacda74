"""What a dataset is: the frozen ``[data]`` config.

Pure data, no TOML reading here (``experiments`` builds :class:`DatasetSpec`
with ``from_dict``). Every range check raises ``solvers.InputError("field: ...")``
(a ``ValueError``): every number is checked finite and in range at construction,
so nothing infinite or out of range reaches generation. Whether a config fits
the machine (disk, memory) is checked by ``generate`` from the sizes given here
(:meth:`DatasetSpec.u_bytes`, :meth:`DatasetSpec.batch_bytes`).
The PDE's facts (name, dimensions, channels, parameters, default initial
condition) come from its ``solvers`` class; the problem kind it belongs to
(:mod:`datasets._problem`) says which fields apply.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Literal

from solvers import InputError

SPLITS = ("train", "val", "calibration", "test")
MAX_SAMPLES = 2**32  # a split's samples are numbered for jax.random.fold_in, which takes 32 bits
MAX_SEED = 2**63 - 1  # jax.random.key takes a signed 64-bit seed
MAX_TAU = 1e150  # tau^2 stays finite
MAX_EXPONENT = 700.0  # e^-700 ~ 1e-304: a spectral weight below it would underflow float64


def _fail(name: str, message: str, value) -> None:
    raise InputError(f"{name}: {message}, got {value!r}")


def _is_number(value) -> bool:
    """A finite real number (not a bool; an integer too large for a float is not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_integer(value) -> bool:
    """An integer, or a finite float with an integer value (not a bool)."""
    if isinstance(value, numbers.Integral):
        return not isinstance(value, bool)
    return _is_number(value) and float(value).is_integer()


def _check_weights(alpha: float, tau: float, exponent: float, formula: str) -> None:
    """Refuse an ``alpha`` (given ``tau``) for which the largest spectral weight underflows: every mode's weight
    0, a field of nothing (or a division by zero when it is scaled to its amplitude). ``exponent`` is minus the
    natural log of the smallest float64 that weight's use needs, ``formula`` that in words."""
    if exponent >= MAX_EXPONENT:
        _fail("alpha", f"must be small enough that the lowest mode's weight does not underflow to 0 "
                       f"({formula} < {MAX_EXPONENT:g} with tau = {tau:g})", alpha)


@dataclasses.dataclass(frozen=True)
class ICSpec:
    """The initial-condition distribution, per channel, scaled to RMS ``amplitude`` plus ``offset``.

    Kinds:
        ``"fourier"``: a random truncated Fourier series, every mode ``m`` with
            ``1 <= max_i |m_i| <= cutoff`` gets independent standard normal
            cosine and sine coefficients (band-limited, so the grid resolves it).
        ``"grf"``: a Gaussian random field with power spectrum
            ``(tau^2 + |m|^2)^(-alpha)`` (Matern-like, as in Li et al. 2021), truncated
            at ``max_i |m_i| <= cutoff`` and zero mean.
        ``"default"``: the PDE's own choice, declared by its class (``default_ic`` and
            ``initial_state``): ``"fourier"`` for most; Gray-Scott gets ``u = 1 - 2v``,
            ``v = 0.25 / (1 + exp(-4 (g - 1)))`` of a unit-RMS Fourier field ``g``;
            Navier-Stokes a GRF with ``alpha = 2.5``, ``tau = 7``).
    """

    kind: Literal["fourier", "grf", "default"] = "default"
    cutoff: int = 4
    amplitude: float = 1.0
    offset: float = 0.0
    alpha: float = 2.0
    tau: float = 3.0

    def __post_init__(self):
        if self.kind not in ("fourier", "grf", "default"):
            _fail("kind", "must be one of 'fourier', 'grf', 'default'", self.kind)
        if not (_is_integer(self.cutoff) and self.cutoff >= 1):
            _fail("cutoff", "must be >= 1 (highest mode number)", self.cutoff)
        if not (_is_number(self.amplitude) and self.amplitude > 0):
            _fail("amplitude", "must be > 0 and finite", self.amplitude)
        if not _is_number(self.offset):
            _fail("offset", "must be finite", self.offset)
        if not (_is_number(self.alpha) and self.alpha > 0):
            _fail("alpha", "must be > 0 and finite", self.alpha)
        if not (_is_number(self.tau) and 0 <= self.tau < MAX_TAU):
            _fail("tau", "must be >= 0 and finite (below 1e150)", self.tau)
        object.__setattr__(self, "cutoff", int(self.cutoff))
        if self.kind == "grf":  # the weight of |m| = 1, (tau^2 + 1)^(-alpha/2), is squared when scaled
            _check_weights(self.alpha, self.tau, self.alpha * math.log1p(self.tau * self.tau),
                           "alpha * ln(tau^2 + 1)")


@dataclasses.dataclass(frozen=True)
class CoefficientSpec:
    """The distribution of the Darcy coefficient ``a`` (a steady map's input), one field per sample.

    Kind ``"threshold_grf"`` (Li et al., "Fourier neural operator for parametric
    PDEs", ICLR 2021): ``a = high`` where a Gaussian random field ``g > 0`` and
    ``low`` elsewhere. ``g`` is zero-mean with covariance ``(-Lap + tau^2)^(-alpha)``
    under zero Neumann conditions on the unit square: a cosine series
    ``sum_k xi_k (pi^2 |k|^2 + tau^2)^(-alpha/2) cos(pi k1 x) cos(pi k2 y)``,
    ``xi_k`` standard normal, ``k = (0, 0)`` left out, every mode of the grid kept,
    evaluated at the cell centres (a type-II inverse DCT), as in the authors'
    ``GRF.m``. Li et al. use ``alpha = 2``, ``tau = 3``, ``low = 3``, ``high = 12``.
    The coefficient is piecewise constant on the cells (that is the field the
    solver's error bound is for).
    """

    kind: Literal["threshold_grf"] = "threshold_grf"
    alpha: float = 2.0
    tau: float = 3.0
    low: float = 3.0
    high: float = 12.0

    def __post_init__(self):
        if self.kind != "threshold_grf":
            _fail("kind", "must be 'threshold_grf'", self.kind)
        if not (_is_number(self.alpha) and self.alpha > 0):
            _fail("alpha", "must be > 0 and finite", self.alpha)
        if not (_is_number(self.tau) and 0 <= self.tau < MAX_TAU):
            _fail("tau", "must be >= 0 and finite (below 1e150)", self.tau)
        # the weight of |k| = 1, (pi^2 + tau^2)^(-alpha/2), is used as it is (only the field's sign matters)
        _check_weights(self.alpha, self.tau, self.alpha / 2 * math.log(math.pi**2 + self.tau * self.tau),
                       "alpha / 2 * ln(pi^2 + tau^2)")
        for name in ("low", "high"):
            v = getattr(self, name)
            if not (_is_number(v) and v > 0):
                _fail(name, "must be > 0 and finite (a permeability)", v)


@dataclasses.dataclass(frozen=True)
class SplitSizes:
    """Number of samples per split (each file ``<split>.h5``); 0 skips a split."""

    train: int = 64
    val: int = 8
    calibration: int = 16
    test: int = 16

    def __post_init__(self):
        for name in SPLITS:
            n = getattr(self, name)
            if not (_is_integer(n) and n >= 0):
                _fail(name, "must be an integer >= 0", n)
            if n > MAX_SAMPLES:
                _fail(name, f"must be at most 2^32 = {MAX_SAMPLES} (samples are numbered with 32 bits for their "
                            "seeds)", n)
            object.__setattr__(self, name, int(n))
        if sum(getattr(self, s) for s in SPLITS) == 0:
            _fail("train", "at least one split must have samples", dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A reference dataset: PDE, grid, time axis, tolerance, initial conditions, splits.

    Two problem kinds (:attr:`problem`, chosen by the PDE class). Time-dependent
    PDEs give trajectories ``(sample, time, *space, channel)`` from random initial
    conditions. ``pde = "darcy"`` gives a *steady map* ``a -> u`` (``-div(a grad u) = source`` on the
    unit square, ``u = 0`` on the boundary): each sample is a coefficient ``a``
    drawn from ``coefficient`` and its solution ``u`` (``solvers.Darcy.solve_steady``
    to ``rtol``/``atol``, cell-centred grid ``shape = (n, n)``); the time-axis
    fields (``t_end``, ``n_times``, ``method``, ``ic``, ``forcing``, ``params``,
    ``param_ranges``) do not apply and must be left out.

    Args:
        pde: the equation: a built-in name (``solvers.PDES``: ``burgers``, ``ks``, ...) or
            ``"package.module:ClassName"`` for a ``solvers.SemiLinearPDE`` of your own
            (the module is imported; its physics go in ``params``).
        params: fixed physics parameters, e.g. ``{"nu": 0.01}``; unnamed ones take
            the solver's defaults.
        param_ranges: parameters drawn per sample, uniformly in ``[lo, hi]``,
            e.g. ``{"nu": (0.01, 0.1)}``; stored per sample in ``/params``.
        forcing: Navier-Stokes only: ``"none"`` or ``"kolmogorov"``.
        shape, length: the periodic grid (points and box length per axis; length
            defaults to ``2 pi`` per axis).
        t_end: last saved time; frames are saved at ``linspace(0, t_end, n_times)``.
        n_times: saved frames including ``t = 0`` (>= 2).
        rtol, atol: the solver's tolerance per frame (``error <= rtol * RMS(u) + atol``).
        method: the ETD integrator of ``solvers.solve``.
        ic: the initial-condition distribution.
        splits: samples per split.
        seed: the base seed; split ``s`` uses ``fold_in(key(seed), index of s)``
            and sample ``i`` ``fold_in(split key, i)``, so a sample never depends on
            batching, devices or interruptions.
        batch_size: samples solved at once (over all local devices).
        dtype: stored dtype of ``u``; with ``"float32"`` the rounding error is added
            to ``error_estimate``.
        redraw_failed: redraw a sample whose solve fails (count in attrs) instead of stopping.
        coefficient: ``darcy`` only: the distribution of the coefficient ``a``.
        source: ``darcy`` only: the constant right-hand side ``f``.
    """

    pde: str
    shape: tuple[int, ...]
    length: tuple[float, ...] | None = None
    params: dict[str, float] = dataclasses.field(default_factory=dict)
    param_ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    forcing: Literal["none", "kolmogorov"] = "none"
    t_end: float = 1.0
    n_times: int = 11
    rtol: float = 1e-6
    atol: float = 1e-10
    method: Literal["etdrk4", "etdrk2", "etdrk1"] = "etdrk4"
    ic: ICSpec = ICSpec()
    splits: SplitSizes = SplitSizes()
    seed: int = 0
    batch_size: int = 8
    dtype: Literal["float64", "float32"] = "float64"
    redraw_failed: bool = False
    coefficient: CoefficientSpec = CoefficientSpec()
    source: float = 1.0

    def __post_init__(self):
        from ._pdes import pde_class
        from ._problem import problem_for

        cls = pde_class(self.pde)
        dims = " or ".join(map(str, cls.dims))
        if not (isinstance(self.shape, tuple | list) and all(_is_integer(n) for n in self.shape)):
            _fail("shape", f"must be {dims} sizes >= 4 for {self.pde}", self.shape)
        shape = tuple(int(n) for n in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) not in cls.dims or any(n < 4 for n in shape):
            _fail("shape", f"must be {dims} sizes >= 4 for {self.pde}", self.shape)
        kind = problem_for(cls)
        if self.length is not None and not (isinstance(self.length, tuple | list)
                                            and all(_is_number(x) for x in self.length)):
            _fail("length", f"must be {len(shape)} positive box lengths", self.length)
        length = kind.default_length(len(shape)) if self.length is None else tuple(float(x) for x in self.length)
        if len(length) != len(shape) or not all(x > 0 and math.isfinite(x) for x in length):
            _fail("length", f"must be {len(shape)} positive box lengths", self.length)
        object.__setattr__(self, "length", length)  # canonical: an omitted length equals an explicit default
        for name, value in self.params.items():
            if not _is_number(value):
                _fail(f"params.{name}", "must be finite", value)
        for name, rng in self.param_ranges.items():
            if name in self.params:
                _fail(f"param_ranges.{name}", "is also fixed in params; give it in one place", rng)
            if not (isinstance(rng, tuple | list) and len(rng) == 2 and _is_number(rng[0]) and _is_number(rng[1])
                    and rng[0] <= rng[1]):
                _fail(f"param_ranges.{name}", "must be [lo, hi] with lo <= hi, both finite", rng)
        if not (_is_number(self.t_end) and self.t_end > 0):
            _fail("t_end", "must be > 0 and finite", self.t_end)
        if not (_is_integer(self.n_times) and self.n_times >= 2):
            _fail("n_times", "must be >= 2 (t = 0 and at least one later frame)", self.n_times)
        if not (_is_number(self.rtol) and self.rtol > 0):
            _fail("rtol", "must be > 0", self.rtol)
        if not (_is_number(self.atol) and self.atol > 0):
            _fail("atol", "must be > 0", self.atol)
        if not (_is_integer(self.seed) and 0 <= self.seed <= MAX_SEED):
            _fail("seed", "must be >= 0 and < 2^63 (jax.random.key takes a signed 64-bit seed)", self.seed)
        if not (_is_integer(self.batch_size) and self.batch_size >= 1):
            _fail("batch_size", "must be >= 1", self.batch_size)
        for name in ("n_times", "seed", "batch_size"):  # canonical Python ints (the identity is JSON)
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.dtype not in ("float64", "float32"):
            _fail("dtype", "must be one of 'float64', 'float32'", self.dtype)
        if not _is_number(self.source):
            _fail("source", "must be finite", self.source)
        for name, cls_ in (("ic", ICSpec), ("splits", SplitSizes), ("coefficient", CoefficientSpec)):
            if not isinstance(getattr(self, name), cls_):
                _fail(name, f"must be a datasets.{cls_.__name__}", getattr(self, name))
        kind.check_spec(self)

    @property
    def pde_class(self):
        """The ``solvers`` class of :attr:`pde` (a config's user class is imported here)."""
        from ._pdes import pde_class

        return pde_class(self.pde)

    @property
    def pde_name(self) -> str:
        """The PDE's ``name`` as data files record it."""
        return self.pde_class.name

    @property
    def problem(self):
        """The problem kind (``datasets.Trajectory`` or ``datasets.SteadyMap``) of the PDE."""
        from ._problem import problem_for

        return problem_for(self.pde_class)

    @property
    def grid(self):
        """The ``solvers.Grid`` of ``shape`` and ``length``."""
        from ._pdes import make_grid

        return make_grid(self.shape, self.length)

    def check_file(self, path, attrs) -> None:
        """Refuse (``DatasetError``, one line naming ``path``) a data file whose recorded PDE is not this config's."""
        from ._errors import DatasetError

        recorded = attrs.get("pde", "unknown")
        recorded = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
        if recorded != self.pde_name:
            raise DatasetError(f"{path} holds data of pde {recorded!r}, but the config's [data] pde is {self.pde!r}; "
                               "give the --data folder generated from this config")

    def example_pde(self):
        """The PDE with the fixed ``params`` and each drawn parameter at the middle of its range (its channels
        and default initial condition do not depend on the draw)."""
        from ._pdes import build_pde

        physics = dict(self.params, **{k: 0.5 * (lo + hi) for k, (lo, hi) in self.param_ranges.items()})
        try:
            return build_pde(self.pde_class, self.grid, physics, self.forcing)
        except (TypeError, ValueError) as e:
            raise ValueError(f"params: {e}") from None

    @property
    def n_frames(self) -> int:
        """Frames per sample in ``/u``: ``n_times``, or 2 for a steady map (input ``a``, solution ``u``)."""
        return self.problem.n_frames(self)

    def sample_bytes(self, itemsize: int = 8) -> int:
        """Bytes of one sample's ``/u`` (``n_frames x grid points x channels``) at ``itemsize`` bytes a value."""
        return self.n_frames * math.prod(self.shape) * len(self.problem.channel_names(self)) * itemsize

    def u_bytes(self, split: str) -> int:
        """Bytes of ``split``'s ``/u`` at the stored dtype, uncompressed: what generation journals on disk."""
        itemsize = 8 if self.dtype == "float64" else 4
        return getattr(self.splits, split) * self.sample_bytes(itemsize)

    def batch_bytes(self) -> int:
        """Bytes of one generation batch of solved samples in float64 (``batch_size``, at most the largest split,
        x ``n_frames`` x grid points x channels x 8): the least memory generation needs."""
        largest = max(getattr(self.splits, s) for s in SPLITS)
        return min(self.batch_size, largest) * self.sample_bytes(8)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters drawn per sample, in a fixed (sorted) order."""
        return tuple(sorted(self.param_ranges))

    def identity(self, split: str) -> dict:
        """Everything that determines the bytes of ``split`` (not ``batch_size``): compared on resume."""
        d = dataclasses.asdict(self)
        d.pop("batch_size")
        d.pop("splits")
        d["split"] = split
        d["n_samples"] = getattr(self.splits, split)
        d["param_ranges"] = {k: list(v) for k, v in sorted(self.param_ranges.items())}
        d["params"] = dict(sorted(self.params.items()))
        d["shape"] = list(self.shape)
        d["length"] = list(self.length)
        return self.problem.identity(self, d)


# Fields of a trajectory dataset that a steady map does not have, and every field's default.
TIME_FIELDS = ("params", "param_ranges", "forcing", "t_end", "n_times", "method", "ic")
DEFAULTS = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
             for f in dataclasses.fields(DatasetSpec)
             if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
