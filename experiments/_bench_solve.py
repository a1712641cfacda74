"""Adaptive ``solve`` against the best fixed step on the Cole-Hopf Burgers problem.

``bench_adaptive()`` solves viscous Burgers with ``u0 = sin x`` on ``[0, 2 pi)``
adaptively at ``rtol=1e-8`` and measures its true error against the exact
Cole-Hopf solution. It then finds the largest fixed ETDRK4 step (on the grid the
adaptive solve used, saving at the same times) whose error is no larger, and
times both the same way, with ``audit``'s timing routine: compilation excluded,
the fastest of three runs.
The target: adaptive wall time <= 2 x fixed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def burgers_exact(x, t: float, nu: float, points: int = 4001) -> np.ndarray:
    """Exact viscous Burgers solution for ``u0 = sin x`` by the Hopf formula.

    ``u(x, t) = int (s/t) w(s) ds / int w(s) ds`` with
    ``w(s) = exp(cos(x - s) / (2 nu) - s^2 / (4 nu t))`` (Cole-Hopf: ``u = -2 nu phi_x / phi``
    with ``phi`` the heat-equation solution from ``phi0 = exp(cos x / (2 nu))``), by the
    trapezoid rule on ``|s| <= sqrt(4 nu t (40 + 1/nu))`` in log-sum-exp form; accurate to
    about 1e-14 (the integrand is analytic and decays like a Gaussian).
    """
    x = np.asarray(x, dtype=np.float64)
    if t == 0:
        return np.sin(x)
    half = math.sqrt(4 * nu * t * (40 + 1 / nu))
    s = np.linspace(-half, half, points)
    f = np.cos(x[:, None] - s[None, :]) / (2 * nu) - s[None, :] ** 2 / (4 * nu * t)
    w = np.exp(f - f.max(axis=1, keepdims=True))
    return (w @ (s / t)) / w.sum(axis=1)


def bench_adaptive(nu: float = 0.05, n: int = 512, t_end: float = 1.0, frames: int = 5,
                   rtol: float = 1e-8, atol: float = 1e-12) -> dict:
    """Wall time of adaptive ``solve`` vs the best fixed ETDRK4 step at equal true error.

    Returns a dict: ``adaptive_s``, ``fixed_s`` (fastest of 3, compile excluded), ``ratio``
    (adaptive / fixed, target <= 2), the adaptive true and reported errors (max over frames),
    the fixed step count and its true error, and the problem's parameters.
    """
    from audit._equal_accuracy import time_call
    from solvers import Burgers, Grid, solve, stepper

    grid = Grid((n,))
    (x,) = grid.coordinates()
    pde = Burgers(grid, nu=nu)
    u0 = np.sin(x)[:, None]
    ts = np.linspace(0.0, t_end, frames)
    exact = np.stack([burgers_exact(x, t, nu) for t in ts])[..., None]

    def true_error(u):
        return float(np.max(np.sqrt(np.mean((np.asarray(u) - exact) ** 2, axis=(1, 2)))))

    sol = solve(pde, u0, ts, rtol=rtol, atol=atol)
    adaptive_s, _ = time_call(lambda: solve(pde, u0, ts, rtol=rtol, atol=atol).u)
    err_adaptive = true_error(sol.u)
    fine = sol.solve_grid
    fine_pde = pde.with_grid(fine)
    fine_u0 = jnp.asarray(np.sin(fine.coordinates()[0])[:, None])
    stride = fine.shape[0] // n

    @jax.jit
    def fixed_run(u, steps_per_frame):
        # one compilation for every step count: dt and the count are traced
        step = stepper(fine_pde, (ts[1] - ts[0]) / steps_per_frame)

        def frame(v, _):
            v = lax.fori_loop(0, steps_per_frame, lambda i, w: step(w), v)
            return v, v

        _, traj = lax.scan(frame, u, None, length=frames - 1)
        return jnp.concatenate([u[None], traj])

    def fixed_error(m):
        return true_error(np.asarray(fixed_run(fine_u0, m))[:, ::stride])

    # the fewest steps per frame whose true error is <= the adaptive one (error falls with m)
    hi = 1
    while fixed_error(hi) > err_adaptive:
        hi *= 2
        if hi > 1 << 16:
            raise RuntimeError("no fixed step reached the adaptive solve's error")
    lo = hi // 2  # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fixed_error(mid) <= err_adaptive:
            hi = mid
        else:
            lo = mid
    m = hi
    err_fixed = fixed_error(m)
    fixed_s, _ = time_call(fixed_run, fine_u0, m)
    return dict(problem=f"burgers nu={nu} u0=sin(x) N={n} T={t_end} frames={frames}", rtol=rtol, atol=atol,
                solve_grid=list(fine.shape), adaptive_s=adaptive_s, fixed_s=fixed_s,
                ratio=adaptive_s / fixed_s, adaptive_true_error=err_adaptive,
                adaptive_reported_error=float(np.max(np.asarray(sol.error))),
                adaptive_accepted=sol.stats["accepted"], adaptive_rejected=sol.stats["rejected"],
                fixed_steps=m * (frames - 1), fixed_true_error=err_fixed)


if __name__ == "__main__":
    import json

    import solvers  # noqa: F401  (float64)

    print(json.dumps(bench_adaptive()))
