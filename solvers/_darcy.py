"""Steady Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary.

Cell-centred finite volumes, harmonic-mean face coefficients, Dirichlet
condition by ghost-cell reflection, a matrix-free operator in JAX (float64),
and preconditioned conjugate gradients to a stated relative residual. The
discretisation error is estimated by Richardson extrapolation over grids
``n``, ``2n`` and ``4n`` (the third grid measures the convergence order, so
the estimate stays an upper bound where interfaces lower the order).

References: R. J. LeVeque, *Finite Volume Methods for Hyperbolic Problems*
(2002), ch. 4 (cell-centred grids, ghost cells); Y. Saad, *Iterative Methods
for Sparse Linear Systems* (2003), alg. 9.1 (preconditioned CG).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ._grid import Grid
from ._errors import ResolutionError
from ._pde import PDE, Solution, is_concrete, pytree_dataclass, rms, static_field

_MAX_ORDER = 2.0  # the scheme's formal order; the estimate never assumes more
_MIN_ORDER = 0.5  # below this observed order the grids are not in the asymptotic range
_SAFETY = 1.25  # Roache's safety factor of the grid convergence index for three-grid studies


def cell_centres(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n, n)`` cell-centre coordinates ``((i + 1/2)/n, (j + 1/2)/n)`` (``indexing="ij"``)."""
    c = (np.arange(n) + 0.5) / n
    return tuple(np.meshgrid(c, c, indexing="ij"))


