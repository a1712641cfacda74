"""Classical, high-precision PDE solvers (JAX, float64).

Pseudo-spectral in space, exponential time differencing in time, adaptive
``solve`` with an error bound per saved frame; ``Darcy`` by finite volumes.
Importing this package enables JAX's float64 mode (``jax_enable_x64``), which
the solvers need; surrogates choose their own dtype explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._errors import ByaiError, InputError, ResolutionError, SolverDivergedError  # noqa: E402
from ._grid import Grid, resample  # noqa: E402
from ._pde import PDE, SemiLinearPDE, Solution, pytree_dataclass, rms, static_field  # noqa: E402
from ._equations import (  # noqa: E402
    Advection, AllenCahn, Burgers, Diffusion, GrayScott, KdV, KuramotoSivashinsky, NavierStokes2D)
from ._etdrk import METHODS, ETDStepper, rollout, stepper  # noqa: E402
from ._solve import solve, solve_batch, solve_batch_iter  # noqa: E402
from ._darcy import Darcy, solve_steady  # noqa: E402
from ._threads import default_workers, map_batch  # noqa: E402

# The built-in equations: the catalogue `datasets` and the configs read (adding a PDE adds it here).
PDES = (Advection, Diffusion, Burgers, KdV, KuramotoSivashinsky, AllenCahn, GrayScott, NavierStokes2D, Darcy)

__all__ = [
    "ByaiError", "InputError", "ResolutionError", "SolverDivergedError", "Grid", "resample", "PDE", "SemiLinearPDE",
    "pytree_dataclass", "static_field", "Solution", "rms", "PDES",
    "Advection", "AllenCahn", "Burgers", "Diffusion", "GrayScott", "KdV", "KuramotoSivashinsky", "NavierStokes2D",
    "Darcy", "METHODS", "ETDStepper", "stepper", "rollout", "solve", "solve_batch", "solve_batch_iter", "solve_steady",
    "map_batch", "default_workers",
]
