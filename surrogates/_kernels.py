"""Pointwise and linear kernels of the networks, written in the forms XLA CPU runs fastest.

Each function equals its textbook form to rounding (``tests/surrogates/test_fast_paths.py``
checks values and gradients): the exact GELU with its derivative written out, dense layers
whose one-wide side is a broadcast or matrix-vector product and whose general case runs behind an
optimisation barrier, and the spectral convolution's truncated Fourier transform either as
FFTs or as a discrete Fourier transform by batched matrix products over the channels-last
layout. Arrays are ``(batch, *space, channels)``. The dense layers and the DFT have their
gradients written out (``jax.custom_vjp``): they take reverse-mode derivatives only.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jax.custom_jvp
def gelu(x):
    """Exact GELU ``x Φ(x) = x (1 + erf(x/√2)) / 2`` (Hendrycks and Gimpel, 2016), as torch computes it.

    Equal to ``jax.nn.gelu(x, approximate=False)`` to rounding (that one goes through ``erfc``, whose
    XLA CPU kernel costs several times more); the derivative ``Φ(x) + x φ(x)`` is written out so
    the backward pass evaluates one ``erf`` and one ``exp`` per element.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(_SQRT_HALF, x.dtype)))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    cdf = 0.5 * (1.0 + jax.lax.erf(x * jnp.asarray(_SQRT_HALF, x.dtype)))
    pdf = jnp.asarray(_INV_SQRT_2PI, x.dtype) * jnp.exp(-0.5 * x * x)
    return x * cdf, (cdf + x * pdf) * dx


_ACTIVATIONS = {"gelu": gelu, "relu": nnx.relu, "silu": nnx.silu, "tanh": jnp.tanh}


