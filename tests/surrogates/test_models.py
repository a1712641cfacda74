"""The networks: shapes in 1D and 2D, the spectral convolution against NumPy's FFT, parameter counts,
the stepper contract and config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from surrogates import FNO, ModelConfig, Surrogate, TrainConfig, as_stepper, count_params
from surrogates._models import SpectralConv
from surrogates._train import jit_init

# Every model is built and applied as one jitted program compiled without LLVM optimisation: eager
# op-by-op execution compiles dozens of tiny programs, which dominates these tests on a busy CPU.
O0 = {"xla_backend_optimization_level": 0}


def apply(fn, *args):
    """``fn(*args)`` jitted and compiled at optimisation level 0."""
    return jax.jit(fn).lower(*args).compile(compiler_options=O0)(*args)


def call(model, *args):
    graphdef, state = nnx.split(model)
    return apply(lambda st, *a: nnx.merge(graphdef, st)(*a), state, *args)


@pytest.mark.parametrize("kind", ["fno", "unet", "resnet"])
@pytest.mark.parametrize("space", [(32,), (16, 16)])
def test_shapes_and_dtype(kind, space):
    cfg = ModelConfig(kind=kind, width=8, modes=(6,), depth=1, groups=4, multipliers=(1, 2), dilations=(1, 2),
                      coordinates=True)
    model = jit_init(lambda: Surrogate(cfg, ndim=len(space), channels=2, input_steps=2, num_params=3,
                                       rngs=nnx.Rngs(0)))
    u = np.random.default_rng(0).standard_normal((5, *space, 4)).astype(np.float32)
    y = call(model, u, np.ones((5, 3), np.float32))
    assert y.shape == (5, *space, 2)
    assert y.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    with pytest.raises(ValueError, match="params"):
        jax.eval_shape(model, u)  # the physics parameters are required
    with pytest.raises(ValueError, match="channels"):
        jax.eval_shape(model, u[..., :3], np.ones((5, 3)))


def test_fno_padding_for_non_periodic_data():
    model = jit_init(lambda: Surrogate(ModelConfig(width=8, modes=(8,), depth=2, padding=6), ndim=1, channels=1,
                                       rngs=nnx.Rngs(0)))
    x = np.random.default_rng(0).standard_normal((2, 30, 1)).astype(np.float32)
    y = np.asarray(call(model, x))
    assert y.shape == (2, 30, 1) and np.all(np.isfinite(y))


def _project(x, modes):
    """NumPy reference: keep the wavenumbers of neuraloperator's convention, zero the rest."""
    d = x.ndim - 2
    axes = tuple(range(1, d + 1))
    xh = np.fft.rfftn(x, axes=axes)
    mask = np.zeros(xh.shape[1:-1], bool)
    idx = []
    for i, (n, m) in enumerate(zip(x.shape[1:-1], modes)):
        if i == d - 1:
            idx.append(np.arange(m // 2 + 1))
        else:
            idx.append(np.r_[np.arange(m // 2 + m % 2), np.arange(-(m // 2), 0)] % n)
    mask[np.ix_(*idx)] = True
    return np.fft.irfftn(xh * mask[None, ..., None], s=x.shape[1:-1], axes=axes)


@pytest.mark.parametrize("transform", ["fft", "dft"])
@pytest.mark.parametrize("space,modes", [((32,), (10,)), ((16, 12), (6, 8)), ((15, 9), (5, 5))])
def test_spectral_conv_is_a_projection_with_identity_weights(transform, space, modes):
    conv = nnx.eval_shape(lambda: SpectralConv(3, 3, modes, transform=transform, rngs=nnx.Rngs(0)))
    w = np.zeros(conv.weight.shape, np.float32)
    w[0] = np.eye(3, dtype=np.float32)  # real part: identity channel mixing on every mode
    conv.weight.set_value(jnp.asarray(w))
    conv.bias.set_value(jnp.zeros(3, jnp.float32))
    x = np.random.default_rng(0).standard_normal((2, *space, 3)).astype(np.float32)
    got = np.asarray(call(conv, x))
    want = _project(x.astype(np.float64), modes)
    assert np.max(np.abs(got - want)) < 1e-5 * np.max(np.abs(want))


@pytest.mark.parametrize("space,modes", [((64,), (16,)), ((16, 16), (6, 6))])
def test_fft_and_dft_transforms_agree_with_random_weights(space, modes):
    a = jit_init(lambda: SpectralConv(4, 5, modes, transform="fft", rngs=nnx.Rngs(1)))
    x = np.random.default_rng(2).standard_normal((3, *space, 4)).astype(np.float32)
    ya = np.asarray(call(a, x))
    a.transform = "dft"
    yb = np.asarray(call(a, x))
    assert np.max(np.abs(ya - yb)) < 1e-5 * np.max(np.abs(ya))


@pytest.mark.parametrize("dim,expected", [(1, 198081), (2, 357089)])
def test_fno_parameter_count_matches_neuraloperator(dim, expected):
    # neuraloperator 2.0's FNO for the benchmark workloads (torch.numel counts a complex weight once)
    modes, width = ((16,), 64) if dim == 1 else ((12, 12), 32)
    model = nnx.eval_shape(lambda: FNO(1, 1, modes=modes, width=width, depth=4, rngs=nnx.Rngs(0)))
    counts = count_params(model)
    assert counts["complex_as_one"] == expected
    assert counts["real"] > expected


class _Stats:
    mean = np.array([0.5, -1.0])
    std = np.array([2.0, 0.25])


def test_as_stepper_contract():
    model = jit_init(lambda: Surrogate(ModelConfig(width=8, modes=(8,), depth=1, residual=True), ndim=1,
                                       channels=2, rngs=nnx.Rngs(0)))
    step = as_stepper(model, _Stats())
    u = np.random.default_rng(0).standard_normal((32, 2))
    v = apply(step, u)
    assert v.shape == (32, 2) and v.dtype == jnp.float64
    vv = apply(jax.vmap(step), np.stack([u, 2 * u]))
    assert np.allclose(vv[0], v, rtol=1e-5, atol=1e-5)  # float32 model: batching changes rounding only
    # the stepper is the model in normalised units: denormalise(model(normalise(u)))
    x = ((u - _Stats.mean) / _Stats.std).astype(np.float32)[None]
    want = np.asarray(call(model, x))[0].astype(np.float64) * _Stats.std + _Stats.mean
    assert np.allclose(v, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(vv[1], v, rtol=1e-3)
    # a residual model whose network outputs zero is the identity map
    last = model.net.projection.layers[-1]
    last.kernel.set_value(jnp.zeros(last.kernel.shape, jnp.float32))
    last.bias.set_value(jnp.zeros(last.bias.shape, jnp.float32))
    assert np.allclose(apply(as_stepper(model, _Stats()), u), u, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="state"):
        jax.eval_shape(step, u[:, :1])


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match=r"lr: must be > 0, got -1"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="modes"):
        ModelConfig(modes=(0,))
    with pytest.raises(ValueError, match="groups"):
        ModelConfig(kind="unet", width=6, groups=4)
    from experiments._toml import ConfigError, from_dict

    with pytest.raises(ConfigError, match="train.unroll"):
        from_dict(TrainConfig, {"unroll": 0}, "train")
    with pytest.raises(ConfigError, match="model.depht"):
        from_dict(ModelConfig, {"depht": 2}, "model")
    assert from_dict(ModelConfig, {"modes": [4, 6]}, "model").modes == (4, 6)
