"""``solve``: adaptive ETDRK integration with an error bound for every saved frame.

Time error. Each step of size ``h`` is taken twice: once whole (``u_full``) and
as two halves (``u_half``). For a method of order ``p``,
``e = (u_half - u_full) / (2^p - 1)`` estimates the local error of ``u_half``
(Richardson), and the solver continues from ``u_half`` itself, so ``e``
estimates the error actually committed. (Continuing from the extrapolated
``u_half + e`` made the reported bound 8x to 115x the true error, measured.)
Local errors do not simply add (Kuramoto-Sivashinsky amplifies them,
diffusion damps them, a travelling soliton's largely cancel), so a global
error vector ``g`` is carried along with the linearised dynamics,
``g <- J_h g + e``, where ``J_h`` is the tangent of the whole step actually
taken (the ``jax.jvp`` of the ETDRK step along ``g``; exact for linear PDEs).
A cheaper exponential-Euler tangent, ``exp(hL) g + h phi1(hL) N'(u)[g]``,
treats ``N'`` explicitly and is unstable for advection once
``h > 2 nu / |v|^2`` (Kolmogorov flow at nu = 3e-2: it grew to 1e7 x the
tolerance while the true error stayed ~1e-8, measured). The time part of
``error[i]`` is ``TIME_SAFETY * RMS(g(t_i))``.

Step control aims at the tolerance: the budget for ``RMS(g)`` is ``_AIM`` of
the time error's half of the tolerance, divided by ``TIME_SAFETY``; what the
carried error has not used yet is spread over the time left (error per unit
step), divided by the ratio of the carried error to the sum of the local
errors committed when that exceeds 1 (error growth, read from ``g`` within
the pass). A step is accepted when ``RMS(e)`` is within its share. The step
size only grows by ``_GROW`` or more at a time, so the coefficients (one to
five steps' work) are recomputed only when it changes.

Space error. The spectral truncation error is estimated from the energy in
the highest resolved modes: the RMS of the modes above 3/4 of the 2/3
dealiasing cut-off on any axis (``tail``), maximised over all accepted steps
up to ``t_i``, times ``SPACE_SAFETY``. It must stay below half the tolerance;
otherwise the grid is refined (``refine=True``) or ``ResolutionError`` is
raised.

The promise checked before returning: ``error[i] <= rtol * RMS(u[i]) + atol``
for every frame. When the propagated global error exceeds its half of the
budget (error growth, e.g. chaos), the whole interval is integrated again
with a proportionally smaller local tolerance (at most ``_REINTEGRATIONS``
times). All stepping runs in one jitted ``lax.while_loop`` (``_integrate``:
its state a ``_Loop``, its result an ``_Integration`` whose ``_Status`` says
why it stopped); only the decisions between whole integrations happen on the
host. The scheme, its order ``p`` and its evaluations of ``N`` per step, is
the one ``_etdrk.METHODS`` names.

Caveats, measured. The Richardson factor ``2^p - 1`` assumes the classical
order; where stiff modes carry energy ETDRK4's effective order drops towards 3
(Hochbruck & Ostermann 2005), so ``e`` can underestimate the error of
``u_half`` by up to about 2x: ``TIME_SAFETY = 2`` covers that (without it the
bound was 0.98x to 1.25x the true error on Burgers and the KdV soliton). On
exact solutions (Cole-Hopf Burgers nu = 0.1, 0.05; KdV soliton; rtol 1e-6,
1e-9) the reported bound is 1.9x to 2.6x the true error, and the true error at
the last frame 0.07 to 0.08 of the tolerance for Burgers, 0.017 to 0.04 for
the soliton: its local errors mostly cancel in ``g`` (~2% of their sum), and
the controller does not count on cancellation, because on Kolmogorov flow
(``tests/solvers/test_solve_tangent.py``) errors placed on that credit were
amplified 40x late in the run and forced a second pass. Cost per attempt:
three ETDRK steps, the whole one as a ``jvp`` (about 4.5 steps' work): a
fixed-step ETDRK4 run that just meets the tolerance is 4x to 8x cheaper.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Complex, Float, Int

from ._etdrk import METHODS, scheme
from ._grid import Grid, resample
from ._pde import ResolutionError, SemiLinearPDE, Solution, SolverDivergedError, pytree_dataclass

TIME_SAFETY = 2.0  # reported time error = TIME_SAFETY * RMS(propagated global error estimate)
SPACE_SAFETY = 2.0  # reported space error = SPACE_SAFETY * RMS(upper band of resolved modes)
_AIM = 1.0  # the time error bound aimed at, as a fraction of its half of the tolerance
_BUDGET_FLOOR = 0.1  # the least share of the budget a step is allowed when the carried error has used it up
_KEPT_MIN = 1.0  # no credit for local errors that cancel or decay in g (see the caveats)
_GROW = 1.25  # a step grows only when it may grow by this factor at least (new coefficients cost 1-5 steps)
_REINTEGRATIONS = 3
_MAX_CONSECUTIVE_REJECTS = 60
# relative local error no step is asked to beat: the Richardson estimate's rounding noise is ~eps/20
# of RMS(u) (measured, 64^2 Navier-Stokes); asked for less, the error-per-unit-step rule shrank h
# without end ("step size collapsed")
_ROUNDING = float(np.finfo(np.float64).eps) / 4


class _Status(enum.IntEnum):
    """Why the integration loop stopped (``RUNNING`` while it runs)."""

    RUNNING = 0
    DONE = 1  # every save time reached
    NONFINITE = 2  # the attempted state stayed non-finite through more than 8 rejections in a row
    STEP_COLLAPSE = 3  # the step size fell below rounding, or too many rejections in a row
    MAX_STEPS = 4  # max_steps attempts used
    UNRESOLVED = 5  # an accepted state's tail exceeds its half of the tolerance


def _parseval_weights(grid: Grid) -> np.ndarray:
    """Weights ``w`` with ``RMS(u)^2 = sum(w |rfft(u)|^2)`` (per channel, summed over modes)."""
    n = grid.shape[-1]
    w = np.full(grid.spectral_shape, 2.0)
    w[..., 0] = 1.0
    if n % 2 == 0:
        w[..., -1] = 1.0
    return w / float(math.prod(grid.shape)) ** 2


def _bands(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the top band (above 3/4 of the dealiasing cut-off ``N/3`` on some axis) and the band below it."""
    frac = np.zeros(grid.spectral_shape)
    for m, n in zip(grid._mode_numbers(), grid.shape):
        frac = np.maximum(frac, np.abs(m) / (n / 3))
    return frac > 0.75, (frac > 0.5) & (frac <= 0.75)


