"""The semi-linear PDE contract ``u_t = L u + N(u)``, the solution container and errors."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from ._grid import Grid


def static_field(**kwargs):
    """A dataclass field that is pytree metadata (hashable, never traced)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree_dataclass(cls):
    """Freeze ``cls`` as a dataclass and register it as a pytree.

    Fields made with :func:`static_field` are metadata; all others are leaves,
    so physics parameters can be traced (``jax.vmap`` over viscosities works).
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    meta = [f.name for f in fields if f.metadata.get("static")]
    data = [f.name for f in fields if not f.metadata.get("static")]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def is_concrete(x) -> bool:
    """True when ``x`` holds a value that can be validated (not a tracer or a placeholder).

    ``jax.tree`` utilities and ``jit(...).lower`` rebuild PDEs with ``None``,
    ``ShapeDtypeStruct`` or ``ArgInfo`` leaves; those pass through unchecked.
    Anything else (numbers, arrays, but also a wrong type such as a string) is
    validated, so a bad value is still refused.
    """
    if x is None or isinstance(x, (jax.core.Tracer, jax.ShapeDtypeStruct)):
        return False
    if type(x).__name__ == "ArgInfo":  # jax.jit(...).lower's stand-in for an argument leaf
        return False
    if isinstance(x, (list, tuple)):
        return all(is_concrete(v) for v in x)
    return True


def check_positive(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` unless every entry of ``value`` is > 0 and finite."""
    if is_concrete(value):
        v = np.asarray(value)
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(f"{name} must be > 0 and finite, got {value}")


def check_finite(name: str, value) -> None:
    if is_concrete(value) and not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"{name} must be finite, got {value}")


class PDE(abc.ABC):
    """What byai needs to know of an equation, declared on its class (each with a default).

    The rest of byai (dataset configs, files, the audit) reads these instead of
    keeping its own table, so a new equation is one class in ``solvers``:

    - ``name``: what a config's ``pde = "..."`` and a data file's ``pde`` attribute call it
      (default: the class name);
    - ``dims``: the grid dimensions it accepts (default 1, 2 and 3);
    - ``channels`` and ``channel_names``: the state's trailing axis (default one channel ``"u"``);
    - :meth:`parameters`: its physics and their defaults, from its dataclass fields;
    - ``default_ic`` and :meth:`initial_state`: the initial condition ``datasets`` draws for
      ``ic.kind = "default"``.
    """

    grid: Grid
    name: ClassVar[str]
    dims: ClassVar[tuple[int, ...]] = (1, 2, 3)
    channels: ClassVar[int] = 1
    default_ic: ClassVar[dict[str, Any]] = {"kind": "fourier"}
    """The initial-condition fields (of ``datasets.ICSpec``) that ``ic.kind = "default"`` sets; the config's
    other fields are kept."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the state's channels: ``("u",)`` for one channel, else ``("u0", "u1", ...)``."""
        return ("u",) if self.channels == 1 else tuple(f"u{i}" for i in range(self.channels))

    @classmethod
    def parameters(cls) -> dict[str, float]:
        """The physics parameters a config may set or draw, with their defaults: the keyword fields whose
        default is a real number (the grid, static fields and non-numeric ones such as arrays are not)."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.name == "grid" or f.metadata.get("static") or not f.init:
                continue
            if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                out[f.name] = float(f.default)
        return out

    def initial_state(self, field):
        """The default initial state from a drawn random field ``(*grid.shape, channels)`` (the identity; a PDE
        whose states must, e.g., stay positive maps the field to such a state)."""
        return field

    def check_dims(self) -> None:
        """Raise ``ValueError`` unless the grid's dimension is one of ``dims``."""
        if self.grid.ndim not in self.dims:
            raise ValueError(f"grid for {type(self).__name__} must be {' or '.join(map(str, self.dims))}-D, "
                             f"got {self.grid.ndim}-D shape {self.grid.shape}")


