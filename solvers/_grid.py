"""The periodic grid and its Fourier helpers (channels-last states)."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jax import lax


@dataclasses.dataclass(frozen=True)
class Grid:
    """A periodic box ``[0, L_1) x ... x [0, L_d)`` sampled at ``x_j = j * L / N``.

    Hashable and static: it is never a pytree leaf. States on it are
    channels-last arrays of shape ``(*shape, C)``.

    Args:
        shape: points per axis, e.g. ``(256,)`` or ``(128, 128)``; each >= 4.
        length: box length per axis (same units as the PDE's coordinates),
            e.g. ``(2 * np.pi,)``. Defaults to ``2*pi`` on every axis.
    """

    shape: tuple[int, ...]
    length: tuple[float, ...] | None = None

    def __post_init__(self):
        shape = tuple(int(n) for n in np.atleast_1d(self.shape))
        if not 1 <= len(shape) <= 3 or any(n < 4 for n in shape):
            raise ValueError(f"shape must be 1 to 3 sizes, each >= 4, got {self.shape}")
        length = (2 * math.pi,) * len(shape) if self.length is None else tuple(
            float(x) for x in np.atleast_1d(self.length))
        if len(length) != len(shape) or not all(x > 0 and math.isfinite(x) for x in length):
            raise ValueError(f"length must be {len(shape)} positive numbers, got {self.length}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "length", length)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> tuple[int, ...]:
        """The spatial axes of a channels-last state."""
        return tuple(range(self.ndim))

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(l / n for l, n in zip(self.length, self.shape))

    @property
    def spectral_shape(self) -> tuple[int, ...]:
        """Shape of ``rfftn`` over the spatial axes (the last one halved)."""
        return (*self.shape[:-1], self.shape[-1] // 2 + 1)

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """1-D coordinate arrays ``x_j = j * L / N``, one per axis (float64)."""
        return tuple(np.arange(n) * (l / n) for n, l in zip(self.shape, self.length))

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinate arrays broadcast to ``shape`` (``indexing="ij"``)."""
        return tuple(np.meshgrid(*self.coordinates(), indexing="ij"))

    def _mode_numbers(self) -> list[np.ndarray]:
        """Integer mode numbers per axis, shaped to broadcast over ``spectral_shape``."""
        out = []
        for i, n in enumerate(self.shape):
            m = np.fft.rfftfreq(n, 1 / n) if i == self.ndim - 1 else np.fft.fftfreq(n, 1 / n)
            shape = [1] * self.ndim
            shape[i] = m.size
            out.append(m.reshape(shape))
        return out

    def wavenumbers(self) -> list[np.ndarray]:
        """Angular wavenumbers ``2 pi m / L`` per axis (Nyquist kept), broadcastable."""
        return [2 * np.pi * m / l for m, l in zip(self._mode_numbers(), self.length)]

    def derivative_wavenumbers(self) -> list[np.ndarray]:
        """Wavenumbers for odd derivatives: as ``wavenumbers`` with the Nyquist mode zeroed."""
        out = []
        for k, m, n in zip(self.wavenumbers(), self._mode_numbers(), self.shape):
            out.append(np.where(np.abs(m) == n / 2, 0.0, k) if n % 2 == 0 else k)
        return out

    def laplacian_symbol(self) -> np.ndarray:
        """``-|k|^2`` on ``spectral_shape``."""
        return -sum(k**2 for k in self.wavenumbers())

    def dealias_mask(self, fraction: float = 2 / 3) -> np.ndarray:
        """Boolean mask keeping modes with ``|m| < fraction * N / 2`` on every axis."""
        mask = np.ones(self.spectral_shape, dtype=bool)
        for m, n in zip(self._mode_numbers(), self.shape):
            mask = mask & (np.abs(m) < fraction * n / 2)
        return mask

    # Transforms of channels-last states.
    def fft(self, u):
        """``rfftn`` over the spatial axes of a ``(*shape, C)`` state."""
        return jnp.fft.rfftn(u, axes=self.axes)

    def ifft(self, u_hat):
        """Inverse of :meth:`fft`."""
        return jnp.fft.irfftn(u_hat, s=self.shape, axes=self.axes)

    def refined(self, factor: int = 2) -> "Grid":
        """The same box with ``factor`` times more points per axis."""
        return Grid(tuple(n * factor for n in self.shape), self.length)


def real_mul(c, v):
    """``c * v`` for a real ``c`` and a complex ``v``, as two real products.

    XLA multiplies complex arrays in full (four real products) even when one
    factor is real; this halves the work of the spectral multipliers.
    """
    re, im = jnp.real(v), jnp.imag(v)
    return lax.complex(c * re, c * im)


def imag_mul(k, v):
    """``(i k) * v`` for a real ``k`` (a derivative symbol) and a complex ``v``, as two real products."""
    re, im = jnp.real(v), jnp.imag(v)
    return lax.complex(-k * im, k * re)


def resample(u, source: Grid, target: Grid):
    """Trigonometric interpolation of a ``(*source.shape, C)`` state onto ``target``.

    Exact for band-limited states; the modes a coarser target cannot hold are
    dropped (and the Nyquist mode of an even target is halved to stay real).
    """
    if source.length != target.length:
        raise ValueError(f"cannot resample between boxes {source.length} and {target.length}")
    if source.shape == target.shape:
        return u
    u_hat = jnp.fft.fftn(u, axes=source.axes)
    for ax, (ns, nt) in enumerate(zip(source.shape, target.shape)):
        u_hat = _resize_axis(u_hat, ax, ns, nt)
    scale = math.prod(target.shape) / math.prod(source.shape)
    return jnp.real(jnp.fft.ifftn(u_hat, axes=target.axes)) * scale


def _resize_axis(u_hat, axis, ns, nt):
    if ns == nt:
        return u_hat
    n = min(ns, nt)
    half = (n - 1) // 2  # modes 0..half and -half..-1 are always kept
    pos = jnp.take(u_hat, jnp.arange(0, half + 1), axis=axis)
    neg = jnp.take(u_hat, jnp.arange(ns - half, ns), axis=axis)
    pieces = [pos]
    if n % 2 == 0:  # the Nyquist mode of the smaller grid
        nyq = jnp.take(u_hat, jnp.array([n // 2]), axis=axis)
        if nt > ns:  # split the source Nyquist between +N/2 and -N/2
            pieces += [nyq / 2, _zeros_like_axis(u_hat, axis, nt - ns - 1), nyq / 2]
        else:  # fold +N/2 and -N/2 of the source into the target Nyquist
            other = jnp.take(u_hat, jnp.array([ns - n // 2]), axis=axis)
            pieces += [nyq + other]
    else:
        pieces += [_zeros_like_axis(u_hat, axis, nt - n)] if nt > ns else []
    pieces.append(neg)
    return jnp.concatenate(pieces, axis=axis)


def _zeros_like_axis(u_hat, axis, size):
    shape = list(u_hat.shape)
    shape[axis] = size
    return jnp.zeros(shape, u_hat.dtype)
