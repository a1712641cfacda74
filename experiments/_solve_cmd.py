"""``byai solve``: a solver demo that shows its own accuracy.

Prints a convergence table of the fixed-step ETDRK2 and ETDRK4 integrators (step, RMS error,
observed order between successive steps), then one adaptive ``solve`` with its reported error bound
next to the true error and the tolerance, frame by frame. Problems:

- ``burgers``: u_t + u u_x = 0.1 u_xx, u0 = sin x on [0, 2 pi), N = 192, T = 1; exact Cole-Hopf.
- ``ks``: Kuramoto-Sivashinsky, u0 = cos(x/16)(1 + sin(x/16)) on [0, 32 pi), N = 128, T = 5;
  reference: ETDRK4 at dt = T/2560 (fixed steps) and, for the adaptive solve, on the grid twice
  as fine.
- ``heat``: u_t = 0.1 u_xx, u0 = exp(sin x), N = 64, T = 1; exact by Fourier modes (ETD is exact
  in time for linear problems, so the table shows rounding only).
"""

from __future__ import annotations

import math

import numpy as np

from experiments._cli import UsageError

PDES = ("burgers", "ks", "heat")


def add_arguments(parser) -> None:
    parser.add_argument("--pde", choices=PDES, default="burgers", help="the demo problem (default burgers)")
    parser.add_argument("--rtol", type=float, default=1e-8, help="relative tolerance of the adaptive solve")
    parser.add_argument("--atol", type=float, default=1e-12, help="absolute tolerance of the adaptive solve")


def _problem(name):
    """``(pde, u0, t_end, exact(t) -> frame or None, description)`` on the requested grid."""
    from solvers import Burgers, Diffusion, Grid, KuramotoSivashinsky

    if name == "burgers":
        from experiments._bench_solve import burgers_exact

        grid = Grid((192,))
        (x,) = grid.coordinates()
        nu = 0.1
        return (Burgers(grid, nu=nu), np.sin(x)[:, None], 1.0, lambda t: burgers_exact(x, t, nu)[:, None],
                "Burgers nu=0.1, u0=sin x, N=192, T=1; error vs exact Cole-Hopf")
    if name == "heat":
        grid = Grid((64,))
        (x,) = grid.coordinates()
        nu = 0.1
        u0 = np.exp(np.sin(x))
        k = np.fft.rfftfreq(64, 1 / 64)

        def exact(t):
            return np.fft.irfft(np.fft.rfft(u0) * np.exp(-nu * k**2 * t), 64)[:, None]

        return (Diffusion(grid, nu=nu), u0[:, None], 1.0, exact,
                "heat nu=0.1, u0=exp(sin x), N=64, T=1; error vs exact Fourier solution")
    grid = Grid((128,), (32 * math.pi,))
    (x,) = grid.coordinates()
    return (KuramotoSivashinsky(grid), (np.cos(x / 16) * (1 + np.sin(x / 16)))[:, None], 5.0, None,
            "Kuramoto-Sivashinsky L=32pi, N=128, T=5; error vs ETDRK4 at dt=T/2560")


def _fixed(pde, u0, t_end, n, method, frames=1):
    """States at ``frames`` equal intervals up to ``t_end``, ``n`` fixed steps per interval."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from solvers import rollout, stepper

    @jax.jit
    def run(u, dt, m):
        step = stepper(pde, dt, method)
        return rollout(lambda v: lax.fori_loop(0, m, lambda i, w: step(w), v), u, frames)

    return np.asarray(run(jnp.asarray(u0), t_end / frames / n, n))


def _rms(a, axes=None):
    return np.sqrt(np.mean(np.asarray(a) ** 2, axis=axes))


def run(args) -> int:
    if not (math.isfinite(args.rtol) and args.rtol >= 0):
        raise UsageError(f"--rtol must be a finite number >= 0, got {args.rtol}")
    if not (math.isfinite(args.atol) and args.atol >= 0):
        raise UsageError(f"--atol must be a finite number >= 0, got {args.atol}")
    if args.rtol == 0 and args.atol == 0:  # checked before the convergence table, not after it
        raise UsageError("--rtol and --atol must not both be 0")
    import solvers

    pde, u0, t_end, exact, what = _problem(args.pde)
    print(f"byai solve: {what}")
    final = exact(t_end) if exact is not None else _fixed(pde, u0, t_end, 2560, "etdrk4")[-1]
    print(f"{'method':<8} {'dt':>10} {'RMS error':>11} {'order':>6}")
    for method in ("etdrk2", "etdrk4"):
        prev = None
        for n in (10, 20, 40, 80, 160):
            err = _rms(_fixed(pde, u0, t_end, n, method)[-1] - final)
            order = "" if prev is None or err <= 0 or err < 1e-13 else f"{math.log2(prev / err):6.2f}"
            print(f"{method:<8} {t_end / n:10.3e} {err:11.3e} {order:>6}")
            prev = err
    ts = np.linspace(0.0, t_end, 5)
    sol = solvers.solve(pde, u0, ts, rtol=args.rtol, atol=args.atol)
    if exact is not None:
        truth = np.stack([exact(t) for t in ts])
        label = "true error"
    else:  # a reference on the grid twice as fine as the one solve used, tight fixed step
        fine = sol.solve_grid.refined(2)
        v0 = np.asarray(solvers.resample(u0, pde.grid, fine))
        stride = fine.shape[0] // pde.grid.shape[0]
        truth = _fixed(pde.with_grid(fine), v0, t_end, 640, "etdrk4", frames=4)[:, ::stride]
        label = "vs reference"
    true = _rms(np.asarray(sol.u) - truth, axes=(1, 2))
    s = sol.stats
    print(f"adaptive solve (etdrk4, rtol={args.rtol:g}, atol={args.atol:g}): grid {sol.grid.shape}, solved on "
          f"{sol.solve_grid.shape}, {s['accepted']} steps ({s['rejected']} rejected), {s['wall_time']:.2f} s "
          f"incl. compilation")
    print(f"{'t':>6} {'reported bound':>15} {label:>13} {'tolerance':>11}  bound holds")
    for i, t in enumerate(ts):
        ok = "yes" if sol.error[i] >= true[i] else "NO"
        print(f"{t:6.2f} {float(sol.error[i]):15.3e} {true[i]:13.3e} {float(sol.tolerance[i]):11.3e}  {ok}")
    return 0 if np.all(np.asarray(sol.error) >= true) else 1
