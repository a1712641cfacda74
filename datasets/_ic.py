"""Seeded draws of initial conditions and physics parameters, one sample at a time.

A sample's randomness comes only from ``(seed, split, index, attempt)`` through
``jax.random.fold_in``, never from the batch layout, so a sample is the same
whatever the batch size, device count or interruptions.
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from ._spec import SPLITS, CoefficientSpec, DatasetSpec, ICSpec


def sample_key(seed: int, split: str, index: int, attempt: int = 0):
    """The key of sample ``index`` of ``split`` (attempt > 0 for redraws after a failed solve)."""
    return _sample_key(seed, SPLITS.index(split), index, attempt)


@jax.jit
def _sample_key(seed, split_index, index, attempt):
    # one compiled program instead of four dispatches of integer (threefry) arithmetic, the same bits. A draw
    # on a 1-D grid of 256 points took 1 ms, 0.6 of it here, against about 5 ms per sample of batched solving;
    # 0.44 ms with this and the cached modes (measured)
    key = jax.random.fold_in(jax.random.key(seed), split_index)
    return jax.random.fold_in(jax.random.fold_in(key, index), attempt)


@functools.partial(jax.jit, static_argnums=(1, 2))
def normals(key, shape, channels):
    # Unbatched: one sample per call keeps the bits independent of any batching.
    return jax.random.normal(jax.random.fold_in(key, 0), (2, *shape, channels), dtype=jax.numpy.float64)


@functools.partial(jax.jit, static_argnums=(1,))
def uniforms(key, n):
    return jax.random.uniform(jax.random.fold_in(key, 1), (max(n, 1),), dtype=jax.numpy.float64)


@functools.cache
def _half_space_modes(shape, cutoff):
    """Integer modes ``m != 0`` with ``max |m_i| <= cutoff``, one of each ``+-m`` pair."""
    ranges = [np.arange(-cutoff, cutoff + 1)] * len(shape)
    modes = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, len(shape))
    first = np.array([m[np.nonzero(m)[0][0]] if np.any(m) else 0 for m in modes])
    modes = modes[first > 0]
    modes.setflags(write=False)  # cached: shared by every draw
    return modes


def random_field(normals: np.ndarray, shape, ic: ICSpec, kind=None) -> np.ndarray:
    """A real Gaussian field ``sum_m s_m (a_m cos(k_m.x) + b_m sin(k_m.x))`` per channel.

    ``a_m, b_m`` are read from ``normals`` (shape ``(2, *shape, C)``) at index
    ``m mod N``; ``s_m = 1`` (``kind`` "fourier") or ``(tau^2 + |m|^2)^(-alpha/2)``
    ("grf", with ``ic.alpha``, ``ic.tau``); modes with ``max |m_i| <= ic.cutoff``; ``kind``
    defaults to ``ic.kind``. Scaled so the expected mean
    square is ``ic.amplitude^2``; ``ic.offset`` is added. Float64 ``(*shape, C)``.
    """
    kind = kind or ic.kind
    alpha, tau = ic.alpha, ic.tau
    if 2 * ic.cutoff >= min(shape):
        raise ValueError(f"ic.cutoff: must be < N/2 = {min(shape) // 2} for grid {tuple(shape)}, got {ic.cutoff}")
    modes = _half_space_modes(tuple(shape), ic.cutoff)
    if kind == "grf":
        s = (tau**2 + np.sum(modes.astype(float) ** 2, axis=1)) ** (-alpha / 2)
    else:
        s = np.ones(len(modes))
    s = s * (ic.amplitude / math.sqrt(np.sum(s**2)))
    idx = tuple((modes % np.array(shape)).T)
    a = normals[0][idx]  # (M, C)
    b = normals[1][idx]
    channels = normals.shape[-1]
    spec = np.zeros((*shape, channels), dtype=np.complex128)
    total = math.prod(shape)
    coef = (a - 1j * b) * s[:, None] * (total / 2)
    spec[idx] = coef
    neg = tuple(((-modes) % np.array(shape)).T)
    spec[neg] = np.conj(coef)
    axes = tuple(range(len(shape)))
    u = np.real(np.fft.ifftn(spec, axes=axes))
    return u + ic.offset


def threshold_grf(normals: np.ndarray, coefficient: CoefficientSpec) -> np.ndarray:
    """The Li et al. (2021) coefficient ``a = high if g > 0 else low`` on ``(n, n)`` cells, float64 ``(n, n, 1)``.

    ``g = sum_k xi_k (pi^2 |k|^2 + tau^2)^(-alpha/2) cos(pi k1 x) cos(pi k2 y)``
    at the cell centres ``((i + 1/2)/n, (j + 1/2)/n)``, ``k`` over the grid's
    ``n x n`` cosine modes without ``k = (0, 0)``; ``xi = normals[0, ..., 0]``
    (see :class:`CoefficientSpec`). A type-II inverse DCT evaluates the series
    exactly at the cell centres; only the sign of ``g`` is used.
    """
    import scipy.fft

    n = normals.shape[1]
    k = np.arange(n)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    amp = (np.pi**2 * (k1**2 + k2**2) + coefficient.tau**2) ** (-coefficient.alpha / 2)
    amp[0, 0] = 0.0
    g = scipy.fft.idctn(amp * normals[0, ..., 0], type=2, norm="ortho")
    return np.where(g > 0, coefficient.high, coefficient.low)[..., None].astype(np.float64)


def draw_sample(spec: DatasetSpec, split: str, index: int, attempt: int = 0):
    """The input ``(*shape, C)`` float64 and drawn parameters ``(P,)`` of one sample: an initial condition,
    or for a steady map the coefficient ``a`` (see the problem kinds' ``draw``)."""
    return spec.problem.draw(spec, sample_key(spec.seed, split, index, attempt))