def _field(name: str, value, n: int, positive: bool):
    """A coefficient or source as an ``(n, n)`` float64 array (cell values).

    ``value`` is a number, an ``(n, n)`` or ``(n, n, 1)`` array, or a callable
    ``(x, y) -> array`` evaluated at the cell centres.
    """
    if callable(value):
        x, y = cell_centres(n)
        try:
            value = np.broadcast_to(np.asarray(value(x, y), dtype=np.float64), (n, n))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} as a callable must return an array broadcastable to {(n, n)} "
                             f"from cell-centre coordinates (x, y): {e}") from None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, array or callable, got {type(value).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real number, array or callable, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full((n, n), float(arr))
    if arr.shape == (n, n, 1):
        arr = arr[..., 0]
    if arr.shape != (n, n):
        raise ValueError(f"{name} must have shape {(n, n)} or {(n, n, 1)} (the grid's cells), got {np.shape(value)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite everywhere, got non-finite values")
    if positive and not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0 everywhere, got minimum {arr.min()}")
    return jnp.asarray(arr)


@pytree_dataclass
class Darcy(PDE):
    """Steady Darcy flow ``-div(a grad u) = f`` on ``(0, 1)^2`` with ``u = 0`` on the boundary.

    Discretisation: cell-centred finite volumes on ``grid.shape = (n, n)``
    cells of side ``h = 1/n``; the unknowns sit at the cell centres
    ``((i + 1/2)/n, (j + 1/2)/n)`` (not at ``Grid.coordinates()``, which are
    the periodic nodes ``j/n``). The flux through a face uses the harmonic
    mean ``2 a_L a_R / (a_L + a_R)`` of the two cell coefficients (exact flux
    continuity across an interface on a face); ``u = 0`` is imposed by a ghost
    cell holding ``-u`` of its neighbour with the same coefficient, so a wall
    face carries the flux ``2 a u / h``. Second order in ``h`` for smooth
    ``a`` and ``f``. The linear system is symmetric positive definite and is
    solved matrix-free by conjugate gradients, preconditioned by the exact
    inverse of ``sqrt(a) L sqrt(a)`` with ``L`` the constant-coefficient
    operator (a fast sine transform), to ``|r| <= cg_rtol |f|``.

    Args:
        grid: ``Grid(shape=(n, n), length=(1, 1))``, ``n >= 4``.
        coefficient: the permeability ``a > 0``: a number, an array of shape
            ``(n, n)`` or ``(n, n, 1)`` holding cell values, or a callable
            ``a(x, y)`` of broadcast coordinate arrays, evaluated at the cell
            centres. An array means the piecewise-constant field with those
            cell values (this is how the finer grids of the error estimate
            see it); pass a callable for a smooth field. Good values: O(1)
            with contrasts up to ~1e3.
        source: the right-hand side ``f`` (same forms as ``coefficient``, any
            sign). Default 1.
        cg_rtol: relative residual ``|f - A u| / |f|`` at which conjugate
            gradients stop, in (0, 1). Default 1e-10; the algebraic error it
            leaves is bounded and added to the reported error.
        coefficient_fn, source_fn: the callable or number a field was given as
            (``None`` for arrays), filled in by the constructor and used to build
            the same fields on finer grids; leave them out.

    Solve it with :meth:`solve_steady` (or ``solvers.solve_steady(darcy, rtol=, atol=)``).
    """

    name: ClassVar[str] = "darcy"
    dims: ClassVar[tuple[int, ...]] = (2,)

    grid: Grid = static_field()
    _: dataclasses.KW_ONLY
    coefficient: Float[Array, "n n"] | float | Callable = 1.0
    source: Float[Array, "n n"] | float | Callable = 1.0
    cg_rtol: float = static_field(default=1e-10)
    # How the fields were given, kept to build the same fields on finer grids:
    # the callable (or number) itself, or None for cell arrays (piecewise constant).
    coefficient_fn: Callable | float | None = static_field(default=None, repr=False)
    source_fn: Callable | float | None = static_field(default=None, repr=False)

    def __post_init__(self):
        g = self.grid
        if not isinstance(g, Grid) or g.ndim != 2 or g.shape[0] != g.shape[1]:
            raise ValueError(f"grid for Darcy must be a square 2-D Grid (n, n), got {g!r}")
        if g.length != (1.0, 1.0):
            raise ValueError(f"grid.length for Darcy must be (1, 1) (the unit square), got {g.length}")
        if not (isinstance(self.cg_rtol, (float, int)) and 0 < self.cg_rtol < 1):
            raise ValueError(f"cg_rtol must be a number in (0, 1), got {self.cg_rtol!r}")
        n = g.shape[0]
        for name, positive in (("coefficient", True), ("source", False)):
            value = getattr(self, name)
            if value is None or not (callable(value) or is_concrete(value)):
                continue  # a placeholder or tracer while JAX rebuilds the pytree
            fn_name = f"{name}_fn"
            if getattr(self, fn_name) is None and isinstance(value, (int, float, np.integer, np.floating)):
                object.__setattr__(self, fn_name, float(value))
            elif getattr(self, fn_name) is None and callable(value):
                object.__setattr__(self, fn_name, value)
            object.__setattr__(self, name, _field(name, value, n, positive))

    @classmethod
    def parameters(cls) -> dict[str, float]:
        """None: a steady map's coefficient and source come from the data config's ``coefficient`` and ``source``."""
        return {}

    @property
    def n(self) -> int:
        return self.grid.shape[0]

    @property
    def state_shape(self) -> tuple[int, int, int]:
        return (*self.grid.shape, 1)

    def refined(self, factor: int = 2) -> "Darcy":
        """The same problem on ``factor`` times finer cells.

        Callables and numbers are evaluated on the new cell centres; arrays
        are prolonged piecewise-constantly (each cell value fills its
        ``factor x factor`` sub-cells), so both grids discretise one field.
        """
        def prolong(arr, fn):
            return fn if fn is not None else jnp.kron(arr, jnp.ones((factor, factor)))

        return Darcy(self.grid.refined(factor), coefficient=prolong(self.coefficient, self.coefficient_fn),
                     source=prolong(self.source, self.source_fn), cg_rtol=self.cg_rtol,
                     coefficient_fn=self.coefficient_fn, source_fn=self.source_fn)

    # The discrete operator -------------------------------------------------------
    def face_weights(self):
        """Face coefficients ``(wx (n+1, n), wy (n, n+1))``, wall faces doubled (ghost reflection)."""
        return _face_weights(self.coefficient)

    def apply(self, u: Float[Array, "n n"]) -> Float[Array, "n n"]:
        """``A u``: the finite-volume ``-div(a grad u)`` of cell values ``u`` (zero outside)."""
        return _apply_a(self.coefficient, u)

    def residual(self, u) -> Float[Array, "n n"]:
        """``f - A u`` for cell values ``u`` of shape ``(n, n)`` or ``(n, n, 1)``."""
        return self.source - self.apply(jnp.reshape(u, self.grid.shape))

    def solve_linear(self):
        """Solve ``A u = f`` by PCG to ``cg_rtol``: ``(u (n, n), iterations, RMS of f - A u)``.

        The residual is recomputed from ``u`` (not the CG recurrence).
        """
        u, iters, res = _solve(self.coefficient, self.source, self.cg_rtol)
        return u, int(iters), float(res)

    def solve_cg(self, guess=None):
        """Jit- and vmap-able PCG: ``(u (n, n), iterations, RMS of f - A u)`` as arrays.

        ``guess`` (``(n, n)`` or ``(n, n, 1)`` cell values, default 0) is the
        initial iterate; CG stops at ``|f - A u| <= cg_rtol |f|`` whatever the
        guess, so a good guess (e.g. a surrogate's prediction) saves
        iterations at the same stopping tolerance.
        """
        x0 = jnp.zeros(self.grid.shape) if guess is None else jnp.reshape(guess, self.grid.shape)
        return _solve(self.coefficient, self.source, self.cg_rtol, x0)

    def discrete_error_bound(self, u):
        """Jit-able bound of ``RMS(u - A^{-1} f)`` for any cell values ``u``: ``RMS(f - A u) / lambda_min(A)``.

        The same bound as :meth:`algebraic_error_bound` (``lambda_min(A) >= min(a)
        (8/h^2) sin^2(pi h / 2)``), computed from ``u``'s residual; it bounds the
        distance to the discrete solution, not the discretisation error.
        """
        return rms(self.residual(u)) / (jnp.min(self.coefficient) * _laplacian_lambda_min(self.n))

    def coarsened(self, factor: int) -> "Darcy":
        """The same problem on ``factor`` times coarser cells (``n % factor == 0``), jit-able.

        Coefficient and source become the arithmetic means of the
        ``factor x factor`` fine cells of each coarse cell (a coarse solver
        sees only block averages of a piecewise-constant coefficient; the
        error this makes is part of the coarse solution's error).
        """
        n = self.n
        if not (isinstance(factor, int) and factor >= 1 and n % factor == 0 and n // factor >= 4):
            raise ValueError(f"factor must be an integer dividing n = {n} with n / factor >= 4, got {factor!r}")
        m = n // factor

        def block_mean(v):
            return jnp.mean(jnp.reshape(v, (m, factor, m, factor)), axis=(1, 3))

        return Darcy(Grid((m, m), self.grid.length), coefficient=block_mean(self.coefficient),
                     source=block_mean(self.source), cg_rtol=self.cg_rtol)

    def interpolate(self, u, n: int):
        """Cell values ``u`` of this grid, bilinearly interpolated to the centres of ``(n, n)`` cells.

        Cell-centred grids of different sizes do not nest (a coarse centre is
        not a fine centre), so values are interpolated in each axis through
        the cell centres and the wall value ``u = 0`` (the Dirichlet
        condition); second order, like the scheme. Returns ``(n, n)``.
        """
        P = jnp.asarray(_linear_interp_matrix(self.n, int(n)))
        return P @ jnp.reshape(u, self.grid.shape) @ P.T

    def algebraic_error_bound(self, residual_rms: float) -> float:
        """Bound of RMS(u - A^{-1} f) from the residual: ``RMS(r) / lambda_min(A)``.

        ``lambda_min(A) >= min(a) * lambda_min(L_h)`` because every face
        coefficient is at least ``min(a)``, and ``lambda_min(L_h) =
        (8/h^2) sin^2(pi h / 2)`` (see :func:`_sine_basis`) for the cell-centred Dirichlet Laplacian.
        """
        return residual_rms / (float(np.min(np.asarray(self.coefficient))) * _laplacian_lambda_min(self.n))

    # The error-controlled solve ------------------------------------------------
    def solve_steady(self, rtol: float = 1e-6, atol: float = 1e-10) -> Solution:
        """Solve on this grid and bound the RMS error against the exact PDE solution.

        The discretisation error of ``u_n`` is estimated by Richardson
        extrapolation: ``u_n``, ``u_2n`` and ``u_4n`` are compared at the
        coarser grid's cell centres (``u_2n`` interpolated to them by 4-point
        cubic interpolation, using ``u = 0`` on the wall next to the
        boundary, so the comparison itself is fourth order); with
        ``d1 = RMS(u_n - u_2n)``, ``d2 = RMS(u_2n - u_4n)`` and the observed
        order ``p = min(2, log2(d1 / d2))``, the error of ``u_n`` is
        ``F d1 / (1 - 2^-p)`` (``4/3 F d1`` at second order) with the safety
        factor ``F = 1.25`` of Roache's grid convergence index (the bare
        Richardson value is an estimate, not a bound: higher-order terms can
        put it a few percent under the true error). The residual-based
        bounds of the algebraic (CG) errors of all three solves are added.
        Reference: P. J. Roache, *Verification and Validation in
        Computational Science and Engineering* (1998), ch. 5.

        Returns:
            ``Solution`` with ``u`` of shape ``(1, n, n, 1)``, ``t = [0.]``,
            ``error = [bound]``; ``stats`` holds the CG iterations and residuals
            per grid, the observed order and the two error parts.

        Raises:
            ResolutionError: the bound exceeds ``rtol * RMS(u) + atol`` (it
                names the grid and the grid that would meet the tolerance), or
                the grids are not in the asymptotic range (observed order < 0.5).
        """
        if not (rtol >= 0 and atol >= 0 and rtol + atol > 0 and math.isfinite(rtol) and math.isfinite(atol)):
            raise ValueError(f"rtol and atol must be >= 0, finite and not both 0, got rtol={rtol}, atol={atol}")
        start = time.perf_counter()
        problems = [self, self.refined(2), self.refined(4)]
        sols, iters, alg = [], [], []
        for p in problems:
            u, it, res = p.solve_linear()
            sols.append(u)
            iters.append(it)
            alg.append(p.algebraic_error_bound(res))
        d1 = float(rms(sols[0] - _to_coarse(sols[1])))
        d2 = float(rms(sols[1] - _to_coarse(sols[2])))
        # Interpolation amplifies RMS by at most ||P||_2^2 * 2 (4 fine cells per coarse one).
        amp = 2 * _interp_norm(self.n) ** 2
        amp2 = 2 * _interp_norm(2 * self.n) ** 2
        d1_alg = alg[0] + amp * alg[1]
        d2_alg = alg[1] + amp2 * alg[2]
        if d1 <= d1_alg or d2 <= d2_alg:  # differences at the algebraic noise level: resolved
            order = _MAX_ORDER
        else:
            order = min(_MAX_ORDER, math.log2((d1 - d1_alg) / (d2 + d2_alg)))
        u = sols[0]
        tol = rtol * float(rms(u)) + atol
        name = f"{self.grid.shape}"
        if order < _MIN_ORDER:
            raise ResolutionError(
                f"Darcy on grid {name} is not in the asymptotic range: observed order {order:.2f} "
                f"between grids {self.n}, {2 * self.n}, {4 * self.n}; refine the grid (e.g. {(4 * self.n,) * 2})")
        factor = _SAFETY / (1.0 - 2.0**-order)
        space = factor * (d1 + d1_alg)
        error = space + alg[0]
        stats = {"cg_iterations": iters, "cg_residual_bound": alg, "observed_order": order,
                 "space_error": space, "algebraic_error": alg[0], "richardson_difference": d1,
                 "grids": [p.n for p in problems], "wall_time": time.perf_counter() - start}
        if not error <= tol:
            need = self.n * 2 ** max(1, math.ceil(math.log2((error / tol) ** (1 / order))))
            raise ResolutionError(
                f"Darcy on grid {name} has estimated RMS error {error:.3g} > tolerance {tol:.3g} "
                f"(rtol={rtol}, atol={atol}); a grid of about {(need, need)} cells would meet it")
        return Solution(u=u[None, ..., None], t=jnp.zeros(1), error=jnp.asarray([error]), rtol=rtol,
                        atol=atol, grid=self.grid, solve_grid=self.grid, stats=stats)


# Kernels -------------------------------------------------------------------------------
def _face_weights(a):
    hm = lambda p, q: 2 * p * q / (p + q)  # noqa: E731
    wx = jnp.concatenate([2 * a[:1], hm(a[:-1], a[1:]), 2 * a[-1:]], axis=0)
    wy = jnp.concatenate([2 * a[:, :1], hm(a[:, :-1], a[:, 1:]), 2 * a[:, -1:]], axis=1)
    return wx, wy


@jax.jit
def _apply_a(a, u):
    return _apply(*_face_weights(a), u, 1.0 / a.shape[0])


@jax.jit
def _solve(a, f, rtol, u0=None):
    wx, wy = _face_weights(a)
    u, k = _pcg(wx, wy, a, f, rtol, jnp.zeros_like(f) if u0 is None else u0)
    return u, k, rms(f - _apply(wx, wy, u, 1.0 / a.shape[0]))


def _laplacian_lambda_min(n: int) -> float:
    """Smallest eigenvalue ``(8/h^2) sin^2(pi h / 2)`` of the cell-centred Dirichlet Laplacian on ``n x n`` cells."""
    return 8 * n**2 * math.sin(math.pi / (2 * n)) ** 2


def _linear_interp_matrix(m: int, n: int) -> np.ndarray:
    """``(n, m)`` linear interpolation from ``m`` cell centres (and the walls, value 0) to ``n`` cell centres."""
    xm = np.concatenate([[0.0], (np.arange(m) + 0.5) / m, [1.0]])
    xn = (np.arange(n) + 0.5) / n
    P = np.zeros((n, m))
    for j in range(m):
        e = np.zeros(m + 2)
        e[j + 1] = 1.0
        P[:, j] = np.interp(xn, xm, e)
    return P


def _apply(wx, wy, u, h):
    up = jnp.pad(u, 1)
    fx = wx * (up[1:, 1:-1] - up[:-1, 1:-1])  # flux (times h) through x-faces, (n+1, n)
    fy = wy * (up[1:-1, 1:] - up[1:-1, :-1])  # (n, n+1)
    return -((fx[1:] - fx[:-1]) + (fy[:, 1:] - fy[:, :-1])) / h**2


_DENSE_TRANSFORM_MAX = 512  # up to this n the sine transform is a dense matmul (fast to compile)


def _sine_basis(n: int):
    """Orthonormal DST-II basis and eigenvalues of the cell-centred Dirichlet ``-Lap_h`` (1-D).

    The eigenvectors are ``sin(pi k (j + 1/2) / n)``, ``k = 1..n``, with
    eigenvalues ``4 n^2 sin^2(pi k / (2 n))``. Returns ``(S, lam)`` with rows
    of ``S`` the normalised eigenvectors (``S @ S.T = I``).
    """
    k = np.arange(1, n + 1)[:, None]
    j = np.arange(n)[None, :]
    S = np.sqrt(2.0 / n) * np.sin(np.pi * k * (j + 0.5) / n)
    S[-1] /= np.sqrt(2.0)
    lam = 4 * n**2 * np.sin(np.pi * np.arange(1, n + 1) / (2 * n)) ** 2
    return S, lam


def _poisson_solver(n: int):
    """``r -> L_h^{-1} r`` for the 2-D cell-centred Dirichlet ``-Lap_h`` by a fast sine transform."""
    S, lam = _sine_basis(n)
    inv_lam = jnp.asarray(1.0 / (lam[:, None] + lam[None, :]))
    if n <= _DENSE_TRANSFORM_MAX:
        S = jnp.asarray(S)
        return lambda r: S.T @ ((S @ r @ S.T) * inv_lam) @ S
    # Large grids: DST-II through the DCT-II of (-1)^j x_j, whose index m holds k = n - m.
    sgn = (-1.0) ** np.arange(n)
    sign = jnp.asarray(sgn[:, None] * sgn[None, :])
    inv_lam = inv_lam[::-1, ::-1]
    dctn, idctn = jax.scipy.fft.dctn, jax.scipy.fft.idctn
    return lambda r: sign * idctn(dctn(sign * r, type=2, norm="ortho") * inv_lam, type=2, norm="ortho")


@jax.jit
def _pcg(wx, wy, a, f, rtol, u0):
    """Preconditioned CG for ``A u = f`` from ``u0`` until ``|r| <= rtol |f|`` (or 10 n + 100 iterations)."""
    n = f.shape[0]
    h = 1.0 / n
    poisson = _poisson_solver(n)
    inv_sqrt_a = 1.0 / jnp.sqrt(a)

    def precond(r):  # (sqrt(a) L_h sqrt(a))^{-1} r, symmetric positive definite
        return inv_sqrt_a * poisson(inv_sqrt_a * r)

    matvec = lambda u: _apply(wx, wy, u, h)  # noqa: E731
    stop = (rtol * jnp.linalg.norm(f)) ** 2
    r0 = f - matvec(u0)
    z0 = precond(r0)
    rz0 = jnp.vdot(r0, z0)

    def cond(state):
        _, r, _, _, k = state
        return (jnp.vdot(r, r) > stop) & (k < 10 * n + 100)

    def body(state):
        u, r, p, rz, k = state
        ap = matvec(p)
        alpha = rz / jnp.vdot(p, ap)
        u = u + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / rz) * p
        return u, r, p, rz_new, k + 1

    u, _, _, _, k = lax.while_loop(cond, body, (u0, r0, z0, rz0, 0))
    return u, k


def _interp_matrix(n: int) -> np.ndarray:
    """``(n, 2n)`` cubic interpolation from ``2n`` cell centres to ``n`` cell centres.

    Interior coarse centres lie midway between two fine centres: weights
    ``(-1, 9, 9, -1)/16``. Next to a wall the cubic through the wall value 0
    and three fine centres is used (weights ``0.75, 0.5, -0.05``).
    """
    P = np.zeros((n, 2 * n))
    for i in range(n):
        if 0 < i < n - 1:
            P[i, 2 * i - 1 : 2 * i + 3] = np.array([-1, 9, 9, -1]) / 16
    P[0, :3] = [0.75, 0.5, -0.05]
    P[-1, -3:] = [-0.05, 0.5, 0.75]
    return P


def _interp_norm(n: int) -> float:
    return float(np.linalg.norm(_interp_matrix(n), 2))


def _to_coarse(v):
    """Cell values on ``2n`` cells interpolated to the ``n`` coarse cell centres (4th order)."""
    P = jnp.asarray(_interp_matrix(v.shape[0] // 2))
    return P @ v @ P.T


def solve_steady(pde: Darcy, rtol: float = 1e-6, atol: float = 1e-10) -> Solution:
    """Solve a steady problem to ``rtol * RMS(u) + atol`` with an error bound (see :meth:`Darcy.solve_steady`)."""
    if not isinstance(pde, Darcy):
        raise ValueError(f"pde must be a steady problem (solvers.Darcy), got {type(pde).__name__}; "
                         "time-dependent PDEs are solved by solvers.solve")
    return pde.solve_steady(rtol=rtol, atol=atol)
