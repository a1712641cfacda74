"""``solve``: adaptive ETDRK integration with an error bound for every saved frame.

Time error: a global Richardson estimate. Two trajectories are integrated
side by side with the same step sequence: the fine one ``v`` (the answer)
takes two steps of ``h/2`` where its coarse companion ``w`` takes one step of
``h``, each from its own state. For a method of order ``p`` the global error
of a run with steps ``h_j`` has the asymptotic expansion ``h^p e(t)`` (Hairer,
Norsett & Wanner, Solving ODEs I, II.8), ``e`` solving the linearised
dynamics driven by the local error, so ``d = (v - w) / (2^p - 1)`` estimates
the global error of ``v`` itself, with every amplification (Kuramoto-
Sivashinsky), damping (diffusion) and cancellation (a travelling soliton)
that the true error sees, and without linearising anything. The time part
of ``error[i]`` is ``TIME_SAFETY * RMS(d(t_i))`` plus one unit roundoff of
``RMS(u)`` per fine step taken (``d`` divides the rounding of the two
trajectories by ``2^p - 1`` too; this term keeps a tolerance near rounding,
rtol 1e-14, from being reported as met). A step ``h`` costs three
ETDRK steps (two halves and the companion's whole), against a whole step with
its ``jax.jvp`` plus two halves (about 4.5 steps) when the global error was
carried along the tangent of a step-doubling estimate. Steps are attempted in
chunks of up to ``_CHUNK`` (8) steps of one size, accepted or rejected together,
so the control's own work is paid once per chunk.

Step control aims at the tolerance: the budget for ``RMS(d)`` is ``_AIM`` of
the time error's half of the tolerance, divided by ``TIME_SAFETY``. Each
chunk's share of ``d`` is ``d_new`` less ``d_old`` carried over the chunk by
the exponential-Euler tangent at ``v`` (one linearised evaluation of ``N``;
only a predictor for step control, never accumulated, so its instability for
advection at large steps does not compound). What the carried error has
not used of the budget is spread over the time left (error per unit step),
divided by ``kept``, the ratio of the carried error to the sum of the step
errors committed (more than 1: growth, e.g. chaos; less: cancellation or
decay, credited down to ``_KEPT_MIN`` since the global error is measured). A
chunk is accepted when its share is within its allowance. The step size only
grows by ``_GROW`` or more at a time, so the coefficients (one to five steps'
work) are recomputed only when it changes.

Space error. The spectral truncation error is estimated from the energy in
the highest resolved modes: the RMS of the modes above 3/4 of the 2/3
dealiasing cut-off on any axis (``tail``), maximised over the ends of all
accepted chunks up to ``t_i``, times ``SPACE_SAFETY``. It must stay below half the tolerance;
otherwise the grid is refined (``refine=True``) or ``ResolutionError`` is
raised.

The promise checked before returning: ``error[i] <= rtol * RMS(u[i]) + atol``
for every frame. When the global error exceeds its half of the budget
(growth the controller did not foresee), the whole interval is integrated
again with a proportionally smaller budget (at most ``_REINTEGRATIONS``
times). All stepping runs in one jitted ``lax.while_loop`` (``_integrate``:
its state a ``_Loop``, its result an ``_Integration`` whose ``_Status`` says
why it stopped); only the decisions between whole integrations happen on the
host. The scheme, its order ``p`` and its evaluations of ``N`` per step, is
the one ``_etdrk.METHODS`` names.

Caveats, measured. The Richardson factor ``2^p - 1`` assumes the classical
order; where stiff modes carry energy ETDRK4's effective order drops towards 3
(Hochbruck & Ostermann 2005), so ``d`` can underestimate the error of ``v``
by up to about 2x: ``TIME_SAFETY = 2`` covers that. On exact solutions
(Cole-Hopf Burgers nu = 0.1, 0.05; KdV soliton; rtol 1e-6, 1e-9) ``RMS(d)``
is 0.9x to 1.4x the true error, so the reported bound is 1.8x to 2.8x it.
The cost floor this leaves against the cheapest fixed-step run that meets
the tolerance (which has a true error near 1x the tolerance): 1.5x for the
companion, times ``(0.95 / true-error fraction)^(1/4)`` in steps (with the
true error at 0.06 to 0.1 of the tolerance, as ``_AIM`` gives: 1.8x to 2.0x),
so 2.7x to 3x; measured 2.1x to 3.9x in step work, 2.3x to 6.6x in wall time
(coefficients, control and host work on grids of 256 to 512 points;
``byai bench adaptive``). A coarse companion at 3h would cost 1.33x but
underestimate by 80/26 = 3.1x at order 3, needing a larger safety factor that
gives the saving back.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Complex, Float, Int

from ._etdrk import METHODS, _mul, scheme
from ._grid import Grid, resample
from ._errors import ResolutionError, SolverDivergedError
from ._pde import SemiLinearPDE, Solution, pytree_dataclass, static_field

TIME_SAFETY = 2.0  # reported time error = TIME_SAFETY * RMS(global error estimate d)
SPACE_SAFETY = 2.0  # reported space error = SPACE_SAFETY * RMS(upper band of resolved modes)
# the time error bound aimed at, as a fraction of its half of the tolerance. Measured on Cole-Hopf Burgers
# (nu = 0.1, rtol 1e-8, 256 points): 1.0 put the true error at 0.3 of the tolerance, 0.5 at 0.1
_AIM = 0.5
_BUDGET_FLOOR = 0.1  # the least share of the budget a step is allowed when the carried error has used it up
# the least credit taken for step errors that cancel or decay in the measured global error (the KdV soliton
# keeps ~2% of their sum): the global error is measured, not predicted, so the credit cannot make the bound
# dishonest; a late growth it did not foresee costs a second integration
_KEPT_MIN = 0.01
_STEP_SAFETY = 0.95  # the next step is this fraction of the one the error model asks for
# steps of size h per attempt (a chunk): the step control's own work (reductions, selections, loop state:
# about two steps' worth on 1-D grids of a few hundred points, measured) is paid once per chunk. 8 rather
# than 4: 1-D KS (256 points, rtol 1e-6, 96 samples) 26 instead of 31 ms per solve and 11.9 instead of 14.1
# ms per sample batched, with about as many attempts (285 vs 292) and the same largest error / tolerance
_CHUNK = 8
_UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)
_FIRST_GROW = 100.0  # the most the first accepted step lets the step grow (the initial step is a guess)
_GROW = 1.1  # a step grows only when it may grow by this factor at least (new coefficients cost 1-5 steps)
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
    sub-sampled by ``stride``; ``gerr[i]``, the RMS of the global error
    estimate ``d`` on those points; ``tails[i]``, the running maximum of the top
    band's RMS, and ``belows[i]``, the RMS of the band below it where that
    maximum occurred. At the end: the time reached ``t``, the counters (``ncoef``:
    coefficient computations), the
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
    ncoef: Int[Array, ""]
    status: Int[Array, ""]
    tail: Float[Array, ""]
    below: Float[Array, ""]
    tol: Float[Array, ""]


@pytree_dataclass
class _Loop:
    """The adaptive loop's state between step attempts: the last accepted state and the outputs so far.

    ``t``, ``v`` (Fourier space), ``w`` (its coarse companion, Fourier space),
    ``esum`` (the sum of the step errors committed), ``tol`` (its tolerance),
    ``tail`` and ``below`` (running maximum of the top band, and the band below
    at it) describe the last accepted step;
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
    w: Complex[Array, "*k c"]
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
    ncoef: Int[Array, ""]
    streak: Int[Array, ""]
    status: Int[Array, ""]

    def result(self) -> _Integration:
        return _Integration(**{f.name: getattr(self, f.name) for f in dataclasses.fields(_Integration)})


