"""The periodic semi-linear PDEs, each as ``u_t = L u + N(u)``.

Each class holds its grid (static) and its physics (keyword-only, validated,
traceable leaves), and supplies the Fourier symbol of ``L`` per channel and the
dealiased nonlinear term ``N``. Time integration lives elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from ._grid import Grid, imag_mul, real_mul
from ._pde import SemiLinearPDE, check_finite, check_positive, is_concrete, pytree_dataclass, static_field


def _ik(grid: Grid):
    """``i k`` per axis (Nyquist zeroed), with a trailing channel axis."""
    return [1j * k[..., None] for k in grid.derivative_wavenumbers()]


# The nonlinear terms below multiply by real or purely imaginary symbols with `real_mul` /
# `imag_mul` (two real products, where XLA would do a full complex product), fold the 2/3 mask
# into those symbols (numpy constants); `to_physical` / `to_fourier` dealias by selection.
def _k(grid: Grid):
    """Derivative wavenumbers ``k`` per axis (Nyquist zeroed), with a trailing channel axis."""
    return [k[..., None] for k in grid.derivative_wavenumbers()]


def _mask(grid: Grid):
    """The 2/3 dealiasing mask with a trailing channel axis (float64 0/1)."""
    return grid.dealias_mask()[..., None].astype(np.float64)


@pytree_dataclass
class Advection(SemiLinearPDE):
    """Linear advection ``u_t + c . grad u = 0`` (exact in time: ``L = -i c.k``, ``N = 0``).

    Args:
        grid: any dimension.
        c: velocity, a number (same on every axis) or one per axis. Good values: O(1).
    """

    name: ClassVar[str] = "advection"

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    c: float | tuple = 1.0

    def __post_init__(self):
        check_finite("c", self.c)
        if np.ndim(self.c) not in (0, 1) or (np.ndim(self.c) == 1 and np.size(self.c) != self.grid.ndim):
            raise ValueError(f"c must be a number or {self.grid.ndim} numbers, got {self.c}")

    def linear(self):
        c = jnp.broadcast_to(jnp.asarray(self.c, dtype=jnp.float64), (self.grid.ndim,))
        return -sum(c[i] * ik for i, ik in enumerate(_ik(self.grid)))

    def nonlinear(self, u_hat):
        return jnp.zeros_like(u_hat)


@pytree_dataclass
class Diffusion(SemiLinearPDE):
    """The heat equation ``u_t = nu Lap(u)`` (exact in time).

    Args:
        grid: any dimension.
        nu: diffusivity > 0. Good values: 1e-3 .. 1 on a ``2 pi`` box.
    """

    name: ClassVar[str] = "diffusion"

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    nu: float = 0.01

    def __post_init__(self):
        check_positive("nu", self.nu)

    def linear(self):
        return self.nu * self.grid.laplacian_symbol()[..., None]

    def nonlinear(self, u_hat):
        return jnp.zeros_like(u_hat)


@pytree_dataclass
class Burgers(SemiLinearPDE):
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` (1-D), or ``u_t + (u.grad)u = nu Lap(u)`` (2-D, 2 channels).

    The 1-D nonlinearity is taken in conservative form ``-(u^2/2)_x``.

    Args:
        grid: 1-D or 2-D.
        nu: viscosity > 0. Good values: 0.01 .. 0.1 on a ``2 pi`` box with 128..512 points.
    """

    name: ClassVar[str] = "burgers"
    dims: ClassVar[tuple[int, ...]] = (1, 2)

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    nu: float = 0.01

    def __post_init__(self):
        self.check_dims()
        check_positive("nu", self.nu)

    @property
    def channels(self):
        return self.grid.ndim

    @property
    def channel_names(self):
        return ("u",) if self.grid.ndim == 1 else ("u", "v")

    def linear(self):
        return jnp.broadcast_to(self.nu * self.grid.laplacian_symbol()[..., None],
                                (*self.grid.spectral_shape, self.channels))

    def nonlinear(self, u_hat):
        g = self.grid
        k, m = _k(g), _mask(g)
        vel = self.to_physical(u_hat)
        if g.ndim == 1:  # -(u^2/2)_x
            return imag_mul(-0.5 * k[0] * m, g.fft(vel**2))
        # (u.grad) u, channel by channel: sum_j u_j d_j u_i
        grads = [g.ifft(imag_mul(kj * m, u_hat)) for kj in k]
        adv = sum(vel[..., j : j + 1] * grads[j] for j in range(2))
        return real_mul(-m, g.fft(adv))