def activation_fn(name: str):
    """The pointwise nonlinearity called ``name`` (``ModelConfig.activation``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation: must be one of {', '.join(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


def dense(layer: nnx.Linear, x):
    """``layer(x)`` (``x @ kernel + bias``) in the forms XLA CPU runs fastest.

    One input feature is an outer product and one output feature a matrix-vector product
    (:func:`_outer`, :func:`_inner`: as ``K=1``/``N=1`` GEMMs XLA CPU runs them several times
    slower), each with its gradient written out. The general case is :func:`_matmul`.
    """
    kernel = layer.kernel[...]
    bias = layer.bias[...] if layer.bias is not None else None
    x, kernel, bias = layer.promote_dtype((x, kernel, bias), dtype=layer.dtype)
    n_in, n_out = kernel.shape
    if n_in == 1:
        y = _outer(x, kernel[0])
    elif n_out == 1:
        y = _inner(x, kernel[:, 0])
    else:
        y = _matmul(x, kernel, layer.precision)
    return y if bias is None else y + bias


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(x, k, precision=None):
    """``x @ k`` over the last axis of ``x``, in the forms XLA CPU runs fastest.

    The product contracts with the transposed kernel, materialised behind an optimisation
    barrier: XLA CPU then runs the forward and the input gradient as YNNPACK GEMMs instead of
    Eigen products on transposed copies of the activations (measured: FNO train step ~15% less
    CPU time). The kernel gradient ``x^T g`` is one product contracting the positions, which
    XLA CPU runs as an Eigen product reading both operands in place; autodiff's form of it
    made XLA copy ``x`` transposed (8-16 MB per layer) for a YNNPACK GEMM. Measured, train step
    of ``byai bench`` alternating in one process: fno1d 1.09x, fno2d 1.03x samples/s.
    """
    return _matmul_fwd(x, k, precision)[0]


def _matmul_fwd(x, k, precision):
    kt = jax.lax.optimization_barrier(k.T)
    return jax.lax.dot_general(x, kt, (((x.ndim - 1,), (1,)), ((), ())), precision=precision), (x, k, kt)


def _matmul_bwd(precision, res, g):
    x, k, kt = res
    n_in, n_out = k.shape
    dx = jax.lax.dot_general(g, kt, (((g.ndim - 1,), (0,)), ((), ())), precision=precision)
    return dx, _positions_matmul(x.reshape(-1, n_in), g.reshape(-1, n_out), k, precision)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _positions_matmul(a, b, like, precision=None):
    """``a^T b`` contracting the positions (axis 0 of both), sharded like ``like`` (the batch in the positions
    may be sharded along ``'data'``; the result is a parameter's gradient)."""
    sharding = jax.typeof(like).sharding
    dims = (((0,), (0,)), ((), ()))
    if sharding.mesh.empty:
        return jax.lax.dot_general(a, b, dims, precision=precision)
    return jax.lax.dot_general(a, b, dims, precision=precision, out_sharding=sharding)


# The one-wide layers' gradients are written out because autodiff's form of them,
# ``sum(x * g)`` over every position, makes XLA CPU materialise the broadcast of the one-wide
# side to the full activation size (the lifting's input and the projection's kernel and output
# gradient, 3 arrays of 4-16 MB per FNO step) before reducing; written as matrix-vector
# products over the positions (and the projection's forward as one too) they read the
# activations once. Measured with the truncated-DFT change below (train step of ``byai bench``,
# one process, alternating rounds): 2D 1.15x samples/s and CPU time, 1D 1.03x samples/s, 1.08x
# CPU time; the products over the positions as the same (positions, n) matrix as the forward pass:
# fno2d 1.14x, fno1d 1.01x more (XLA had computed the projection's hidden activations twice, once per
# layout).
# These functions have no forward-mode derivative (``jax.custom_vjp``).
@jax.custom_vjp
def _outer(x, k):
    """``x * k``: ``x`` is ``(..., 1)``, ``k`` ``(n,)``."""
    return x * k


def _outer_fwd(x, k):
    return x * k, (x, k)


def _outer_bwd(res, g):
    x, k = res
    return jnp.sum(g * k, axis=-1, keepdims=True), _positions_matmul(g.reshape(-1, k.shape[0]), x.reshape(-1), k)


_outer.defvjp(_outer_fwd, _outer_bwd)


@jax.custom_vjp
def _inner(x, k):
    """``x @ k`` keeping a one-wide last axis: ``x`` is ``(..., n)``, ``k`` ``(n,)``."""
    return jax.lax.dot_general(x, k, (((x.ndim - 1,), (0,)), ((), ())))[..., None]


def _inner_fwd(x, k):
    return _inner(x, k), (x, k)


def _inner_bwd(res, g):
    x, k = res
    return g * k, _positions_matmul(x.reshape(-1, k.shape[0]), g.reshape(-1), k)


_inner.defvjp(_inner_fwd, _inner_bwd)


def kept_frequencies(n: int, modes: int, last: bool) -> np.ndarray:
    """Integer wavenumbers kept along one axis of length ``n`` (neuraloperator's convention).

    ``modes`` counts negative frequencies: the full-FFT axes keep ``-(modes//2) ..
    modes//2 + modes%2 - 1``; the real-FFT (last) axis keeps ``0 .. modes//2``.
    """
    if last:
        k = np.arange(min(modes // 2 + 1, n // 2 + 1))
    else:
        pos, neg = modes // 2 + modes % 2, modes // 2
        pos, neg = min(pos, (n + 1) // 2), min(neg, n // 2)
        k = np.concatenate([np.arange(pos), np.arange(-neg, 0)])
    return k


def prefer_dft(space: tuple[int, ...], modes: tuple[int, ...]) -> bool:
    """Whether :func:`spectral_dft` is the cheaper transform: at most a quarter of the wavenumbers
    along each axis are kept.

    Measured on a 2-core CPU (train step of ``byai bench``): the truncated DFT by batched matrix
    products costs 1/3 of the FFT path in 2D (64x64, 12x7 kept) and less in 1D (N=1024, 9 kept);
    its cost grows with the kept count, so it is used while that is small.
    """
    d = len(space)
    kept = [len(kept_frequencies(n, m, i == d - 1)) for i, (n, m) in enumerate(zip(space, modes))]
    return all(4 * k <= n for k, n in zip(kept, space))


def _mix_modes(xh, w):
    """Per-mode channel mixing ``y[b, k, o] = sum_i x[b, k, i] w[k, i, o]``: one fused complex contraction."""
    return jnp.einsum("b...i,...io->b...o", xh, w)


def spectral_fft(x, w, modes: tuple[int, ...], dtype):
    """``irfft(w(k) · rfft(x)(k))`` on the kept wavenumbers (:func:`kept_frequencies`) by real FFTs.

    ``x`` is ``(batch, *space, in)``, ``w`` the complex weights ``(*kept, in, out)`` of those
    wavenumbers; ``norm="forward"`` scaling (neuraloperator's). The kept blocks are cut out and
    put back by slices and padding, without gather or scatter.
    """
    space = x.shape[1:-1]
    d = len(space)
    axes = tuple(range(1, d + 1))
    xh = jnp.fft.rfftn(x, axes=axes, norm="forward")
    counts = []  # (positive, negative) wavenumbers kept per axis
    for i, (n, m) in enumerate(zip(space, modes)):
        k = kept_frequencies(n, m, i == d - 1)
        counts.append((int(np.sum(k >= 0)), int(np.sum(k < 0))))
    for axis, (pos, neg) in enumerate(counts):
        a = axis + 1
        n_a = xh.shape[a]
        parts = [jax.lax.slice_in_dim(xh, 0, pos, axis=a)]
        if neg:
            parts.append(jax.lax.slice_in_dim(xh, n_a - neg, n_a, axis=a))
        xh = jnp.concatenate(parts, axis=a) if len(parts) > 1 else parts[0]
    yk = _mix_modes(xh, w)
    full = list(space[:-1]) + [space[-1] // 2 + 1]
    for axis, (pos, neg) in enumerate(counts):
        a = axis + 1
        pad = [(0, 0)] * yk.ndim
        pad[a] = (0, full[axis] - pos - neg)
        head = jnp.pad(jax.lax.slice_in_dim(yk, 0, pos, axis=a), pad)
        yk = jnp.concatenate([head, jax.lax.slice_in_dim(yk, pos, pos + neg, axis=a)], axis=a) if neg else head
    return jnp.fft.irfftn(yk, s=space, axes=axes, norm="forward").astype(dtype)


def spectral_dft(x, w, modes: tuple[int, ...], dtype):
    """:func:`spectral_fft` computed as a truncated discrete Fourier transform by real matrix products.

    Equal to the FFT form to rounding and cheaper when few wavenumbers are kept
    (:func:`prefer_dft`). Complex coefficients are carried as real arrays, the real parts then
    the imaginary parts along the last spatial axis, so every product is one real GEMM per
    batch entry in the channels-last layout.
    """
    space = x.shape[1:-1]
    d = len(space)
    # last axis: real DFT (cos and -sin parts) as one real matrix product
    n = space[-1]
    k = kept_frequencies(n, modes[-1], True)
    nk = len(k)
    ang = 2 * np.pi * np.outer(np.arange(n), k) / n
    fwd = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1) / n  # (n, 2K)
    z = _along_last_space_axis(fwd.T, x)
    # other axes: complex DFT restricted to the kept wavenumbers
    for axis in range(d - 1):
        n_a = space[axis]
        k_a = kept_frequencies(n_a, modes[axis], False)
        f = np.exp(-2j * np.pi * np.outer(k_a, np.arange(n_a)) / n_a) / n_a  # (kept, n_a)
        z = _complex_along_axis(f, z, axis + 1, nk)
    yk = _mix_modes(jax.lax.complex(z[..., :nk, :], z[..., nk:, :]), w)
    y = jnp.concatenate([jnp.real(yk), jnp.imag(yk)], axis=-2)
    for axis in range(d - 1):
        n_a = space[axis]
        k_a = kept_frequencies(n_a, modes[axis], False)
        g = np.exp(2j * np.pi * np.outer(np.arange(n_a), k_a) / n_a)  # (n_a, kept)
        y = _complex_along_axis(g, y, axis + 1, nk)
    # inverse real DFT along the last axis: Re sum_k c_k Y_k e^{2 pi i k n / N}
    c = np.where((k == 0) | (2 * k == n), 1.0, 2.0)[:, None]
    inv = np.concatenate([c * np.cos(ang.T), -c * np.sin(ang.T)], axis=0)  # (2K, n)
    return _along_last_space_axis(inv.T, y).astype(dtype)


def _along_last_space_axis(m: np.ndarray, x):
    """``y[..., k, c] = sum_n m[k, n] x[..., n, c]``: a constant matrix applied along the last spatial axis.

    Written as a batched matrix product over the leading axes with ``m`` broadcast, so that
    with channels last each batch entry is one plain ``(k, n) @ (n, c)`` GEMM and neither the
    forward nor the backward pass transposes the activations (an einsum contracting the
    middle axis makes XLA CPU copy them to ``(n, b*c)`` and back). The gradient applies the
    transposed constant ``m.T`` the same way (``jax.custom_vjp``, so no forward-mode
    derivative): autodiff's transpose contracts ``m`` along its rows, which XLA CPU runs as
    single-threaded Eigen products (2D workload: ~30 ms of ~230 ms CPU time per train step).
    """
    m = np.asarray(m)
    sharding = jax.typeof(x).sharding  # the gradient keeps it (a batch sharded along 'data')

    @jax.custom_vjp
    def apply(v):
        return _batched_matmul(jnp.asarray(m, v.dtype), v)

    def apply_fwd(v):
        return apply(v), None

    def apply_bwd(_, g):
        dx = _batched_matmul(jnp.asarray(m.T, g.dtype), g)
        return (dx if sharding.mesh.empty else jax.sharding.reshard(dx, sharding),)

    apply.defvjp(apply_fwd, apply_bwd)
    return apply(x)


def _batched_matmul(m, x):
    """``m @ x[i]`` for every leading index ``i`` of ``x`` (``m`` broadcast to a batch)."""
    lead = x.shape[:-2]
    mb = jnp.broadcast_to(m, (*lead, *m.shape))
    batch = tuple(range(len(lead)))
    return jax.lax.dot_general(mb, x, (((len(lead) + 1,), (len(lead),)), (batch, batch)))


def _complex_along_axis(m: np.ndarray, z, axis: int, nk: int):
    """A complex matrix ``m`` (``(r, s)``) applied along ``axis`` of ``z``, complex numbers stored split.

    ``z`` is real, ``(b, ..., s, ..., 2K, c)`` with axis -2 holding the real parts then the
    imaginary parts of ``K = nk`` coefficients. One real batched matrix product with
    ``[Re m; Im m]`` (batch: the axes before ``axis``, no transposes) gives ``Re m · z`` and
    ``Im m · z``; their combinations are the real and imaginary parts of ``m · z``.
    """
    r, s = m.shape
    lead, rest = z.shape[:axis], z.shape[axis + 1:]
    a = _along_last_space_axis(np.concatenate([m.real, m.imag]),
                               z.reshape(int(np.prod(lead)), s, int(np.prod(rest))))
    a = a.reshape(*lead, 2 * r, *rest)
    p, q = jax.lax.slice_in_dim(a, 0, r, axis=axis), jax.lax.slice_in_dim(a, r, 2 * r, axis=axis)
    re = p[..., :nk, :] - q[..., nk:, :]
    im = p[..., nk:, :] + q[..., :nk, :]
    return jnp.concatenate([re, im], axis=-2)