def _rms_hat(w, v_hat):
    """RMS over grid points and channels of the state whose rfft is ``v_hat``."""
    c = v_hat.shape[-1]
    return jnp.sqrt(jnp.sum(w[..., None] * jnp.abs(v_hat) ** 2) / c)


@pytree_dataclass
class _Integration:
    """What one adaptive integration returns: the saved frames, their error estimates and the loop's end.

    Per save time ``i`` (arrays of length ``len(t)``): ``frames[i]`` on the grid
    sub-sampled by ``stride``; ``gerr[i]``, the RMS of the propagated global
    error ``g`` on those points; ``tails[i]``, the running maximum of the top
    band's RMS, and ``belows[i]``, the RMS of the band below it where that
    maximum occurred. At the end: the time reached ``t``, the counters, the
    :class:`_Status` code, and the running ``tail``, ``below`` and the
    tolerance ``tol`` of the last accepted state.
    """

    frames: Float[Array, "n *sub c"]
    gerr: Float[Array, " n"]
    tails: Float[Array, " n"]
    belows: Float[Array, " n"]
    t: Float[Array, ""]
    accepted: Int[Array, ""]
    rejected: Int[Array, ""]
    nfev: Int[Array, ""]
    status: Int[Array, ""]
    tail: Float[Array, ""]
    below: Float[Array, ""]
    tol: Float[Array, ""]


@pytree_dataclass
class _Loop:
    """The adaptive loop's state between step attempts: the last accepted state and the outputs so far.

    ``t``, ``v`` (Fourier space), ``g`` (its propagated global error, Fourier
    space), ``tol`` (its tolerance), ``tail`` and ``below`` (running maximum of
    the top band, and the band below at it) describe the last accepted step;
    ``h`` is the step to try next, ``i`` the next save time, ``streak`` the
    rejections in a row; ``c_full`` and ``c_half`` are the scheme's coefficients
    for the steps ``hc`` and ``hc / 2`` (kept while the step size stays); the
    rest as in :class:`_Integration`.
    """

    t: Float[Array, ""]
    h: Float[Array, ""]
    hc: Float[Array, ""]
    c_full: dict
    c_half: dict
    v: Complex[Array, "*k c"]
    g: Complex[Array, "*k c"]
    esum: Float[Array, ""]
    i: Int[Array, ""]
    frames: Float[Array, "n *sub c"]
    gerr: Float[Array, " n"]
    tails: Float[Array, " n"]
    belows: Float[Array, " n"]
    tail: Float[Array, ""]
    below: Float[Array, ""]
    tol: Float[Array, ""]
    accepted: Int[Array, ""]
    rejected: Int[Array, ""]
    nfev: Int[Array, ""]
    streak: Int[Array, ""]
    status: Int[Array, ""]

    def result(self) -> _Integration:
        return _Integration(**{f.name: getattr(self, f.name) for f in dataclasses.fields(_Integration)})