@pytree_dataclass
class KdV(SemiLinearPDE):
    """Korteweg-de Vries ``u_t + 6 u u_x + u_xxx = 0`` (1-D).

    ``L = i k^3`` (dispersive, exact in time), ``N = -3 (u^2)_x``.
    A soliton ``u = c/2 sech^2(sqrt(c)/2 (x - c t - x0))`` travels at speed ``c``.
    """

    name: ClassVar[str] = "kdv"
    dims: ClassVar[tuple[int, ...]] = (1,)

    grid: Grid = static_field()

    def __post_init__(self):
        self.check_dims()

    def linear(self):
        (k,) = self.grid.derivative_wavenumbers()
        return (1j * k**3)[..., None]

    def nonlinear(self, u_hat):
        g = self.grid
        u = self.to_physical(u_hat)
        return imag_mul(-3.0 * _k(g)[0] * _mask(g), g.fft(u**2))


@pytree_dataclass
class KuramotoSivashinsky(SemiLinearPDE):
    """Kuramoto-Sivashinsky ``u_t + u u_x + u_xx + u_xxxx = 0`` (1-D).

    In 2-D the scalar form ``u_t + |grad u|^2 / 2 + Lap(u) + Lap^2(u) = 0`` is used.
    ``L = |k|^2 - |k|^4``. Chaotic for boxes longer than about ``2 pi sqrt(2)``;
    good values: ``L = 22 .. 100`` with about 4 points per unit length.
    """

    name: ClassVar[str] = "ks"
    dims: ClassVar[tuple[int, ...]] = (1, 2)

    grid: Grid = static_field()

    def __post_init__(self):
        self.check_dims()

    def linear(self):
        k2 = -self.grid.laplacian_symbol()
        return (k2 - k2**2)[..., None]

    def nonlinear(self, u_hat):
        g = self.grid
        k, m = _k(g), _mask(g)
        if g.ndim == 1:  # -(u^2/2)_x
            u = self.to_physical(u_hat)
            return imag_mul(-0.5 * k[0] * m, g.fft(u**2))
        grad2 = sum(g.ifft(imag_mul(kj * m, u_hat)) ** 2 for kj in k)
        return real_mul(-0.5 * m, g.fft(grad2))


@pytree_dataclass
class AllenCahn(SemiLinearPDE):
    """Allen-Cahn ``u_t = eps^2 Lap(u) + u - u^3``.

    ``L = -eps^2 |k|^2``, ``N = u - u^3``. Interfaces have width ~ ``eps``;
    good values: ``eps = 0.01 .. 0.1`` on a unit or ``2 pi`` box, a few
    points per ``eps``.
    """

    name: ClassVar[str] = "allen_cahn"

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    eps: float = 0.05

    def __post_init__(self):
        check_positive("eps", self.eps)

    def linear(self):
        return self.eps**2 * self.grid.laplacian_symbol()[..., None]

    def nonlinear(self, u_hat):
        u = self.to_physical(u_hat)
        return self.to_fourier(u - u**3)


@pytree_dataclass
class GrayScott(SemiLinearPDE):
    """Gray-Scott reaction-diffusion, channels ``(u, v)``:

    ``u_t = du Lap(u) - u v^2 + f (1 - u)``,  ``v_t = dv Lap(v) + u v^2 - (f + k) v``.

    The linear parts ``du Lap - f`` and ``dv Lap - (f + k)`` go into ``L``.
    Good values (Pearson, Science 261, 1993): ``du = 2e-5``, ``dv = 1e-5`` on a
    box of side 2.5 (256 points per side), ``f = 0.04``, ``k = 0.06``.
    """

    name: ClassVar[str] = "gray_scott"
    channels: ClassVar[int] = 2
    channel_names: ClassVar[tuple[str, ...]] = ("u", "v")
    # one smooth field g of RMS 1 (the config's cutoff), mapped by `initial_state`
    default_ic: ClassVar[dict] = {"kind": "fourier", "amplitude": 1.0, "offset": 0.0}

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    f: float = 0.04
    k: float = 0.06
    du: float = 2e-5
    dv: float = 1e-5

    def __post_init__(self):
        for name in ("f", "k", "du", "dv"):
            check_positive(name, getattr(self, name))

    def linear(self):
        lap = self.grid.laplacian_symbol()
        return jnp.stack([self.du * lap - self.f, self.dv * lap - (self.f + self.k)], axis=-1)

    def initial_state(self, field):
        """``v = 0.25 / (1 + exp(-4 (g - 1)))`` (positive, near 0 except where the field ``g`` (channel 0) is large),
        ``u = 1 - 2 v``: spots of ``v`` in a sea of ``u`` near 1."""
        g = field[..., :1]
        v = 0.25 / (1 + np.exp(-4 * (g - 1.0)))
        return np.concatenate([1 - 2 * v, v], axis=-1)

    def nonlinear(self, u_hat):
        w = self.to_physical(u_hat)
        u, v = w[..., 0], w[..., 1]
        uvv = u * v**2
        return self.to_fourier(jnp.stack([-uvv + self.f, uvv], axis=-1))