@pytree_dataclass
class _Stepper:
    """One sample's adaptive stepping, in the pieces the loop body is made of.

    Built inside a jitted integration from the sample's ``pde`` (its symbol ``lin``
    computed once), save times ``t``, tolerance and budget ``scale``: :meth:`start`
    gives the first loop state, :meth:`propose` the step to attempt next and whether
    its coefficients must be recomputed, :meth:`coefficients` computes them and
    :meth:`advance` attempts the step. ``_integrate`` runs them for one sample,
    ``_run_pool`` for a group of samples under ``jax.vmap``, each sample's
    coefficients computed for it alone when its step changes.
    """

    pde: SemiLinearPDE
    lin: Complex[Array, "*k c"]
    t: Float[Array, " n"]
    rtol: Float[Array, ""]
    atol: Float[Array, ""]
    scale: Float[Array, ""]
    max_steps: Int[Array, ""]
    method: str = static_field()
    stride: int = static_field()
    lanes: bool = static_field()  # run under jax.vmap (a batch of samples)

    @classmethod
    def build(cls, pde, t, rtol, atol, scale, max_steps, method, stride, lanes=False) -> "_Stepper":
        return cls(pde=pde, lin=pde.linear(), t=t, rtol=rtol, atol=atol, scale=scale, max_steps=max_steps,
                   method=method, stride=stride, lanes=lanes)

    @property
    def _grid(self) -> Grid:
        return self.pde.grid

    @property
    def _weights(self):
        return jnp.asarray(_parseval_weights(self._grid))

    @property
    def _sub(self):
        return tuple(slice(None, None, self.stride) for _ in range(self._grid.ndim))

    def _tol_of(self, v):
        return self.rtol * _rms_hat(self._weights, v) + self.atol

    def _band_rms(self, v):
        """The RMS of ``v``, of its top band and of the band below it, from one pass over its power."""
        top, below = (jnp.asarray(b, dtype=jnp.float64)[..., None] for b in _bands(self._grid))
        power = self._weights[..., None] * (v.real**2 + v.imag**2) / v.shape[-1]
        return tuple(jnp.sqrt(jnp.sum(power * m)) for m in (1.0, top, below))

    def _sub_rms(self, v_hat):
        x = self._grid.ifft(v_hat)[self._sub]
        return jnp.sqrt(jnp.mean(x**2))

    def coefficients(self, h):
        """The scheme's coefficients for the whole step ``h`` and its halves."""
        integrator = METHODS[self.method]
        return integrator.coefficients(self.lin, h), integrator.coefficients(self.lin, h / 2)

    def start(self, u0, h0) -> _Loop:
        t, grid, sub = self.t, self._grid, self._sub
        n_save = t.shape[0]
        v0 = grid.fft(u0)
        _, tail0, below0 = self._band_rms(v0)
        status0 = jnp.where(SPACE_SAFETY * tail0 > 0.5 * self._tol_of(v0), _Status.UNRESOLVED,
                            jnp.where(n_save > 1, _Status.RUNNING, _Status.DONE))
        h_start = jnp.minimum(jnp.asarray(h0, dtype=jnp.float64), t[jnp.minimum(1, n_save - 1)] - t[0])
        c_full, c_half = self.coefficients(h_start)
        return _Loop(t=t[0], h=h_start, hc=h_start, c_full=c_full, c_half=c_half, v=v0, w=v0,
                     esum=jnp.asarray(0.0), i=jnp.asarray(1),
                     frames=jnp.zeros((n_save, *u0[sub].shape), u0.dtype).at[0].set(u0[sub]),
                     gerr=jnp.zeros(n_save), tails=jnp.zeros(n_save).at[0].set(tail0),
                     belows=jnp.zeros(n_save).at[0].set(below0), tail=tail0, below=below0, tol=self._tol_of(v0),
                     accepted=jnp.asarray(0), rejected=jnp.asarray(0), nfev=jnp.asarray(0), ncoef=jnp.asarray(1),
                     streak=jnp.asarray(0), status=status0)

    def propose(self, s: _Loop):
        """The step to attempt and whether it differs from the one the carried coefficients are for."""
        remaining = self.t[s.i] - s.t
        # split what is left of the save interval into equal steps no longer than the wanted h, so the
        # last one lands exactly on the save time without a sliver step
        n_left = jnp.maximum(jnp.ceil(remaining / s.h * (1 - 1e-12)), 1.0)
        h = remaining / n_left
        # the coefficients cost one to five steps (complex symbols: 32 contour points per mode, measured),
        # so they are recomputed only when the step size changes; between changes h = remaining / n_left
        # reproduces s.hc up to rounding
        fresh = jnp.abs(h - s.hc) > 1e-12 * s.hc
        return jnp.where(fresh, h, s.hc), fresh

    def advance(self, s: _Loop, h, c_full, c_half, live=True, fresh=False) -> _Loop:
        """Attempt a chunk of steps ``h`` (coefficients ``c_full``, ``c_half``) from ``s``: the next loop state
        (``s`` itself where ``live`` is false: a stopped lane of a batch)."""
        t, grid, sub, weights = self.t, self._grid, self._sub, self._weights
        integrator = METHODS[self.method]
        order = integrator.order
        n_save = t.shape[0]
        span = t[-1] - t[0]
        target = t[s.i]
        # a chunk of up to _CHUNK steps of size h, ending at the save time when it is that close; until a
        # first chunk is accepted, one step (h0 is a guess: the first error sizes the step, growth up to _FIRST_GROW)
        first = s.accepted == 0
        chunk = jnp.where(first, 1.0, _CHUNK)
        n_left = jnp.maximum(jnp.ceil((target - s.t) / s.h * (1 - 1e-12)), 1.0)
        landing = n_left <= chunk
        k = jnp.minimum(n_left, chunk).astype(jnp.int32)

        def etd_step(c, v):
            return integrator.step(self.pde.nonlinear, c, v)

        v, w = s.v, s.w
        d_old = (v - w) / (2**order - 1)
        # each step: the fine trajectory takes two half steps, its coarse companion one whole step from its own
        # state; their difference over 2^p - 1 estimates the global error of the fine one (module docstring).
        # Alongside, d_old is carried over the chunk by the exponential-Euler tangent at the fine state (one
        # linearised evaluation of N per step), so that what is left of d_new is the chunk's own error, for
        # step control only (with the linear part alone the advected part of d_old counted as new error and,
        # on Kolmogorov flow, shrank the step without end)
        e_h, phi_h = c_full["E"], integrator.h_phi1(c_full)

        # the fine trajectory's first half step and the companion's whole step are independent. One sample's
        # steps take them as one batch of two: a third fewer transform calls, whose fixed cost dominates on
        # small grids (1-D KS, 256 points: 36 -> 31 ms per solve, same bits, measured); a batch of lanes is
        # already one call per transform, and pairing there measured no faster and changed the last bits
        c_pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), c_half, c_full)

        def first_steps(vv, ww):
            if self.lanes:
                return etd_step(c_half, vv), etd_step(c_full, ww)
            return jax.vmap(etd_step)(c_pair, jnp.stack([vv, ww]))

        def one(_, state):
            vv, ww, m = state
            _, dn = jax.jvp(self.pde.nonlinear, (vv,), (m,))
            half, w_next = first_steps(vv, ww)
            return etd_step(c_half, half), w_next, _mul(e_h, m) + _mul(phi_h, dn)

        v_new, w_new, moved = lax.fori_loop(0, k, one, (v, w, d_old))
        d_new = (v_new - w_new) / (2**order - 1)
        err = _rms_hat(weights, d_new - moved)
        # the time budget: TIME_SAFETY * RMS(d) aims at AIM of its half of the tolerance; what the carried
        # error has not used yet is spread over the time left (error per unit step of the remaining budget)
        rms_new, tail, below = self._band_rms(v_new)
        tol_new = self.rtol * rms_new + self.atol
        budget = self.scale * _AIM * 0.5 * tol_new / TIME_SAFETY
        carried = _rms_hat(weights, moved)
        left = jnp.maximum(budget - carried, _BUDGET_FLOOR * budget)
        # how much of the step errors committed so far the carried error holds: 1 when they add up,
        # less when they cancel or decay (a travelling soliton: ~0.02, measured; credited down to
        # _KEPT_MIN), more when they grow (chaos: the step errors shrink accordingly)
        kept = jnp.where(s.esum > 0, carried / jnp.where(s.esum > 0, s.esum, 1.0), 1.0)
        kept = jnp.clip(kept, _KEPT_MIN, 1e3)
        # (one step error enters the carried error whole: never more than what is left)
        allowed = jnp.minimum(left * k * h / (kept * jnp.maximum(t[-1] - s.t, k * h)), left)
        allowed = jnp.maximum(allowed, _ROUNDING * rms_new)
        finite = jnp.isfinite(err)  # a non-finite v_new or w_new makes d_new, and so err, non-finite
        accept = finite & (err <= allowed)
        t_new = jnp.where(landing, target, s.t + k * h)
        grow_tail = tail > s.tail
        tail_max = jnp.where(grow_tail, tail, s.tail)
        below_at = jnp.where(grow_tail, below, s.below)
        unresolved = SPACE_SAFETY * tail > 0.5 * tol_new

        # step size for the next attempt (error per unit step: err ~ h^(p+1), allowed ~ h)
        ratio = jnp.where(finite & (err > 0), allowed / jnp.where(err > 0, err, 1.0), 5.0**order)
        factor = jnp.clip(_STEP_SAFETY * ratio ** (1.0 / order), 0.2, jnp.where(first, _FIRST_GROW, 5.0))
        factor = jnp.where(finite, factor, 0.2)
        # a small increase keeps the step (and its coefficients)
        factor = jnp.where((factor >= 1) & (factor < _GROW), 1.0, factor)
        h_next = h * factor

        save = accept & landing & live
        i = s.i
        # the frame's time error over TIME_SAFETY: RMS(d), plus a unit roundoff of RMS(u) per fine step taken
        # (rounding, which d divides by 2^p - 1 like any difference of the two trajectories, taken whole)
        fine_steps = 2 * (s.accepted + k)
        row = (lambda: grid.ifft(v_new)[sub],
               lambda: self._sub_rms(d_new) + _UNIT_ROUNDOFF * fine_steps * rms_new / TIME_SAFETY,
               lambda: tail_max, lambda: below_at)
        bufs = (s.frames, s.gerr, s.tails, s.belows)
        if self.lanes:
            # under vmap a cond runs both branches and selects whole buffers: write one row either way
            frames, gerr, tails, belows = (b.at[i].set(jnp.where(save, r(), b[i])) for b, r in zip(bufs, row))
        else:
            frames, gerr, tails, belows = lax.cond(save, lambda b: tuple(x.at[i].set(r()) for x, r in zip(b, row)),
                                                   lambda b: b, bufs)
        accepted = s.accepted + accept * k
        rejected = s.rejected + (~accept) * k
        streak = jnp.where(accept, 0, s.streak + 1)
        status = jnp.where(accept & (i + 1 >= n_save) & landing, _Status.DONE, _Status.RUNNING)
        status = jnp.where(accept & unresolved, _Status.UNRESOLVED, status)
        status = jnp.where(~finite & (streak > 8), _Status.NONFINITE, status)
        status = jnp.where(h_next < 1e-13 * (jnp.abs(s.t) + span), _Status.STEP_COLLAPSE, status)
        status = jnp.where(streak > _MAX_CONSECUTIVE_REJECTS, _Status.STEP_COLLAPSE, status)
        status = jnp.where((status == _Status.RUNNING) & (accepted + rejected >= self.max_steps), _Status.MAX_STEPS,
                           status)
        step = dict(
            hc=h, c_full=c_full, c_half=c_half,
            tol=jnp.where(accept, tol_new, s.tol), t=jnp.where(accept, t_new, s.t),
            v=jnp.where(accept, v_new, v), w=jnp.where(accept, w_new, w),
            esum=jnp.where(accept, s.esum + err, s.esum),
            tail=jnp.where(accept, tail_max, s.tail), below=jnp.where(accept, below_at, s.below),
            i=jnp.where(save, i + 1, i), h=h_next, accepted=accepted, rejected=rejected,
            nfev=s.nfev + 3 * integrator.evaluations * k,  # three steps per step h: two halves, the companion's whole
            ncoef=s.ncoef + fresh, streak=streak, status=status)
        if self.lanes:  # the saved rows are already masked; a whole-buffer select per attempt would cost more
            step = {k: jax.tree.map(lambda a, b: jnp.where(live, a, b), v, getattr(s, k)) for k, v in step.items()}
        return dataclasses.replace(s, frames=frames, gerr=gerr, tails=tails, belows=belows, **step)