@partial(jax.jit, static_argnames=("method", "stride"))
def _integrate(pde, u0, t, rtol, atol, scale, h0, max_steps, *, method: str, stride: int) -> _Integration:
    """One adaptive integration of ``pde`` from ``u0`` at ``t[0]`` over ``t``, on ``pde.grid``."""
    grid = pde.grid
    integrator = METHODS[method]
    order = integrator.order
    weights = jnp.asarray(_parseval_weights(grid))
    top, below = (jnp.asarray(b) for b in _bands(grid))
    lin = pde.linear()
    span = t[-1] - t[0]
    n_save = t.shape[0]
    sub = tuple(slice(None, None, stride) for _ in range(grid.ndim))

    def tol_of(v):
        return rtol * _rms_hat(weights, v) + atol

    def band_rms(v):
        return _rms_hat(weights, jnp.where(top[..., None], v, 0)), _rms_hat(weights, jnp.where(below[..., None], v, 0))

    def sub_rms(v_hat):
        x = grid.ifft(v_hat)[sub]
        return jnp.sqrt(jnp.mean(x**2))

    def etd_step(c, v):
        return integrator.step(pde.nonlinear, c, v)

    v0 = grid.fft(u0)
    tail0, below0 = band_rms(v0)
    status0 = jnp.where(SPACE_SAFETY * tail0 > 0.5 * tol_of(v0), _Status.UNRESOLVED,
                        jnp.where(n_save > 1, _Status.RUNNING, _Status.DONE))
    h_start = jnp.minimum(jnp.asarray(h0, dtype=jnp.float64), t[jnp.minimum(1, n_save - 1)] - t[0])
    start = _Loop(t=t[0], h=h_start, hc=h_start, c_full=integrator.coefficients(lin, h_start),
                  c_half=integrator.coefficients(lin, h_start / 2), v=v0, g=jnp.zeros_like(v0), esum=jnp.asarray(0.0), i=jnp.asarray(1),
                  frames=jnp.zeros((n_save, *u0[sub].shape), u0.dtype).at[0].set(u0[sub]),
                  gerr=jnp.zeros(n_save), tails=jnp.zeros(n_save).at[0].set(tail0),
                  belows=jnp.zeros(n_save).at[0].set(below0), tail=tail0, below=below0, tol=tol_of(v0),
                  accepted=jnp.asarray(0), rejected=jnp.asarray(0), nfev=jnp.asarray(0), streak=jnp.asarray(0),
                  status=status0)

    def body(s: _Loop) -> _Loop:
        target = t[s.i]
        remaining = target - s.t
        # split what is left of the save interval into equal steps no longer than the wanted h, so the
        # last one lands exactly on the save time without a sliver step
        n_left = jnp.maximum(jnp.ceil(remaining / s.h * (1 - 1e-12)), 1.0)
        landing = n_left <= 1
        h = remaining / n_left
        # the coefficients cost one to five steps (complex symbols: 32 contour points per mode, measured),
        # so they are recomputed only when the step size changes; between changes h = remaining / n_left
        # reproduces s.hc up to rounding
        fresh = jnp.abs(h - s.hc) > 1e-12 * s.hc
        c_full, c_half = lax.cond(fresh, lambda: (integrator.coefficients(lin, h), integrator.coefficients(lin, h / 2)),
                                  lambda: (s.c_full, s.c_half))
        h = jnp.where(fresh, h, s.hc)
        v = s.v
        # the whole step and its tangent along the carried global error g (see the module docstring)
        u_full, dg = jax.jvp(lambda x: etd_step(c_full, x), (v,), (s.g,))
        u_half = etd_step(c_half, etd_step(c_half, v))
        e = (u_half - u_full) / (2**order - 1)
        err = _rms_hat(weights, e)
        v_new = u_half
        # the time budget: TIME_SAFETY * RMS(g) aims at AIM of its half of the tolerance; what the carried
        # error has not used yet is spread over the time left (error per unit step of the remaining budget)
        budget = scale * _AIM * 0.5 * tol_of(v_new) / TIME_SAFETY
        carried = _rms_hat(weights, dg)
        left = jnp.maximum(budget - carried, _BUDGET_FLOOR * budget)
        # how much of the local errors committed so far the carried error holds: 1 when they add up,
        # less when they cancel or decay (a travelling soliton: ~0.02, measured; not counted on, floor
        # _KEPT_MIN), more when they grow (chaos: the local errors shrink accordingly)
        kept = jnp.where(s.esum > 0, carried / jnp.where(s.esum > 0, s.esum, 1.0), 1.0)
        kept = jnp.clip(kept, _KEPT_MIN, 1e3)
        # (one local error enters the carried error whole: never more than what is left)
        allowed = jnp.minimum(left * h / (kept * jnp.maximum(t[-1] - s.t, h)), left)
        allowed = jnp.maximum(allowed, _ROUNDING * _rms_hat(weights, v_new))
        finite = jnp.isfinite(err) & jnp.all(jnp.isfinite(v_new))
        accept = finite & (err <= allowed)
        g_new = dg + e
        t_new = jnp.where(landing, target, s.t + h)
        tail, below = band_rms(v_new)
        grow_tail = tail > s.tail
        tail_max = jnp.where(grow_tail, tail, s.tail)
        below_at = jnp.where(grow_tail, below, s.below)
        unresolved = SPACE_SAFETY * tail > 0.5 * tol_of(v_new)

        # step size for the next attempt (error per unit step: err ~ h^(p+1), allowed ~ h)
        ratio = jnp.where(finite & (err > 0), allowed / jnp.where(err > 0, err, 1.0), 5.0**order)
        factor = jnp.clip(0.9 * ratio ** (1.0 / order), 0.2, 5.0)
        factor = jnp.where(finite, factor, 0.2)
        # a small increase keeps the step (and its coefficients)
        factor = jnp.where((factor >= 1) & (factor < _GROW), 1.0, factor)
        h_next = h * factor

        save = accept & landing
        i = s.i

        def store(bufs):
            frames, gerr, tails, belows = bufs
            return (frames.at[i].set(grid.ifft(v_new)[sub]), gerr.at[i].set(sub_rms(g_new)),
                    tails.at[i].set(tail_max), belows.at[i].set(below_at))

        frames, gerr, tails, belows = lax.cond(save, store, lambda b: b, (s.frames, s.gerr, s.tails, s.belows))
        accepted = s.accepted + accept
        rejected = s.rejected + (~accept)
        streak = jnp.where(accept, 0, s.streak + 1)
        status = jnp.where(accept & (i + 1 >= n_save) & landing, _Status.DONE, _Status.RUNNING)
        status = jnp.where(accept & unresolved, _Status.UNRESOLVED, status)
        status = jnp.where(~finite & (streak > 8), _Status.NONFINITE, status)
        status = jnp.where(h_next < 1e-13 * (jnp.abs(s.t) + span), _Status.STEP_COLLAPSE, status)
        status = jnp.where(streak > _MAX_CONSECUTIVE_REJECTS, _Status.STEP_COLLAPSE, status)
        status = jnp.where((status == _Status.RUNNING) & (accepted + rejected >= max_steps), _Status.MAX_STEPS,
                           status)
        return dataclasses.replace(
            s, hc=h, c_full=c_full, c_half=c_half, frames=frames, gerr=gerr, tails=tails, belows=belows,
            tol=jnp.where(accept, tol_of(v_new), s.tol), t=jnp.where(accept, t_new, s.t),
            v=jnp.where(accept, v_new, v), g=jnp.where(accept, g_new, s.g), esum=jnp.where(accept, s.esum + err, s.esum),
            tail=jnp.where(accept, tail_max, s.tail), below=jnp.where(accept, below_at, s.below),
            i=jnp.where(save, i + 1, i), h=h_next, accepted=accepted, rejected=rejected,
            nfev=s.nfev + 3 * integrator.evaluations + 2,  # three steps per attempt: whole, two halves
            streak=streak, status=status)

    return lax.while_loop(lambda s: s.status == _Status.RUNNING, body, start).result()


