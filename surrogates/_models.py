"""Neural operators in flax.nnx, channels-last ``(batch, *space, channels)``, 1D and 2D.

* :class:`FNO`: Fourier neural operator (Li et al., ICLR 2021) in the layout of
  neuraloperator >= 1.0 (lifting MLP, blocks of spectral convolution + linear skip
  + channel MLP with soft-gating skip, projection MLP), so parameter counts match.
* :class:`UNet`: U-Net with GroupNorm and residual convolution blocks (Gupta and
  Brandstetter, "Towards multi-spatiotemporal-scale generalized PDE modeling", 2022).
* :class:`DilatedResNet`: dilated residual network (Stachenfeld et al., "Learned
  coarse models for efficient turbulence simulation", ICLR 2022).
* :class:`Surrogate`: wraps one of them with the byai input conventions (stacked input
  frames, physics parameters and grid coordinates as extra channels, residual update).

All parameters are created with an explicit ``param_dtype`` (jax runs with x64 on). The layers'
kernels (activations, dense products, the spectral transforms) live in ``_kernels``.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ._config import ModelConfig
from ._kernels import activation_fn, dense, kept_frequencies, prefer_dft, spectral_dft, spectral_fft


class SpectralConv(nnx.Module):
    """Fourier layer ``v -> irfft(W(k) · rfft(v)(k))`` on the kept wavenumbers, plus a bias.

    The transform is a real FFT (``transform="fft"``) or, cheaper when few modes are kept,
    the same truncated discrete Fourier transform written as batched matrix products over
    the channels-last layout (``transform="dft"``; ``"auto"`` picks it when at most a quarter
    of the wavenumbers along each axis are kept); both use neuraloperator's ``norm="forward"``
    scaling and agree to rounding (``spectral_fft`` and ``spectral_dft`` in ``_kernels``).
    The per-mode channel mixing is one fused complex contraction.
    Weights are stored as real pairs ``(2, *modes, in, out)``, each part drawn with
    standard deviation ``sqrt(1/(in+out))`` (a complex normal of variance ``2/(in+out)``).
    """

    def __init__(self, in_features: int, out_features: int, modes: tuple[int, ...], *,
                 transform: Literal["fft", "dft", "auto"] = "auto", dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.in_features, self.out_features = in_features, out_features
        self.modes = tuple(int(m) for m in modes)
        self.transform = transform
        self.dtype = dtype
        # shape of the kept block along each axis at full resolution (clipped at call time)
        kept = tuple(m // 2 + m % 2 + m // 2 for m in self.modes[:-1]) + (self.modes[-1] // 2 + 1,)
        std = (1.0 / (in_features + out_features)) ** 0.5
        self.weight = nnx.Param(std * jax.random.normal(rngs.params(), (2, *kept, in_features, out_features),
                                                        param_dtype))
        self.bias = nnx.Param(std * jax.random.normal(rngs.params(), (out_features,), param_dtype))

    def _weights(self, space: tuple[int, ...]):
        """Complex weights for the wavenumbers actually kept on a grid of shape ``space``."""
        w = self.weight[...]
        index = []
        for axis, (n, m) in enumerate(zip(space, self.modes)):
            last = axis == len(space) - 1
            k = kept_frequencies(n, m, last)
            if last:
                index.append(np.arange(len(k)))
            else:  # weight rows are ordered 0..pos-1, then -neg..-1 (as the FFT)
                full_pos, full_neg = m // 2 + m % 2, m // 2
                index.append(np.where(k >= 0, k, full_pos + full_neg + k))
        w = w[(slice(None),) + tuple(np.ix_(*index))] if len(index) > 1 else w[:, index[0]]
        w = w.astype(self.dtype)
        return jax.lax.complex(w[0], w[1])

    def __call__(self, x):
        space = x.shape[1:-1]
        d = len(space)
        if d != len(self.modes):
            raise ValueError(f"SpectralConv: built for {len(self.modes)}D input, got {d}D of shape {x.shape}")
        w = self._weights(space)
        transform = self.transform
        if transform == "auto":
            transform = "dft" if prefer_dft(space, self.modes) else "fft"
        spectral = spectral_fft if transform == "fft" else spectral_dft
        y = spectral(x.astype(self.dtype), w, self.modes, self.dtype)
        return y + self.bias[...].astype(self.dtype)


class ChannelMLP(nnx.Module):
    """Pointwise MLP over channels: ``Linear -> act -> ... -> Linear`` (``hidden=0``: one Linear)."""

    def __init__(self, in_features: int, out_features: int, hidden: int, *, activation="gelu",
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if hidden:
            self.layers = nnx.List([nnx.Linear(in_features, hidden, **kw), nnx.Linear(hidden, out_features, **kw)])
        else:
            self.layers = nnx.List([nnx.Linear(in_features, out_features, **kw)])
        self.act = activation_fn(activation)

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            if i:
                x = self.act(x)
            x = dense(layer, x)
        return x


class FNO(nnx.Module):
    """Fourier neural operator ``(batch, *space, in) -> (batch, *space, out)``, 1D or 2D.

    Per block (neuraloperator's post-activation block): ``h = act(K h + b + W h)``, then
    ``h = act(MLP(h) + g ⊙ h)`` (no activation after the last block), with ``K`` the
    spectral convolution, ``W`` a linear skip and ``g`` a soft gate. ``padding`` zero-pads
    the end of each spatial axis for non-periodic data.
    """

    def __init__(self, in_features: int, out_features: int, *, modes: tuple[int, ...], width: int = 64,
                 depth: int = 4, lifting_width: int | None = None, projection_width: int | None = None,
                 channel_mlp_expansion: float = 0.5, padding: int = 0, activation: str = "gelu",
                 transform: Literal["fft", "dft", "auto"] = "auto", dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.modes, self.padding, self.dtype = tuple(modes), int(padding), dtype
        lw = 2 * width if lifting_width is None else lifting_width
        pw = 2 * width if projection_width is None else projection_width
        self.lifting = ChannelMLP(in_features, width, lw, activation=activation, **kw)
        self.spectral = nnx.List([SpectralConv(width, width, self.modes, transform=transform, **kw)
                                  for _ in range(depth)])
        self.skips = nnx.List([nnx.Linear(width, width, use_bias=False, **kw) for _ in range(depth)])
        hidden = int(round(channel_mlp_expansion * width))
        self.mlps = nnx.List([ChannelMLP(width, width, hidden, activation=activation, **kw)
                              for _ in range(depth)]) if hidden else None
        self.gates = nnx.List([nnx.Param(jnp.ones((width,), param_dtype)) for _ in range(depth)]) if hidden else None
        self.projection = ChannelMLP(width, out_features, pw, activation=activation, **kw)
        self.act = activation_fn(activation)

    def __call__(self, x):
        space = x.shape[1:-1]
        if len(space) != len(self.modes):
            raise ValueError(f"FNO: built with {len(self.modes)} modes for {len(self.modes)}D data, "
                             f"got input of shape {x.shape}")
        h = self.lifting(x.astype(self.dtype))
        if self.padding:
            h = jnp.pad(h, [(0, 0)] + [(0, self.padding)] * len(space) + [(0, 0)])
        depth = len(self.spectral)
        for i in range(depth):
            h_in = h
            h = self.spectral[i](h_in) + dense(self.skips[i], h_in)
            if i < depth - 1:
                h = self.act(h)
            if self.mlps is not None:
                h = self.mlps[i](h) + self.gates[i][...].astype(self.dtype) * h_in
                if i < depth - 1:
                    h = self.act(h)
        if self.padding:
            h = h[(slice(None),) + tuple(slice(0, n) for n in space)]
        return self.projection(h)


def _conv(in_f, out_f, ndim, kernel, boundary, *, dilation=1, stride=1, rngs, dtype, param_dtype):
    return nnx.Conv(in_f, out_f, kernel_size=(kernel,) * ndim, strides=(stride,) * ndim,
                    kernel_dilation=(dilation,) * ndim, padding="CIRCULAR" if boundary == "periodic" else "SAME",
                    dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class _ResBlock(nnx.Module):
    """``h + conv(act(norm(conv(act(norm(h))))))`` with a 1x1 projection when widths differ."""

    def __init__(self, in_f, out_f, ndim, *, kernel, boundary, groups, activation, dilations=(1, 1), rngs,
                 dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        chans = [in_f] + [out_f] * len(dilations)
        self.norms = nnx.List([nnx.GroupNorm(c, num_groups=math.gcd(groups, c), **kw) for c in chans[:-1]])
        self.convs = nnx.List([_conv(chans[j], chans[j + 1], ndim, kernel, boundary, dilation=d, **kw)
                               for j, d in enumerate(dilations)])
        self.proj = nnx.Linear(in_f, out_f, **kw) if in_f != out_f else None
        self.act = activation_fn(activation)

    def __call__(self, x):
        h = x
        for norm, conv in zip(self.norms, self.convs):
            h = conv(self.act(norm(h)))
        return (self.proj(x) if self.proj is not None else x) + h


class UNet(nnx.Module):
    """U-Net ``(batch, *space, in) -> (batch, *space, out)``, 1D or 2D.

    Levels of ``depth`` residual blocks (GroupNorm, activation, convolution) at widths
    ``width * multipliers[l]``; each level halves the grid with a stride-2 convolution and
    the decoder doubles it back (nearest neighbour + convolution) with skip connections.
    The grid size must be divisible by ``2**(len(multipliers)-1)``.
    """

    def __init__(self, in_features: int, out_features: int, *, ndim: int, width: int = 32,
                 multipliers: tuple[int, ...] = (1, 2, 4), depth: int = 2, groups: int = 8,
                 boundary: str = "periodic", kernel_size: int = 3, activation: str = "gelu",
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        blk = dict(kernel=kernel_size, boundary=boundary, groups=groups, activation=activation)
        self.ndim, self.levels, self.dtype = ndim, len(multipliers), dtype
        widths = [width * m for m in multipliers]
        self.stem = _conv(in_features, widths[0], ndim, kernel_size, boundary, **kw)
        self.down = nnx.List()
        self.pool = nnx.List()
        for level, w in enumerate(widths):
            w_in = widths[max(level - 1, 0)]
            self.down.append(nnx.List([_ResBlock(w_in if j == 0 else w, w, ndim, **blk, **kw) for j in range(depth)]))
            if level < len(widths) - 1:
                self.pool.append(_conv(w, w, ndim, kernel_size, boundary, stride=2, **kw))
        self.up = nnx.List()
        self.upconv = nnx.List()
        for level in range(len(widths) - 2, -1, -1):
            w = widths[level]
            self.upconv.append(_conv(widths[level + 1], w, ndim, kernel_size, boundary, **kw))
            self.up.append(nnx.List([_ResBlock(2 * w if j == 0 else w, w, ndim, **blk, **kw) for j in range(depth)]))
        self.norm = nnx.GroupNorm(widths[0], num_groups=math.gcd(groups, widths[0]), **kw)
        self.head = nnx.Linear(widths[0], out_features, **kw)
        self.act = activation_fn(activation)

    def __call__(self, x):
        space = x.shape[1:-1]
        factor = 2 ** (self.levels - 1)
        if len(space) != self.ndim or any(n % factor for n in space):
            raise ValueError(f"UNet: expects {self.ndim}D input with sizes divisible by {factor}, "
                             f"got shape {x.shape}")
        h = self.stem(x.astype(self.dtype))
        skips = []
        for level, blocks in enumerate(self.down):
            for b in blocks:
                h = b(h)
            if level < self.levels - 1:
                skips.append(h)
                h = self.pool[level](h)
        for conv, blocks in zip(self.upconv, self.up):
            for axis in range(1, self.ndim + 1):
                h = jnp.repeat(h, 2, axis=axis)
            h = jnp.concatenate([conv(h), skips.pop()], axis=-1)
            for b in blocks:
                h = b(h)
        return self.head(self.act(self.norm(h)))


class DilatedResNet(nnx.Module):
    """Dilated ResNet ``(batch, *space, in) -> (batch, *space, out)``, 1D or 2D.

    Encoder convolution to ``width`` channels, ``depth`` residual blocks each a stack of
    convolutions with dilation rates ``dilations`` (GroupNorm and activation before each),
    and a 1x1 decoder, following Stachenfeld et al. (2022).
    """

    def __init__(self, in_features: int, out_features: int, *, ndim: int, width: int = 48, depth: int = 4,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1), groups: int = 8,
                 boundary: str = "periodic", kernel_size: int = 3, activation: str = "gelu",
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.ndim, self.dtype = ndim, dtype
        self.encoder = _conv(in_features, width, ndim, kernel_size, boundary, **kw)
        self.blocks = nnx.List([_ResBlock(width, width, ndim, kernel=kernel_size, boundary=boundary, groups=groups,
                                          activation=activation, dilations=tuple(dilations), **kw)
                                for _ in range(depth)])
        self.decoder = nnx.Linear(width, out_features, **kw)

    def __call__(self, x):
        if x.ndim - 2 != self.ndim:
            raise ValueError(f"DilatedResNet: expects {self.ndim}D input, got shape {x.shape}")
        h = self.encoder(x.astype(self.dtype))
        for b in self.blocks:
            h = b(h)
        return self.decoder(h)


class Surrogate(nnx.Module):
    """A network with byai's input conventions: ``(batch, *space, C*input_steps) -> (batch, *space, C)``.

    Inputs are normalised states, ``input_steps`` frames stacked along channels (oldest
    first). Physics parameters ``(batch, num_params)`` are broadcast as constant channels;
    with ``config.coordinates`` the grid coordinates ``x_j = j / n`` in [0, 1) are appended.
    With ``config.residual`` the output is the last input frame plus the network's output
    (the network predicts the increment).
    """

    def __init__(self, config: ModelConfig, *, ndim: int, channels: int, input_steps: int = 1,
                 num_params: int = 0, dtype=jnp.float32, rngs: nnx.Rngs):
        if ndim not in (1, 2):
            raise ValueError(f"ndim: must be 1 or 2, got {ndim}")
        if channels < 1 or input_steps < 1 or num_params < 0:
            raise ValueError(f"channels, input_steps must be >= 1 and num_params >= 0, got "
                             f"{channels}, {input_steps}, {num_params}")
        self.ndim, self.channels, self.input_steps, self.num_params = ndim, channels, input_steps, num_params
        self.coordinates, self.residual, self.dtype = config.coordinates, config.residual, dtype
        in_f = channels * input_steps + num_params + (ndim if config.coordinates else 0)
        kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
        if config.kind == "fno":
            modes = config.modes * ndim if len(config.modes) == 1 else config.modes
            if len(modes) != ndim:
                raise ValueError(f"modes: need 1 or {ndim} values for {ndim}D data, got {config.modes}")
            self.net = FNO(in_f, channels, modes=modes, width=config.width, depth=config.depth,
                           lifting_width=config.lifting_width, projection_width=config.projection_width,
                           channel_mlp_expansion=config.channel_mlp_expansion, padding=config.padding,
                           activation=config.activation, **kw)
        elif config.kind == "unet":
            self.net = UNet(in_f, channels, ndim=ndim, width=config.width, multipliers=config.multipliers,
                            depth=config.depth, groups=config.groups, boundary=config.boundary,
                            kernel_size=config.kernel_size, activation=config.activation, **kw)
        elif config.kind == "resnet":
            self.net = DilatedResNet(in_f, channels, ndim=ndim, width=config.width, depth=config.depth,
                                     dilations=config.dilations, groups=config.groups, boundary=config.boundary,
                                     kernel_size=config.kernel_size, activation=config.activation, **kw)
        else:
            raise ValueError(f"kind: must be 'fno', 'unet' or 'resnet', got {config.kind!r}")

    def __call__(self, u, params=None):
        b, *space, c = u.shape
        if len(space) != self.ndim or c != self.channels * self.input_steps:
            raise ValueError(f"Surrogate: expects (batch, {self.ndim} spatial axes, "
                             f"{self.channels * self.input_steps} channels), got shape {u.shape}")
        u = u.astype(self.dtype)
        parts = [u]
        if self.num_params:
            if params is None or params.shape != (b, self.num_params):
                raise ValueError(f"Surrogate: expects params of shape ({b}, {self.num_params}), got "
                                 f"{None if params is None else params.shape}")
            parts.append(jnp.broadcast_to(params.astype(self.dtype)[:, *([None] * len(space)), :],
                                          (b, *space, self.num_params)))
        if self.coordinates:
            grids = jnp.meshgrid(*[jnp.arange(n, dtype=self.dtype) / n for n in space], indexing="ij")
            parts.append(jnp.broadcast_to(jnp.stack(grids, -1)[None], (b, *space, len(space))))
        x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else u
        out = self.net(x).astype(self.dtype)
        return u[..., -self.channels:] + out if self.residual else out


def count_params(model: nnx.Module) -> dict:
    """Trainable parameters: ``real`` scalars, and ``complex_as_one`` (a spectral weight's
    real/imaginary pair counted once, the convention of ``torch.numel`` on complex tensors).
    Works on abstract models (``nnx.eval_shape``) too."""
    real = spectral = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)):
        size = int(np.prod(leaf.shape))
        real += size
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        names = [n for n in names if n != "value"]
        if "spectral" in names and names[-1] == "weight":
            spectral += size // 2
    return {"real": real, "complex_as_one": real - spectral}