@pytree_dataclass
class NavierStokes2D(SemiLinearPDE):
    """Incompressible 2-D Navier-Stokes in vorticity form, one channel ``omega``:

    ``omega_t + (v . grad) omega = nu Lap(omega) - drag * omega + f``,
    with ``v = (psi_y, -psi_x)`` and ``Lap(psi) = -omega``.

    Args:
        grid: 2-D.
        nu: kinematic viscosity > 0. Good values: 1e-3 .. 1e-2 on a ``2 pi`` box.
        forcing: ``None``, ``"kolmogorov"`` (``f = -n cos(n y)`` with
            ``n = forcing_mode``, the Kolmogorov flow of Kochkov et al. 2021),
            or an array of shape ``grid.shape`` (or ``(*grid.shape, 1)``).
        forcing_mode: the wavenumber ``n`` of the Kolmogorov forcing (default 4).
        drag: linear drag coefficient >= 0 (0.1 in Kochkov et al.).
    """

    name: ClassVar[str] = "navier_stokes"
    dims: ClassVar[tuple[int, ...]] = (2,)
    channel_names: ClassVar[tuple[str, ...]] = ("omega",)
    default_ic: ClassVar[dict] = {"kind": "grf", "alpha": 2.5, "tau": 7.0}

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    nu: float = 1e-3
    forcing: object = None
    drag: float = 0.0
    forcing_mode: int = static_field(default=4)

    def __post_init__(self):
        self.check_dims()
        check_positive("nu", self.nu)
        check_finite("drag", self.drag)
        if isinstance(self.forcing, str):
            if self.forcing != "kolmogorov":
                raise ValueError(f"forcing must be None, 'kolmogorov' or an array, got {self.forcing!r}")
            _, y = self.grid.mesh()
            n = self.forcing_mode * 2 * np.pi / self.grid.length[1]
            object.__setattr__(self, "forcing", jnp.asarray(-n * np.cos(n * y))[..., None])
        elif self.forcing is not None and is_concrete(self.forcing):
            f = jnp.asarray(self.forcing, dtype=jnp.float64)
            shape = self.grid.shape  # leading axes are a batch (PDEs stacked into one pytree, one per sample)
            if f.shape[f.ndim - len(shape):] == shape:
                f = f[..., None]
            if f.ndim < len(shape) + 1 or f.shape[f.ndim - len(shape) - 1:] != (*shape, 1):
                raise ValueError(f"forcing must have shape {shape} or {(*shape, 1)} (after any batch axes), "
                                 f"got {np.shape(self.forcing)}")
            object.__setattr__(self, "forcing", f)

    def linear(self):
        return (self.nu * self.grid.laplacian_symbol() - self.drag)[..., None]

    def nonlinear(self, w_hat):
        # -(v.grad) omega = -[(d_xx - d_yy)(u v) + d_xy (v^2 - u^2)], the curl of div(v v) for a
        # divergence-free v: 2 inverse + 2 forward transforms instead of 4 + 1. With the 2/3 rule
        # both products are exact projections, so this equals the advective form to rounding.
        g = self.grid
        kx, ky = _k(g)
        k2 = -g.laplacian_symbol()[..., None]
        m = _mask(g)
        inv_k2 = np.where(k2 == 0, 0.0, 1.0 / np.where(k2 == 0, 1.0, k2))  # psi_hat = w_hat / |k|^2
        u = g.ifft(jnp.asarray(1j * ky * inv_k2 * m) * w_hat)  # psi_y, dealiased
        v = g.ifft(jnp.asarray(-1j * kx * inv_k2 * m) * w_hat)  # -psi_x
        n = (jnp.asarray(m * (kx**2 - ky**2)) * g.fft(u * v) + jnp.asarray(m * kx * ky) * g.fft(v * v - u * u))
        if self.forcing is not None:
            n = n + self.forcing_hat()
        return n

    def forcing_hat(self):
        """``grid.fft(forcing)``: a constant (numpy, computed at trace time) unless the forcing is traced."""
        if is_concrete(self.forcing):
            f = np.fft.rfftn(np.asarray(self.forcing, dtype=np.float64), axes=self.grid.axes)
            return jnp.asarray(f)
        return self.grid.fft(self.forcing)