@partial(jax.jit, static_argnames=("method", "stride"))
def _integrate(pde, u0, t, rtol, atol, scale, h0, max_steps, *, method: str, stride: int) -> _Integration:
    """One adaptive integration of ``pde`` from ``u0`` at ``t[0]`` over ``t``, on ``pde.grid``."""
    st = _Stepper.build(pde, t, rtol, atol, scale, max_steps, method, stride)

    def body(s: _Loop) -> _Loop:
        h, fresh = st.propose(s)
        c_full, c_half = lax.cond(fresh, lambda: st.coefficients(h), lambda: (s.c_full, s.c_half))
        return st.advance(s, h, c_full, c_half, fresh=fresh)

    return lax.while_loop(lambda s: s.status == _Status.RUNNING, body, st.start(u0, h0)).result()


def _lanes(leaves, t, rtol, atol, scale, max_steps, treedef, method, stride) -> _Stepper:
    """The steppers of a group of samples (a leading lane axis): PDE ``leaves`` of ``treedef``, budget ``scale``."""
    def build(lv, sc):
        return _Stepper.build(jax.tree.unflatten(treedef, lv), t, rtol, atol, sc, max_steps, method, stride,
                              lanes=True)

    return jax.vmap(build)(leaves, scale)


def _running(s: _Loop):
    return s.status == _Status.RUNNING


