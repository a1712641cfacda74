"""What a dataset is: the frozen ``[data]`` config and the PDE name -> class table.

Pure data, no TOML reading here (``experiments`` builds :class:`DatasetSpec`
with ``from_dict``). Every range check raises ``ValueError("field: ...")``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

PDEName = Literal["advection", "diffusion", "burgers", "kdv", "ks", "allen_cahn", "gray_scott", "navier_stokes"]
SPLITS = ("train", "val", "calibration", "test")

# name -> (solvers class name, physics parameter names it accepts, allowed grid dimensions)
PDES: dict[str, tuple[str, tuple[str, ...], tuple[int, ...]]] = {
    "advection": ("Advection", ("c",), (1, 2, 3)),
    "diffusion": ("Diffusion", ("nu",), (1, 2, 3)),
    "burgers": ("Burgers", ("nu",), (1, 2)),
    "kdv": ("KdV", (), (1,)),
    "ks": ("KuramotoSivashinsky", (), (1, 2)),
    "allen_cahn": ("AllenCahn", ("eps",), (1, 2, 3)),
    "gray_scott": ("GrayScott", ("f", "k", "du", "dv"), (1, 2, 3)),
    "navier_stokes": ("NavierStokes2D", ("nu", "drag"), (2,)),
}


def _fail(name: str, message: str, value) -> None:
    raise ValueError(f"{name}: {message}, got {value!r}")


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
        ``"default"``: the PDE's usual choice (``"fourier"`` for most; Gray-Scott
            gets ``u = 1 - v/2``, ``v`` a positive smooth bump field; Navier-Stokes
            a GRF with ``alpha = 2.5``, ``tau = 7``).
    """

    kind: Literal["fourier", "grf", "default"] = "default"
    cutoff: int = 4
    amplitude: float = 1.0
    offset: float = 0.0
    alpha: float = 2.0
    tau: float = 3.0

    def __post_init__(self):
        if self.cutoff < 1:
            _fail("cutoff", "must be >= 1 (highest mode number)", self.cutoff)
        if not (self.amplitude > 0 and math.isfinite(self.amplitude)):
            _fail("amplitude", "must be > 0 and finite", self.amplitude)
        if not math.isfinite(self.offset):
            _fail("offset", "must be finite", self.offset)
        if not self.alpha > 0:
            _fail("alpha", "must be > 0", self.alpha)
        if not self.tau >= 0:
            _fail("tau", "must be >= 0", self.tau)


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
            if n < 0:
                _fail(name, "must be >= 0", n)
        if sum(getattr(self, s) for s in SPLITS) == 0:
            _fail("train", "at least one split must have samples", dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A reference dataset: PDE, grid, time axis, tolerance, initial conditions, splits.

    Args:
        pde: the equation by name (see ``PDES``).
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
    """

    pde: PDEName
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

    def __post_init__(self):
        if self.pde not in PDES:
            _fail("pde", f"must be one of {', '.join(PDES)}", self.pde)
        shape = tuple(int(n) for n in self.shape)
        object.__setattr__(self, "shape", shape)
        _, allowed, dims = PDES[self.pde]
        if len(shape) not in dims or any(n < 4 for n in shape):
            _fail("shape", f"must be {' or '.join(map(str, dims))} sizes >= 4 for {self.pde}", self.shape)
        length = (2 * math.pi,) * len(shape) if self.length is None else tuple(float(x) for x in self.length)
        if len(length) != len(shape) or not all(x > 0 and math.isfinite(x) for x in length):
            _fail("length", f"must be {len(shape)} positive box lengths", self.length)
        object.__setattr__(self, "length", length)  # canonical: an omitted length equals an explicit 2 pi
        for name, value in self.params.items():
            if name not in allowed:
                _fail(f"params.{name}", f"unknown parameter for {self.pde} (allowed: {', '.join(allowed) or 'none'})",
                      value)
            if not math.isfinite(value):
                _fail(f"params.{name}", "must be finite", value)
        for name, rng in self.param_ranges.items():
            if name not in allowed:
                _fail(f"param_ranges.{name}",
                      f"unknown parameter for {self.pde} (allowed: {', '.join(allowed) or 'none'})", rng)
            if name in self.params:
                _fail(f"param_ranges.{name}", "is also fixed in params; give it in one place", rng)
            if len(rng) != 2 or not (math.isfinite(rng[0]) and math.isfinite(rng[1]) and rng[0] <= rng[1]):
                _fail(f"param_ranges.{name}", "must be [lo, hi] with lo <= hi, both finite", rng)
        if self.forcing != "none" and self.pde != "navier_stokes":
            _fail("forcing", "applies to navier_stokes only", self.forcing)
        if not (self.t_end > 0 and math.isfinite(self.t_end)):
            _fail("t_end", "must be > 0 and finite", self.t_end)
        if self.n_times < 2:
            _fail("n_times", "must be >= 2 (t = 0 and at least one later frame)", self.n_times)
        if not (self.rtol > 0 and math.isfinite(self.rtol)):
            _fail("rtol", "must be > 0", self.rtol)
        if not (self.atol > 0 and math.isfinite(self.atol)):
            _fail("atol", "must be > 0", self.atol)
        if self.seed < 0:
            _fail("seed", "must be >= 0", self.seed)
        if self.batch_size < 1:
            _fail("batch_size", "must be >= 1", self.batch_size)

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
        return d
