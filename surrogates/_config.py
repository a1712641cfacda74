"""Configuration of a surrogate model and of its training: frozen dataclasses, pure data.

``experiments`` builds them from the ``[model]`` and ``[train]`` tables of an
experiment TOML with ``experiments._toml.from_dict``; every value is checked in
``__post_init__`` (integers are integers, real numbers finite, both in range) with a
one-sentence ``ValueError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Literal


def _check(condition: bool, name: str, message: str, value) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}, got {value!r}")


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integers(name: str, values, minimum: int) -> None:
    """``values`` a non-empty tuple of integers ``>= minimum``."""
    _check(isinstance(values, tuple) and len(values) >= 1 and all(_integer(v) and v >= minimum for v in values),
           name, f"must be integers >= {minimum}", values)


def _count(name: str, value, minimum: int) -> None:
    """``value`` an integer ``>= minimum``."""
    _check(_integer(value), name, "must be an integer", value)
    _check(value >= minimum, name, f"must be >= {minimum}", value)


def _finite(name: str, value) -> None:
    """``value`` a finite real number (range checks follow it, so that they read ``must be > 0, got -1.0``)."""
    _check(isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value), name,
           "must be a finite number", value)


@dataclass(frozen=True)
class ModelConfig:
    """Which network, and its size.

    kind: ``"fno"`` (Fourier neural operator, Li et al. 2021, in the layout of
      neuraloperator >= 1.0), ``"unet"`` (a U-Net with GroupNorm, Gupta and
      Brandstetter 2022) or ``"resnet"`` (dilated ResNet, Stachenfeld et al. 2022).
    width: hidden channels (FNO, ResNet) or the U-Net's base channels. Good values 32-128.
    modes: FNO only; number of Fourier modes kept per spatial axis, counting negative
      frequencies (neuraloperator's convention: ``16`` keeps wavenumbers -8..7, i.e.
      9 coefficients of the real FFT along the last axis). One value applies to every axis.
    depth: FNO blocks, ResNet blocks, or U-Net convolutions per level.
    lifting_width / projection_width: hidden width of the FNO's two-layer lifting and
      projection MLPs (``None``: twice ``width``; ``0``: a single linear layer).
    channel_mlp_expansion: FNO only; hidden width of the per-block channel MLP as a
      fraction of ``width`` (``0`` disables it).
    padding: FNO only; grid points of zero padding added at the end of each spatial
      axis before the Fourier layers and removed after, for non-periodic data (``0``
      for periodic data).
    multipliers: U-Net channel multiplier per level (each level halves the grid).
    groups: GroupNorm groups (U-Net, ResNet).
    boundary: convolution padding of the U-Net and ResNet: ``"periodic"`` (circular)
      or ``"zero"``.
    kernel_size: convolution kernel size (U-Net, ResNet).
    dilations: the ResNet's dilation rates within one block.
    activation: the pointwise nonlinearity.
    coordinates: append the grid coordinates in [0, 1) as input channels.
    residual: predict the increment of the last input frame (next = last + network),
      in normalised units, instead of the next frame itself.
    stride: saved frames one surrogate step spans (a positive integer, default 1): the model is
      trained on frames ``k`` apart, steps ``k`` save intervals at a time and records its step
      (``stride`` and ``dt``, ``k`` times the data's save interval) in its metadata, so the audit
      and the hybrid compare and pair it over the same physical interval. A steady map takes 1 only.
    """

    kind: Literal["fno", "unet", "resnet"] = "fno"
    width: int = 64
    modes: tuple[int, ...] = (16,)
    depth: int = 4
    lifting_width: int | None = None
    projection_width: int | None = None
    channel_mlp_expansion: float = 0.5
    padding: int = 0
    multipliers: tuple[int, ...] = (1, 2, 4)
    groups: int = 8
    boundary: Literal["periodic", "zero"] = "periodic"
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)
    activation: Literal["gelu", "relu", "silu", "tanh"] = "gelu"
    coordinates: bool = False
    residual: bool = True
    stride: int = 1

    def __post_init__(self):
        check_stride(self.stride)
        _check(self.kind in ("fno", "unet", "resnet"), "kind", "must be 'fno', 'unet' or 'resnet'", self.kind)
        _count("width", self.width, 1)
        _integers("modes", self.modes, 1)
        _count("depth", self.depth, 1)
        for name in ("lifting_width", "projection_width"):
            if getattr(self, name) is not None:
                _count(name, getattr(self, name), 0)
        _finite("channel_mlp_expansion", self.channel_mlp_expansion)
        _check(self.channel_mlp_expansion >= 0, "channel_mlp_expansion", "must be >= 0",
               self.channel_mlp_expansion)
        _count("padding", self.padding, 0)
        _integers("multipliers", self.multipliers, 1)
        _count("groups", self.groups, 1)
        _check(_integer(self.kernel_size) and self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size",
               "must be odd and >= 1", self.kernel_size)
        _integers("dilations", self.dilations, 1)
        _check(self.boundary in ("periodic", "zero"), "boundary", "must be 'periodic' or 'zero'", self.boundary)
        _check(self.activation in ("gelu", "relu", "silu", "tanh"), "activation",
               "must be 'gelu', 'relu', 'silu' or 'tanh'", self.activation)
        if self.kind in ("unet", "resnet"):
            widths = [self.width * m for m in self.multipliers] if self.kind == "unet" else [self.width]
            _check(all(w % self.groups == 0 for w in widths), "groups",
                   f"must divide every channel width {widths}", self.groups)


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    steps: total optimiser steps (the learning-rate schedule spans them).
    batch_size: global batch (split over all devices; must be divisible by their number).
    lr: peak learning rate of AdamW, reached after ``warmup`` linear steps, then cosine
      decay to ``lr * final_lr_fraction`` at ``steps``.
    weight_decay: AdamW decoupled weight decay.  clip: global gradient-norm clip (0: off).
    loss: ``"mse"`` (mean squared error in normalised units) or ``"rel_l2"`` (per-sample
      relative L2 error, averaged over the batch).
    unroll: autoregressive steps in the loss (1: one-step training); needs the loader's
      ``target_steps >= unroll``.
    pushforward: stop the gradient through the model's own earlier predictions
      (Brandstetter et al. 2022): every step's loss still counts, but each prediction
      is differentiated only through its last model call.
    input_steps: frames stacked as the model's input.
    val_every / checkpoint_every: measure the validation loss / write a checkpoint every
      that many steps (0: never; the last step always writes one).
    seed: model initialisation and data order.
    dtype: compute and parameter dtype of the model.

    How a run is launched is not part of it: multi-host training runs in the
    ``jax.distributed`` layout its caller initialised (``byai train`` does that).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50
    final_lr_fraction: float = 0.0
    weight_decay: float = 1e-4
    clip: float = 1.0
    loss: Literal["mse", "rel_l2"] = "mse"
    unroll: int = 1
    pushforward: bool = False
    input_steps: int = 1
    val_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self):
        _count("steps", self.steps, 1)
        _count("batch_size", self.batch_size, 1)
        _finite("lr", self.lr)
        _check(self.lr > 0, "lr", "must be > 0", self.lr)
        _count("warmup", self.warmup, 0)
        _check(self.warmup <= self.steps, "warmup", f"must be in [0, steps={self.steps}]", self.warmup)
        _finite("final_lr_fraction", self.final_lr_fraction)
        _check(0 <= self.final_lr_fraction <= 1, "final_lr_fraction", "must be in [0, 1]",
               self.final_lr_fraction)
        _finite("weight_decay", self.weight_decay)
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _finite("clip", self.clip)
        _check(self.clip >= 0, "clip", "must be >= 0 (0: off)", self.clip)
        _check(self.loss in ("mse", "rel_l2"), "loss", "must be 'mse' or 'rel_l2'", self.loss)
        _count("unroll", self.unroll, 1)
        _count("input_steps", self.input_steps, 1)
        _count("val_every", self.val_every, 0)
        _count("checkpoint_every", self.checkpoint_every, 0)
        _count("seed", self.seed, 0)
        _check(self.dtype in ("float32", "bfloat16"), "dtype", "must be 'float32' or 'bfloat16'", self.dtype)


def check_stride(stride, name: str = "stride") -> int:
    """``stride`` when it is a positive integer (saved frames per surrogate step), else ``ValueError`` naming it."""
    _check(_integer(stride) and stride >= 1, name, "must be a positive integer (saved frames per surrogate step)",
           stride)
    return int(stride)


def check_grid(config: ModelConfig, space: tuple[int, ...]) -> None:
    """Refuse a model that data on a grid of shape ``space`` cannot feed (``solvers.InputError`` naming the key).

    The FNO keeps, along an axis of ``n`` points (``n + padding`` once padded), the wavenumbers
    ``-(modes//2) .. (modes - 1)//2`` (the last, real-FFT axis ``0 .. modes//2``): ``modes = n`` keeps
    every one the grid resolves, and a larger value only allocates weights for wavenumbers that do not
    exist (``modes = 1000`` on 64 points builds a model 50 times larger that computes the same thing).
    The U-Net halves the grid ``len(multipliers) - 1`` times, so each axis needs a multiple of
    ``2**(len(multipliers) - 1)`` points.
    """
    from solvers import InputError

    space = tuple(int(n) for n in space)
    if len(space) not in (1, 2):
        raise InputError(f"the surrogates take 1D or 2D data, got a grid of shape {space}")
    if config.kind == "fno":
        modes = config.modes * len(space) if len(config.modes) == 1 else config.modes
        if len(modes) != len(space):
            raise InputError(f"model.modes: needs 1 or {len(space)} values for {len(space)}D data, "
                             f"got {list(config.modes)}")
        for n, m in zip(space, modes):
            size = n + config.padding
            if m > size:
                padded = f" ({n} + padding {config.padding})" if config.padding else ""
                raise InputError(f"model.modes: {m} Fourier modes on an axis of {size} points{padded}, which "
                                 f"resolves at most {size} (wavenumbers {-(size // 2)}..{(size - 1) // 2}); "
                                 f"use modes <= {size}")
    elif config.kind == "unet":
        levels, factor = len(config.multipliers), 2 ** (len(config.multipliers) - 1)
        if any(n % factor for n in space):
            most = 1 + min((n & -n).bit_length() - 1 for n in space)  # 1 + times every axis halves evenly
            raise InputError(f"model.multipliers: {levels} levels halve the grid {levels - 1} times, so each axis "
                             f"needs a multiple of {factor} points, but the grid is {space}; use at most {most} "
                             f"level{'s' if most > 1 else ''}")


def to_dict(config) -> dict:
    """A config as a JSON-able dict (tuples become lists), for checkpoint metadata.

    A model config's ``stride`` is left out when it is 1 (the default), so that a stride-1 model's
    metadata is what it was before strides existed (and resumes its older checkpoints); the model's
    stride is also recorded at the top level of its metadata (``stride``, ``dt``).
    """
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    if isinstance(config, ModelConfig) and config.stride == 1:
        d.pop("stride")
    return d