def _strong(tree):
    """``tree`` without weak types, so every lane state has one signature (no recompilation between calls)."""
    return jax.tree.map(lambda x: lax.convert_element_type(x, x.dtype), tree)


@pytree_dataclass
class _Lanes:
    """A pool's lanes between calls of :func:`_run_pool`: each lane's stepper and loop state, and the sample it
    holds (``idx``, the caller's sample id; -1: none). A lane that holds a sample and has stopped waits for
    a free slot in the output."""

    st: _Stepper
    s: _Loop
    idx: Int[Array, " W"]


def _empty_lanes(leaves, u0, t, rtol, atol, scale, h0, max_steps, *, treedef, method: str, stride: int) -> _Lanes:
    """``W`` lanes holding no sample, stopped: the steppers of ``W`` inputs, loop states of zeros (their shapes
    traced, no program compiled). A lane that holds no sample is never live, so its state is never used."""
    st = _lanes(leaves, t, rtol, atol, scale, max_steps, treedef, method, stride)
    s = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(jax.vmap(lambda st, u: st.start(u, h0)),
                                                                           st, u0))
    s = dataclasses.replace(s, status=jnp.full(s.status.shape, _Status.DONE, s.status.dtype))
    return _strong(_Lanes(st=st, s=s, idx=jnp.full(u0.shape[0], -1, jnp.int32)))


