"""A PDE written outside byai, as a user writes one: only the public names of ``solvers``."""

import dataclasses

import jax.numpy as jnp

import solvers


@solvers.pytree_dataclass
class DampedBurgers(solvers.SemiLinearPDE):
    """``u_t + u u_x = nu u_xx - damping u`` (1-D), the least a user writes: no name, channels or initial condition."""

    grid: solvers.Grid = solvers.static_field()
    _: dataclasses.KW_ONLY
    nu: float = 0.1
    damping: float = 0.0

    def linear(self):
        return (self.nu * self.grid.laplacian_symbol() - self.damping)[..., None]

    def nonlinear(self, u_hat):
        (k,) = self.grid.derivative_wavenumbers()
        u = self.to_physical(u_hat)
        return self.to_fourier(-0.5 * self.grid.ifft(1j * k[..., None] * self.grid.fft(u**2)))


class NotAPDE:
    """Named in a config by mistake."""


def unused():
    return jnp.zeros(1)
