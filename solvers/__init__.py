"""Classical, high-precision PDE solvers (JAX, float64).

Pseudo-spectral in space, exponential time differencing in time, adaptive
``solve`` with an error bound per saved frame; ``Darcy`` by finite volumes.
Importing this package enables JAX's float64 mode (``jax_enable_x64``), which
the solvers need; surrogates choose their own dtype explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._grid import Grid, resample  # noqa: E402
from ._pde import ResolutionError, SemiLinearPDE, Solution, SolverDivergedError, rms  # noqa: E402
from ._equations import (  # noqa: E402
    Advection, AllenCahn, Burgers, Diffusion, GrayScott, KdV, KuramotoSivashinsky, NavierStokes2D)
from ._etdrk import ETDStepper, rollout, stepper  # noqa: E402
from ._solve import solve  # noqa: E402
from ._darcy import Darcy  # noqa: E402

__all__ = [
    "Grid", "resample", "SemiLinearPDE", "Solution", "ResolutionError", "SolverDivergedError", "rms",
    "Advection", "AllenCahn", "Burgers", "Diffusion", "GrayScott", "KdV", "KuramotoSivashinsky",
    "NavierStokes2D", "ETDStepper", "stepper", "rollout", "solve", "Darcy",
]