def _to_store(lanes: _Lanes):
    """The lanes whose sample has stopped and is not stored yet."""
    return (lanes.idx >= 0) & ~_running(lanes.s)


def _store_and_load(lanes: _Lanes, out, ids, n_out, used, leaves, u0, scale, sample_ids, n_in, t, rtol, atol, h0,
                    max_steps, treedef, method, stride):
    """Per lane: a stopped sample's integration goes to the next free output slot; an empty lane takes the
    next input. A sample's start is computed for its lane alone, as :func:`solve` computes it."""
    def per_lane(k, carry):
        lanes, out, ids, n_out, used = carry
        holding = lanes.idx[k] >= 0
        store = _to_store(lanes)[k] & (n_out < out.t.shape[0])
        slot = jnp.minimum(n_out, out.t.shape[0] - 1)
        out = lax.cond(store, lambda o: jax.tree.map(lambda a, b: a.at[slot].set(b[k]), o, lanes.s.result()),
                       lambda o: o, out)
        ids = ids.at[slot].set(jnp.where(store, lanes.idx[k], ids[slot]))
        n_out = n_out + store
        take = (~holding | store) & (used < n_in)
        src = jnp.minimum(used, n_in - 1)

        def load(lanes):
            pde = jax.tree.unflatten(treedef, [x[src] for x in leaves])
            st = _Stepper.build(pde, t, rtol, atol, scale[src], max_steps, method, stride, lanes=True)
            s = st.start(u0[src], h0)
            return dataclasses.replace(lanes, st=jax.tree.map(lambda a, b: a.at[k].set(b), lanes.st, st),
                                       s=jax.tree.map(lambda a, b: a.at[k].set(b), lanes.s, s))

        lanes = lax.cond(take, load, lambda lanes: lanes, lanes)
        idx = jnp.where(take, sample_ids[src], jnp.where(store, -1, lanes.idx[k]))
        lanes = dataclasses.replace(lanes, idx=lanes.idx.at[k].set(idx))
        return lanes, out, ids, n_out, used + take

    return lax.fori_loop(0, lanes.idx.shape[0], per_lane, (lanes, out, ids, n_out, used))


@partial(jax.jit, static_argnames=("treedef", "method", "stride"))
def _run_pool(lanes: _Lanes, leaves, u0, scale, sample_ids, n_in, last, t, rtol, atol, h0, max_steps, *, treedef,
              method: str, stride: int):
    """Run the lanes, loading the ``n_in`` inputs (``leaves``, ``u0``, ``scale``, ``sample_ids``; a leading axis
    of ``K``) as lanes free up, until the output's ``K`` slots are full, a lane is free and no input is left
    (unless ``last``: then until every lane has stopped), or no lane runs.

    Returns ``(lanes, out, ids, n_out, used)``: the lanes to pass to the next call, the stopped samples'
    integrations (``out``, an ``_Integration`` with a leading axis of ``K``, of which the first ``n_out``
    are filled, for the samples ``ids``) and the inputs loaded (the first ``used``). Each lane's arithmetic
    is its own (``jax.vmap``): a stopped lane keeps its state, and a lane's coefficients are computed for it
    alone, when its step changes. So a sample's result depends on its own inputs alone, not on the other
    lanes, nor on how its integration is split between calls.
    """
    size = u0.shape[0]
    template = jax.tree.map(lambda x: jnp.zeros((size, *x.shape[1:]), x.dtype), lanes.s.result())
    args = (leaves, u0, scale, sample_ids, n_in, t, rtol, atol, h0, max_steps, treedef, method, stride)
    zero = jnp.asarray(0, jnp.int32)

    def to_load(lanes, used):  # lanes free for an input that is there
        return (lanes.idx < 0) & (used < n_in)

    def body(c):
        # first what the lanes' stops (or the call's start) left to do: store stopped samples, load inputs
        # (here, not also before the loop: one copy of this code in the compiled program, measured to compile
        # faster)
        lanes, _, _, _, used = c
        c = lax.cond(jnp.any(_to_store(lanes) | to_load(lanes, used)), lambda c: _store_and_load(*c, *args),
                     lambda c: c, c)
        lanes, out, ids, n_out, used = c
        st, s = lanes.st, lanes.s
        live = _running(s)
        h, fresh = jax.vmap(_Stepper.propose)(st, s)
        fresh = fresh & live

        def lane_coefficients(k, c):
            # lane k's coefficients for its new step, computed for that lane alone: the lanes change step at
            # different attempts, and computing every lane's whenever one changed took a third of the batched
            # solve's time (1-D KS, 256 points, 8 lanes: 105 -> 70 ms per group, measured)
            def fill(c):
                ck = jax.tree.map(lambda x: x[k], st).coefficients(h[k])
                return jax.tree.map(lambda a, b: a.at[k].set(b), c, ck)

            return lax.cond(fresh[k], fill, lambda c: c, c)

        c_full, c_half = lax.fori_loop(0, fresh.shape[0], lane_coefficients, (s.c_full, s.c_half))
        s = jax.vmap(_Stepper.advance)(st, s, h, c_full, c_half, live, fresh)
        return dataclasses.replace(lanes, s=s), out, ids, n_out, used

    def cond(c):
        lanes, _, _, n_out, used = c
        store, load = jnp.any(_to_store(lanes)), jnp.any(to_load(lanes, used))
        full = store & (n_out >= size)  # the host must take the stored samples first
        starved = jnp.any(lanes.idx < 0) & ~load & ~last  # a free lane and no input left: the host must load more
        return (jnp.any(_running(lanes.s)) | store | load) & ~full & ~starved

    lanes, out, ids, n_out, used = lax.while_loop(cond, body, (lanes, template, jnp.full(size, -1, jnp.int32), zero,
                                                               zero))
    return _strong(lanes), out, ids, n_out, used


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


