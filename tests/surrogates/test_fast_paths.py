"""The faster formulations inside the FNO equal the textbook ones: the exact GELU and its derivative,
dense layers with a one-wide side, and the truncated DFT of a 1D and 2D spectral convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from surrogates._kernels import dense, gelu
from surrogates._models import SpectralConv
from surrogates._train import jit_init

O0 = {"xla_backend_optimization_level": 0}


def apply(fn, *args):
    return jax.jit(fn).lower(*args).compile(compiler_options=O0)(*args)


def test_gelu_and_its_derivative_equal_the_erfc_form_to_rounding():
    x = jnp.linspace(-12.0, 12.0, 24001, dtype=jnp.float32)
    want = jax.nn.gelu(x, approximate=False)
    got = apply(gelu, x)
    assert got.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(got - want))) <= 2 * float(jnp.finfo(jnp.float32).eps) * 12
    dwant = apply(jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False))), x)
    dgot = apply(jax.vmap(jax.grad(gelu)), x)
    assert float(jnp.max(jnp.abs(dgot - dwant))) < 1e-6
    # the written-out derivative is the derivative: central differences in float64
    x64 = np.linspace(-4, 4, 81)
    from scipy.special import erf
    f = lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2)))  # noqa: E731
    fd = (f(x64 + 1e-6) - f(x64 - 1e-6)) / 2e-6
    assert np.max(np.abs(np.asarray(apply(jax.vmap(jax.grad(gelu)), x64.astype(np.float32))) - fd)) < 1e-6


@pytest.mark.parametrize("n_in,n_out", [(1, 6), (6, 1), (5, 7)])
def test_dense_equals_nnx_linear(n_in, n_out):
    layer = nnx.Linear(n_in, n_out, rngs=nnx.Rngs(3))
    x = np.random.default_rng(0).standard_normal((4, 9, n_in)).astype(np.float32)
    graphdef, state = nnx.split(layer)
    got = apply(lambda st, v: dense(nnx.merge(graphdef, st), v), state, x)
    want = x.astype(np.float64) @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...])
    assert got.shape == (4, 9, n_out)
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-5 * np.max(np.abs(want))
    # and so are its gradients (checked against the plain matrix product)
    gx = apply(jax.grad(lambda st, v: jnp.sum(dense(nnx.merge(graphdef, st), v) ** 2), argnums=1), state, x)
    gw = 2 * (x.astype(np.float64) @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...]))
    assert np.max(np.abs(np.asarray(gx) - gw @ np.asarray(layer.kernel[...], np.float64).T)) < 1e-4
    gs = apply(jax.grad(lambda st, v: jnp.sum(dense(nnx.merge(graphdef, st), v) ** 2)), state, x)
    gk = x.reshape(-1, n_in).astype(np.float64).T @ gw.reshape(-1, n_out)
    assert np.max(np.abs(np.asarray(gs["kernel"][...]) - gk)) < 1e-4 * np.max(np.abs(gk))
    assert np.max(np.abs(np.asarray(gs["bias"][...]) - gw.reshape(-1, n_out).sum(0))) < 1e-4 * np.max(np.abs(gk))


@pytest.mark.parametrize("space,modes", [((64, 64), (12, 12)), ((20, 33), (7, 9)), ((100,), (16,))])
def test_dft_gradient_equals_fft_gradient(space, modes):
    conv = jit_init(lambda: SpectralConv(3, 4, modes, transform="fft", rngs=nnx.Rngs(1)))
    x = np.random.default_rng(2).standard_normal((2, *space, 3)).astype(np.float32)
    graphdef, state = nnx.split(conv)

    def grads(transform):
        def loss(st, v):
            m = nnx.merge(graphdef, st)
            m.transform = transform
            return jnp.sum(m(v) ** 2)
        return apply(jax.grad(loss, argnums=(0, 1)), state, x)

    (gs_fft, gx_fft), (gs_dft, gx_dft) = grads("fft"), grads("dft")
    assert np.max(np.abs(gx_fft - gx_dft)) < 1e-4 * np.max(np.abs(gx_fft))
    for a, b in zip(jax.tree.leaves(gs_fft), jax.tree.leaves(gs_dft)):
        assert np.max(np.abs(a - b)) < 1e-4 * np.max(np.abs(a))


def test_auto_transform_picks_the_dft_for_few_kept_modes_and_the_fft_otherwise():
    x = jnp.zeros((1, 64, 64, 2), jnp.float32)
    few = SpectralConv(2, 2, (12, 12), rngs=nnx.Rngs(0))
    many = SpectralConv(2, 2, (40, 40), rngs=nnx.Rngs(0))
    ops = lambda m: str(jax.make_jaxpr(lambda v: m(v))(x))  # noqa: E731
    assert "fft" not in ops(few)
    assert "fft" in ops(many)