def _check_tolerance(name, value):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _needed_grid(grid: Grid, tail: float, below: float, target: float) -> Grid:
    """The grid the tail estimate says is needed: extrapolate the decay from the band below to the top band."""
    if not (below > 0 and tail > 0 and tail < below and target > 0):
        return grid.refined(2) if tail <= 0 or tail < below else grid.refined(4)
    # one band = a quarter of the cut-off N/3; the tail falls by tail/below per quarter
    quarters = math.log(tail / target) / math.log(below / tail)
    factor = 1 + max(quarters, 0) / 3  # the top band spans 3/4..1 of the cut-off
    f = 2 ** math.ceil(math.log2(max(factor, 1.0001)))
    return grid.refined(int(f))


def solve(pde: SemiLinearPDE, u0=None, t=None, rtol: float = 1e-6, atol: float = 1e-10, refine: bool = True,
          method: str = "etdrk4", max_steps: int = 100_000, max_refinements: int = 2) -> Solution:
    """Integrate ``pde`` from ``u0`` at ``t[0]``, saving exactly at ``t``, to a stated tolerance.

    Args:
        pde: a semi-linear PDE (``Burgers``, ``KuramotoSivashinsky``, ...). A steady ``Darcy``
            problem is not integrated in time: solve it with ``Darcy.solve_steady(rtol, atol)``.
        u0: the initial state ``(*grid.shape, C)`` at time ``t[0]``.
        t: strictly increasing save times; ``t[0]`` is the initial time, so ``sol.u[0] == u0``.
        rtol, atol: the per-frame tolerance ``rtol * RMS(u[i]) + atol`` (RMS over grid points
            and channels). Good values: rtol 1e-4 .. 1e-10, atol about rtol times the smallest
            RMS of interest.
        refine: when the grid cannot resolve the solution to the tolerance, solve on a grid with
            twice (up to ``2**max_refinements`` times) the points per axis and return point values
            on the requested grid; with ``refine=False`` raise ``ResolutionError`` instead.
        method: ``"etdrk4"`` (default), ``"etdrk2"`` or ``"etdrk1"``.
        max_steps: the most step attempts (accepted + rejected) in one integration.
        max_refinements: how many times the grid may be doubled.

    Returns:
        a :class:`Solution` whose ``error[i]`` bounds the RMS error of ``u[i]`` and satisfies
        ``error[i] <= rtol * RMS(u[i]) + atol``.

    Raises:
        ValueError: a bad argument (named, with its value), or a ``pde`` that is not a
            ``SemiLinearPDE``.
        ResolutionError: the grid is too coarse and ``refine`` is off or exhausted.
        SolverDivergedError: a non-finite state, a collapsed step size or ``max_steps``
            attempts; the message gives the time reached.
    """
    if not isinstance(pde, SemiLinearPDE):
        raise ValueError(f"pde must be a semi-linear PDE (solvers.SemiLinearPDE), got {type(pde).__name__}; "
                         f"a steady Darcy problem is solved by Darcy.solve_steady(rtol, atol)")
    scheme(method)  # ValueError naming the methods for an unknown one
    _check_tolerance("rtol", rtol)
    _check_tolerance("atol", atol)
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol must not both be 0")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not isinstance(max_refinements, (int, np.integer)) or max_refinements < 0:
        raise ValueError(f"max_refinements must be a non-negative integer, got {max_refinements!r}")
    if u0 is None:
        raise ValueError("u0 must be given for a time-dependent PDE")
    pde.check_state(u0, "u0")
    u0 = np.asarray(u0, dtype=np.float64)
    if not np.all(np.isfinite(u0)):
        raise ValueError("u0 must be finite, got non-finite values")
    if t is None:
        raise ValueError("t must be given (the save times, t[0] the initial time)")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"t must be a 1-D array of save times, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"t must be finite, got {t}")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"t must be strictly increasing, got {t}")

    start = time.perf_counter()
    grid = pde.grid
    span = float(t[-1] - t[0]) if t.size > 1 else 1.0
    stats = dict(accepted=0, rejected=0, nfev=0, integrations=0, refinements=0)
    level = 0
    while True:
        stride = 2**level
        solve_grid = grid.refined(stride) if level else grid
        fine_pde = pde.with_grid(solve_grid) if level else pde
        fine_u0 = resample(jnp.asarray(u0), grid, solve_grid) if level else jnp.asarray(u0)
        scale = 1.0
        for _ in range(_REINTEGRATIONS + 1):
            out = _integrate(fine_pde, fine_u0, jnp.asarray(t), rtol, atol, scale, span / 100, max_steps,
                             method=method, stride=stride)
            out = jax.device_get(out)
            stats["accepted"] += int(out.accepted)
            stats["rejected"] += int(out.rejected)
            stats["nfev"] += int(out.nfev)
            stats["integrations"] += 1
            status = _Status(int(out.status))
            if status in (_Status.NONFINITE, _Status.STEP_COLLAPSE, _Status.MAX_STEPS):
                why = {_Status.NONFINITE: "the state became non-finite",
                       _Status.STEP_COLLAPSE: "the step size collapsed (repeated rejections)",
                       _Status.MAX_STEPS: f"max_steps={max_steps} step attempts were used"}[status]
                raise SolverDivergedError(
                    f"{type(pde).__name__} solve stopped at t={float(out.t):.6g} of {float(t[-1]):.6g}: "
                    f"{why}; the solution may blow up, or try a finer grid or a larger max_steps")
            u = np.asarray(out.frames)
            rms_u = np.sqrt(np.mean(u**2, axis=tuple(range(1, u.ndim))))
            tol = rtol * rms_u + atol
            # the fine-grid tail RMS bounds the RMS over the sub-sampled points up to sqrt(stride^d)
            space = SPACE_SAFETY * np.asarray(out.tails) * math.sqrt(stride**grid.ndim)
            post_check = status != _Status.UNRESOLVED
            if not post_check:
                break
            time_err = TIME_SAFETY * np.asarray(out.gerr)
            space = np.maximum.accumulate(space)
            error = time_err + space
            if np.all(error <= tol):
                stats.update(wall_time=time.perf_counter() - start, time_error=time_err, space_error=space)
                return Solution(u=jnp.asarray(u), t=jnp.asarray(t), error=jnp.asarray(error), rtol=float(rtol),
                                atol=float(atol), grid=grid, solve_grid=solve_grid, stats=stats)
            if np.any(space > 0.5 * tol):
                break
            # the propagated global error outgrew its half of the budget: integrate again, tighter
            excess = np.max(time_err / (tol - space))
            scale = scale / (1.5 * excess)
            # the largest local error then allowed (one step per save interval, most lenient frame)
            rel = np.max(tol / np.maximum(rms_u, np.finfo(np.float64).tiny))
            if scale * 0.5 * rel * float(np.max(np.diff(t))) / span < _ROUNDING:
                raise SolverDivergedError(
                    f"{type(pde).__name__} solve: the propagated time error grew to {np.max(time_err / tol):.3g} "
                    f"x the tolerance; meeting it would need local errors below rounding (error growth too "
                    f"fast); loosen rtol/atol or shorten t")
        else:
            raise SolverDivergedError(
                f"{type(pde).__name__} solve could not bring the global time error under the tolerance "
                f"after {_REINTEGRATIONS} re-integrations (error growth too fast); loosen rtol/atol or "
                f"shorten t")
        # unresolved on solve_grid: report the quantities that were compared, estimate > limit
        if post_check:
            # the frames' space error (the running maximum of the tail, times the safety and sub-sampling
            # factors) against half the frame's tolerance
            worst = int(np.argmax(space / tol))
            factor = SPACE_SAFETY * math.sqrt(stride**grid.ndim)
            tail_val, below_val = float(out.tails[worst]), float(out.belows[worst])
            estimate, limit, t_at = float(space[worst]), 0.5 * float(tol[worst]), float(t[worst])
        else:
            # the in-loop check: SPACE_SAFETY * tail of the accepted step against half its tolerance
            factor = SPACE_SAFETY
            tail_val, below_val = float(out.tail), float(out.below)
            estimate, limit, t_at = factor * tail_val, 0.5 * float(out.tol), float(out.t)
        if not refine or level >= max_refinements:
            need = _needed_grid(solve_grid, tail_val, below_val, limit / factor)
            reason = "refine=False" if not refine else f"max_refinements={max_refinements} reached"
            raise ResolutionError(
                f"grid {solve_grid.shape} (box {solve_grid.length}) cannot resolve the solution to the "
                f"tolerance ({reason}): the space error estimate {estimate:.3g} near t={t_at:.6g} "
                f"({factor:.3g} x the tail energy, the RMS of the top modes, {tail_val:.3g}) exceeds its "
                f"half of the tolerance, {limit:.3g}; it would need about grid shape {need.shape}")
        level += 1
        stats["refinements"] = level