def _check_args(pde, rtol, atol, method, max_steps, max_refinements) -> None:
    """Refuse bad settings of ``solve`` / ``solve_batch`` (``ValueError`` naming them)."""
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


def _check_t(t) -> np.ndarray:
    """The save times as float64; ``ValueError`` unless a finite, strictly increasing 1-D array."""
    if t is None:
        raise ValueError("t must be given (the save times, t[0] the initial time)")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"t must be a 1-D array of save times, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"t must be finite, got {t}")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"t must be strictly increasing, got {t}")
    return t


def _check_u0(pde, u0, name="u0") -> np.ndarray:
    if u0 is None:
        raise ValueError(f"{name} must be given for a time-dependent PDE")
    pde.check_state(u0, name)
    u0 = np.asarray(u0, dtype=np.float64)
    if not np.all(np.isfinite(u0)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return u0


class _Plan:
    """One sample's decisions between whole integrations (on the host).

    Holds the grid level and budget scale of the next integration (:attr:`level`,
    :attr:`scale`, the sample's PDE and initial state on that grid) and judges a
    finished one (:meth:`after`): a :class:`Solution` when every frame meets its
    tolerance, an exception (returned, not raised) when the sample cannot be
    solved, or ``None`` when it must be integrated again (tighter, or on a finer grid).
    """

    def __init__(self, pde, u0, t, rtol, atol, refine, max_steps, max_refinements):
        self.pde, self.u0, self.t = pde, u0, t
        self.rtol, self.atol, self.refine = rtol, atol, refine
        self.max_steps, self.max_refinements = max_steps, max_refinements
        self.span = float(t[-1] - t[0]) if t.size > 1 else 1.0
        self.stats = dict(accepted=0, rejected=0, nfev=0, coefficients=0, integrations=0, refinements=0)
        self.started = time.perf_counter()
        self.level, self.scale, self.passes = 0, 1.0, 0
        self._at_level()

    def _at_level(self):
        grid = self.pde.grid
        self.stride = 2**self.level
        self.solve_grid = grid.refined(self.stride) if self.level else grid
        self.fine_pde = self.pde.with_grid(self.solve_grid) if self.level else self.pde
        self.fine_u0 = resample(jnp.asarray(self.u0), grid, self.solve_grid) if self.level else jnp.asarray(self.u0)

    def after(self, out: _Integration):
        """What the integration ``out`` (host arrays) means for this sample; see the class docstring."""
        pde, t, rtol, atol, grid, stride = self.pde, self.t, self.rtol, self.atol, self.pde.grid, self.stride
        stats = self.stats
        stats["accepted"] += int(out.accepted)
        stats["rejected"] += int(out.rejected)
        stats["nfev"] += int(out.nfev)
        stats["coefficients"] += int(out.ncoef)
        stats["integrations"] += 1
        status = _Status(int(out.status))
        if status in (_Status.NONFINITE, _Status.STEP_COLLAPSE, _Status.MAX_STEPS):
            why = {_Status.NONFINITE: "the state became non-finite",
                   _Status.STEP_COLLAPSE: "the step size collapsed (repeated rejections)",
                   _Status.MAX_STEPS: f"max_steps={self.max_steps} step attempts were used"}[status]
            return SolverDivergedError(
                f"{type(pde).__name__} solve stopped at t={float(out.t):.6g} of {float(t[-1]):.6g}: "
                f"{why}; the solution may blow up, or try a finer grid or a larger max_steps")
        u = np.asarray(out.frames)
        rms_u = np.sqrt(np.mean(u**2, axis=tuple(range(1, u.ndim))))
        tol = rtol * rms_u + atol
        # the fine-grid tail RMS bounds the RMS over the sub-sampled points up to sqrt(stride^d)
        space = SPACE_SAFETY * np.asarray(out.tails) * math.sqrt(stride**grid.ndim)
        post_check = status != _Status.UNRESOLVED
        if post_check:
            time_err = TIME_SAFETY * np.asarray(out.gerr)
            space = np.maximum.accumulate(space)
            error = time_err + space
            if np.all(error <= tol):
                stats.update(wall_time=time.perf_counter() - self.started, time_error=time_err, space_error=space)
                return Solution(u=jnp.asarray(u), t=jnp.asarray(t), error=jnp.asarray(error), rtol=float(rtol),
                                atol=float(atol), grid=grid, solve_grid=self.solve_grid, stats=stats)
            if not np.any(space > 0.5 * tol):
                # the global error outgrew its half of the budget: integrate again, tighter
                excess = np.max(time_err / (tol - space))
                self.scale = self.scale / (1.5 * excess)
                # the largest local error then allowed (one step per save interval, most lenient frame)
                rel = np.max(tol / np.maximum(rms_u, np.finfo(np.float64).tiny))
                if self.scale * 0.5 * rel * float(np.max(np.diff(t))) / self.span < _ROUNDING:
                    return SolverDivergedError(
                        f"{type(pde).__name__} solve: the global time error grew to "
                        f"{np.max(time_err / tol):.3g} x the tolerance; meeting it would need local errors below "
                        f"rounding (error growth too fast); loosen rtol/atol or shorten t")
                self.passes += 1
                if self.passes > _REINTEGRATIONS:
                    return SolverDivergedError(
                        f"{type(pde).__name__} solve could not bring the global time error under the tolerance "
                        f"after {_REINTEGRATIONS} re-integrations (error growth too fast); loosen rtol/atol or "
                        f"shorten t")
                return None
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
        if not self.refine or self.level >= self.max_refinements:
            need = _needed_grid(self.solve_grid, tail_val, below_val, limit / factor)
            reason = "refine=False" if not self.refine else f"max_refinements={self.max_refinements} reached"
            return ResolutionError(
                f"grid {self.solve_grid.shape} (box {self.solve_grid.length}) cannot resolve the solution to the "
                f"tolerance ({reason}): the space error estimate {estimate:.3g} near t={t_at:.6g} "
                f"({factor:.3g} x the tail energy, the RMS of the top modes, {tail_val:.3g}) exceeds its "
                f"half of the tolerance, {limit:.3g}; it would need about grid shape {need.shape}")
        self.level += 1
        stats["refinements"] = self.level
        self.scale, self.passes = 1.0, 0
        self._at_level()
        return None


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
    _check_args(pde, rtol, atol, method, max_steps, max_refinements)
    u0 = _check_u0(pde, u0)
    t = _check_t(t)
    plan = _Plan(pde, u0, t, rtol, atol, refine, max_steps, max_refinements)
    while True:
        result = plan.after(_integrate_alone(plan, t, rtol, atol, max_steps, method))
        if isinstance(result, Exception):
            raise result
        if result is not None:
            return result


def _integrate_alone(plan: _Plan, t, rtol, atol, max_steps, method) -> _Integration:
    """The plan's next integration, one sample by itself (host arrays)."""
    out = _integrate(plan.fine_pde, plan.fine_u0, jnp.asarray(t), rtol, atol, plan.scale, plan.span / 100,
                     max_steps, method=method, stride=plan.stride)
    return jax.device_get(out)


def lanes_for(grid: Grid) -> int:
    """Samples per compiled batched integration in :func:`solve_batch` on ``grid`` (the grid solved on).

    A transform call has a fixed cost of a few microseconds, about that of a transform of a
    thousand points, and on small grids that cost and the other per-operation costs dominate
    a step: lanes (samples side by side under ``jax.vmap``) share them. On larger grids lanes
    only add the work of the lanes that wait for the slowest one. Measured per sample on one
    core, against one sample at a time: 1-D Kuramoto-Sivashinsky at 256 points 8 lanes 2.8x
    faster, 1024 points 4 lanes 1.4x; 2-D Navier-Stokes at 64 x 64 8 lanes 2.2x slower and 2
    lanes 1.45x slower. So about 4096 points per transform call, at most 8 lanes; one lane is
    :func:`solve`'s own program. A function of the grid alone, so every sample of a grid is
    computed by the same program whatever the batch (a short group is padded with copies of
    one of its samples).
    """
    return int(min(8, max(1, 2 ** math.floor(math.log2(4096 / math.prod(grid.shape))))))


def solve_batch(pdes: Sequence[SemiLinearPDE], u0s, t=None, rtol: float = 1e-6, atol: float = 1e-10,
                refine: bool = True, method: str = "etdrk4", max_steps: int = 100_000,
                max_refinements: int = 2) -> list:
    """:func:`solve` for many samples at once: ``[Solution or exception]``, one per sample, in order.

    Sample ``j`` is ``pdes[j]`` (same class and grid for all; physics parameters may differ) from
    ``u0s[j]``, saved at the shared times ``t`` to the shared tolerance. The samples are integrated
    :func:`lanes_for` at a time under ``jax.vmap`` (each with its own step sizes, rejections and stopping
    time), and the decisions between integrations are each sample's own, as in :func:`solve`: a
    sample that must be integrated again (tighter, or on a finer grid) is, with others that must.
    A sample's result depends on its own inputs only, not on the batch, its position in it or the
    device; it meets the same promise as :func:`solve` (``error[i]`` bounds the RMS error of
    ``u[i]`` and is within ``rtol * RMS(u[i]) + atol``) but its last bits may differ from
    ``solve``'s, which compiles a program without the batch axis.

    Args:
        pdes: one semi-linear PDE per sample.
        u0s: the initial states ``(B, *grid.shape, C)``.
        t, rtol, atol, refine, method, max_steps, max_refinements: as in :func:`solve`.

    Returns:
        a list of length ``B``: a :class:`Solution`, or the ``ResolutionError`` /
        ``SolverDivergedError`` that :func:`solve` would raise for that sample (returned, not raised).

    Raises:
        ValueError: a bad argument, PDEs of different classes or grids, or ``len(pdes) != len(u0s)``.
    """
    results = [None] * len(pdes)
    for j, result in solve_batch_iter(pdes, u0s, t, rtol, atol, refine, method, max_steps, max_refinements):
        results[j] = result
    return results


def solve_batch_iter(pdes: Sequence[SemiLinearPDE], u0s, t=None, rtol: float = 1e-6, atol: float = 1e-10,
                     refine: bool = True, method: str = "etdrk4", max_steps: int = 100_000,
                     max_refinements: int = 2) -> Iterator[tuple[int, Solution | Exception]]:
    """:func:`solve_batch` as an iterator of ``(j, result)`` in the order the samples finish, so a caller can
    store each sample as soon as it is done. Arguments are checked before the first result."""
    pdes = list(pdes)
    if not pdes:
        raise ValueError("pdes must hold at least one PDE")
    for pde in pdes:
        _check_args(pde, rtol, atol, method, max_steps, max_refinements)
    first = pdes[0]
    for j, pde in enumerate(pdes):
        if type(pde) is not type(first) or pde.grid != first.grid:
            raise ValueError(f"pdes must share one class and grid: pdes[{j}] is {type(pde).__name__} on "
                             f"{pde.grid.shape}, pdes[0] {type(first).__name__} on {first.grid.shape}")
    if u0s is None or len(u0s) != len(pdes):
        raise ValueError(f"u0s must hold one initial state per PDE ({len(pdes)}), got "
                         f"{None if u0s is None else len(u0s)}")
    u0s = [_check_u0(pde, u0, f"u0s[{j}]") for j, (pde, u0) in enumerate(zip(pdes, u0s))]
    t = _check_t(t)
    return _solve_batch(pdes, u0s, t, rtol, atol, refine, method, max_steps, max_refinements)


def _solve_batch(pdes, u0s, t, rtol, atol, refine, method, max_steps, max_refinements, width=None):
    """The samples' plans, integrated level by level (grid), each level by a pool of ``width`` lanes
    (default: :func:`lanes_for` the level's grid)."""
    plans = [_Plan(pde, u0, t, rtol, atol, refine, max_steps, max_refinements) for pde, u0 in zip(pdes, u0s)]
    queues: dict[int, deque] = {0: deque(range(len(plans)))}
    while queues:
        level = min(queues)
        queue = queues.pop(level)
        lanes = width or lanes_for(plans[queue[0]].solve_grid)
        for j, out in _pool(plans, queue, t, rtol, atol, max_steps, method, lanes):
            result = plans[j].after(out)
            if result is not None:
                yield j, result
            elif plans[j].level == level:
                queue.append(j)  # integrate again, tighter: the pool takes it up
            else:
                queues.setdefault(plans[j].level, deque()).append(j)


def _pool(plans: list[_Plan], queue: deque, t, rtol, atol, max_steps, method, width):
    """Integrate the samples of ``queue`` (one grid level; it may grow meanwhile) ``width`` lanes at a time.

    A lane whose sample stops is loaded with the next sample of the queue on the device (:func:`_run_pool`),
    so the lanes stay busy however unequal the samples' step counts, and the stopped samples are handed
    back (``(j, integration)``, host arrays) about ``2 * width`` at a time. One lane is :func:`solve`'s
    program, one sample after another.
    """
    if width == 1:
        while queue:
            j = queue.popleft()
            yield j, _integrate_alone(plans[j], t, rtol, atol, max_steps, method)
        return
    # inputs and output slots per device call: a call returns after about `size` samples have stopped, so
    # the host's work between calls (fetching results, loading inputs) is paid once per `size` samples
    size = 2 * width
    first = plans[queue[0]]
    treedef = jax.tree.structure(first.fine_pde)
    t, h0 = jnp.asarray(t), first.span / 100
    static = dict(treedef=treedef, method=method, stride=first.stride)
    lanes, holding = None, False
    while queue or holding:
        batch = list(itertools.islice(queue, size))
        for j in batch:
            if (tdef := jax.tree.structure(plans[j].fine_pde)) != treedef:
                raise ValueError(f"pdes must share one structure: sample {j}'s PDE is {tdef}, not {treedef}")
        fill = [plans[j] for j in batch] + [first] * (size - len(batch))  # unused slots: copies of one sample
        leaves = [np.stack(xs) for xs in zip(*(jax.tree.leaves(p.fine_pde) for p in fill))]
        u0 = np.stack([np.asarray(p.fine_u0) for p in fill])
        scale = np.array([p.scale for p in fill], dtype=np.float64)
        ids = np.array(batch + [0] * (size - len(batch)), dtype=np.int32)
        if lanes is None:
            lanes = _empty_lanes([x[:width] for x in leaves], u0[:width], t, rtol, atol, scale[:width], h0,
                                 max_steps, **static)
        lanes, out, out_ids, n_out, used = _run_pool(lanes, leaves, u0, scale, ids, len(batch), len(queue) <= size,
                                                     t, rtol, atol, h0, max_steps, **static)
        n_out, used = int(n_out), int(used)
        for _ in range(used):
            queue.popleft()
        out, out_ids, idx = jax.device_get((out, out_ids, lanes.idx))
        holding = bool(np.any(idx >= 0))
        for m in range(n_out):
            yield int(out_ids[m]), jax.tree.map(lambda x: x[m], out)