class SemiLinearPDE(PDE):
    """A periodic PDE ``u_t = L u + N(u)`` with ``L`` diagonal in Fourier space.

    A concrete PDE is a :func:`pytree_dataclass` with ``grid`` as its first,
    static field (``grid: Grid = static_field()``), its physics as keyword-only
    leaves, and two methods: :meth:`linear` (the Fourier symbol of ``L``, one
    per channel) and :meth:`nonlinear` (``N`` applied to a state in Fourier
    space, dealiased). Integrators (``stepper``, ``solve``) only ever see these
    two; the catalogue entries of :class:`PDE` all have defaults.
    """

    @abc.abstractmethod
    def linear(self) -> Complex[Array, "*k c"]:
        """The symbol of ``L`` on ``grid.spectral_shape``, with a trailing channel axis."""

    @abc.abstractmethod
    def nonlinear(self, u_hat: Complex[Array, "*k c"]) -> Complex[Array, "*k c"]:
        """``N(u)`` in Fourier space, for ``u_hat = grid.fft(u)``."""

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (*self.grid.shape, self.channels)

    def with_grid(self, grid: Grid) -> "SemiLinearPDE":
        """The same PDE on another grid of the same box (arrays it holds are resampled)."""
        from ._grid import resample

        changes = {"grid": grid}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "grid" and hasattr(v, "shape") and tuple(v.shape[: self.grid.ndim]) == self.grid.shape:
                changes[f.name] = resample(v, self.grid, grid)
        return dataclasses.replace(self, **changes)

    def check_state(self, u, name: str = "u0") -> None:
        """Raise ``ValueError`` naming ``name`` unless ``u`` has shape ``(*grid.shape, channels)``."""
        if tuple(np.shape(u)) != self.state_shape:
            raise ValueError(
                f"{name} must have shape {self.state_shape} (*grid.shape, channels) for "
                f"{type(self).__name__}, got {tuple(np.shape(u))}")

    # Helpers for nonlinear terms ------------------------------------------------
    def dealias(self, u_hat):
        """Zero the modes outside the 2/3 rule (by selection: a product with the 0/1 mask would be a
        full complex multiplication)."""
        return jnp.where(self.grid.dealias_mask()[..., None], u_hat, 0)

    def to_physical(self, u_hat):
        """Dealias then transform to physical space."""
        return self.grid.ifft(self.dealias(u_hat))

    def to_fourier(self, n):
        """Transform a physical nonlinear term back and dealias it."""
        return self.dealias(self.grid.fft(n))


@dataclasses.dataclass(frozen=True)
class Solution:
    """What :func:`solve` returns: frames at the requested times and their error bounds.

    Attributes:
        u: ``(len(t), *grid.shape, C)`` float64 states at ``t``.
        t: ``(len(t),)`` the requested save times.
        error: ``(len(t),)`` upper bound of the RMS error of each frame
            (RMS over grid points and channels), time and space error together.
        rtol, atol: the tolerance that was met: ``error[i] <= rtol * RMS(u[i]) + atol``.
        grid: the grid the frames are given on (the requested one).
        solve_grid: the grid the PDE was actually solved on (finer after refinement).
        stats: accepted and rejected steps, nonlinear evaluations, wall time (s),
            and the separate time and space error parts.
    """

    u: Float[Array, "t *space c"]
    t: Float[Array, " t"]
    error: Float[Array, " t"]
    rtol: float
    atol: float
    grid: Grid
    solve_grid: Grid
    stats: dict[str, Any]

    @property
    def dtype(self):
        return self.u.dtype

    @property
    def tolerance(self):
        """Per-frame tolerance ``rtol * RMS(u) + atol`` that ``error`` stays under."""
        return self.rtol * rms(self.u, axes=tuple(range(1, self.u.ndim))) + self.atol


def rms(x, axes=None):
    """Root mean square over ``axes`` (all axes by default)."""
    return jnp.sqrt(jnp.mean(jnp.abs(x) ** 2, axis=axes))
