"""The guarded hybrid stepper: surrogate steps where a guard allows them, solver steps elsewhere.

A workflow that advances a state with a solver's ``step(u) -> u`` can take a
:class:`HybridStepper` unchanged. Each step the surrogate proposes
``u_s = surrogate(u)``; a *guard* ``guard(u, u_s) -> (ok, error_estimate)``
says whether that step is acceptable and how much RMS error it adds. The
guard is passed in (dependency injection): the audit builds one from its
split-conformal per-step bound (``audit.conformal_guard``), from the PDE
residual of the proposal (``audit.residual_guard``) or from a conformal factor
times a cheap residual of the proposal (``audit.state_guard``: a bound that
depends on the state); tests build their own.

Error budget. The stepper carries an accumulated error estimate ``e``
(absolute RMS over grid points and channels, the norm of ``Solution.error``)::

    surrogate step:  e <- growth * e + error_estimate
    solver step:     e <- growth * e + solver_error

``growth`` (default 1) is the per-step amplification of an earlier error by
the dynamics: 1 gives the plain triangle-inequality sum, which is an upper
bound for non-expansive (diffusive) dynamics; pass the measured one-step
amplification for chaotic ones. A surrogate step is taken only when the
guard accepts it *and* ``growth * e + error_estimate <= tolerance``. A step
the guard refuses is one solver step (the surrogate is tried again next
step). The first time the guard accepts a step that the budget cannot take,
the stepper falls back to the solver for the rest of the interval (until the
next :meth:`HybridStepper.init`): it never goes past the tolerance on its
own estimate.

Step and state. The solver step, the surrogate and the guard act on the same
state over the same interval: a surrogate trained with ``model.stride = k``
steps ``k`` save intervals (its metadata's ``dt``), so its solver step must too;
a window stepper (``surrogates.as_stepper`` of a model with ``input_steps > 1``)
carries the last states ``(I, *space, C)``, so its solver step appends the next
state to that window and its guard judges the newest state
(``audit._hybrid_trajectory.on_window`` builds both from single-state ones).

Re-anchoring. With ``correct_every=k > 0`` every k-th step is a solver step
whatever the guard says, so the surrogate never runs more than ``k - 1``
steps in a row (combine it with either guard).

Cost. The guard runs on every step that tries the surrogate, and a rejected
step pays for the surrogate, the guard *and* the solver; wall-clock timings
of a hybrid rollout therefore include the guard's cost. ``lax.cond`` runs
one branch only when not vmapped; under ``jax.vmap`` it becomes a select and
both branches run, so time hybrid runs per sample (``lax.map``), not vmapped.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Bool, Float, Int

Guard = Callable[[Array, Array], tuple[Array, Array]]

__all__ = ["HybridConfig", "HybridState", "HybridStepper", "HybridTrajectory"]


@dataclasses.dataclass(frozen=True)
class HybridState:
    """The state a budgeted hybrid run carries from step to step (a pytree).

    Attributes:
        u: the current state ``(*space, C)``.
        error: accumulated RMS error estimate of ``u`` (same norm as the tolerance).
        steps: steps taken since :meth:`HybridStepper.init`.
        surrogate_steps, solver_steps: how many of them were surrogate / solver steps.
        rejected: steps on which the surrogate was tried and the guard refused it.
        exhausted: True once the budget would have been exceeded; from then on
            every step is a solver step.
    """

    u: Float[Array, "*space c"]
    error: Float[Array, ""]
    steps: Int[Array, ""]
    surrogate_steps: Int[Array, ""]
    solver_steps: Int[Array, ""]
    rejected: Int[Array, ""]
    exhausted: Bool[Array, ""]


jax.tree_util.register_dataclass(
    HybridState,
    data_fields=[f.name for f in dataclasses.fields(HybridState)], meta_fields=[])


@dataclasses.dataclass(frozen=True)
class HybridTrajectory:
    """What :meth:`HybridStepper.rollout` returns.

    Attributes:
        u: ``(n + 1, *space, C)`` states, ``u0`` included.
        error: ``(n + 1,)`` accumulated error estimate of each state (0 at ``u0``).
        surrogate: ``(n,)`` True where step i (from ``u[i]`` to ``u[i+1]``) was a surrogate step.
        final: the :class:`HybridState` after the last step (counters).
    """

    u: Float[Array, "t *space c"]
    error: Float[Array, " t"]
    surrogate: Bool[Array, " n"]
    final: HybridState


jax.tree_util.register_dataclass(
    HybridTrajectory, data_fields=["u", "error", "surrogate", "final"], meta_fields=[])


@dataclasses.dataclass(frozen=True, eq=False)  # identity hash: ``jax.jit(hybrid)`` caches per object
class HybridStepper:
    """Surrogate steps where a guard and an error budget allow them, solver steps otherwise.

    ``hybrid(u)`` honours the stepper contract (pure, jit- and vmap-able,
    one unbatched state): stateless, it takes the surrogate's step when the
    guard accepts it and its estimate alone is within ``tolerance``. For a
    run with an accumulated error budget use ``init`` / ``step_state`` /
    ``rollout``, which carry a :class:`HybridState`.

    Args:
        solver_step: the reference stepper ``u -> u(t + dt)``.
        surrogate_step: the surrogate's stepper over the same ``dt``
            (float64 in and out, ``surrogates.as_stepper``).
        guard: ``guard(u, u_proposed) -> (ok, error_estimate)``; ``ok`` a bool
            scalar, ``error_estimate`` the RMS error the step adds (>= 0).
        tolerance: the error budget, an absolute RMS error (> 0), in the
            norm of ``solvers.Solution.error``.
        correct_every: 0 (default) for no forced correction, or k >= 2:
            every k-th step is a solver step (re-anchoring).
        growth: per-step amplification of the accumulated error (>= 1 for an
            upper bound on non-contracting dynamics; default 1).
        solver_error: RMS error a solver step adds (default 0: the solver is
            the reference the tolerance is measured against).
    """

    solver_step: Callable
    surrogate_step: Callable
    guard: Guard
    _: dataclasses.KW_ONLY
    tolerance: float
    correct_every: int = 0
    growth: float = 1.0
    solver_error: float = 0.0

    def __post_init__(self):
        for name in ("solver_step", "surrogate_step", "guard"):
            if not callable(getattr(self, name)):
                raise ValueError(f"{name} must be callable, got {type(getattr(self, name)).__name__}")
        if not (np.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"tolerance must be > 0 and finite, got {self.tolerance}")
        if isinstance(self.correct_every, bool) or not isinstance(self.correct_every, int | np.integer) \
                or self.correct_every < 0 or self.correct_every == 1:
            raise ValueError(f"correct_every must be 0 (off) or an integer >= 2, got {self.correct_every!r}")
        if not (np.isfinite(self.growth) and self.growth >= 1):
            raise ValueError(f"growth must be >= 1 and finite, got {self.growth}")
        if not (np.isfinite(self.solver_error) and self.solver_error >= 0):
            raise ValueError(f"solver_error must be >= 0 and finite, got {self.solver_error}")

    # The plain stepper contract -------------------------------------------------------
    def __call__(self, u: Float[Array, "*space c"]) -> Float[Array, "*space c"]:
        """One step without a carried budget: the surrogate's if the guard accepts it.

        Stateless, so neither the accumulated budget nor ``correct_every``
        applies here (they need the step count and the error carried in a
        :class:`HybridState`): the guard's estimate for this one step must be
        within ``tolerance``.
        """
        proposed = self.surrogate_step(u)
        ok, estimate = self._guard(u, proposed)
        take = ok & (estimate <= self.tolerance)
        return lax.cond(take, lambda: proposed.astype(u.dtype), lambda: self.solver_step(u).astype(u.dtype))

    # The budgeted run -----------------------------------------------------------------
    def init(self, u0: Float[Array, "*space c"]) -> HybridState:
        """The state at the start of an interval: ``u0`` with no accumulated error."""
        u0 = jnp.asarray(u0)
        zero = jnp.zeros((), jnp.int32)
        return HybridState(u=u0, error=jnp.zeros((), jnp.float64), steps=zero, surrogate_steps=zero,
                           solver_steps=zero, rejected=zero, exhausted=jnp.zeros((), bool))

    def step_state(self, state: HybridState) -> HybridState:
        """One budgeted step: surrogate if guard and budget allow, solver otherwise."""
        u = state.u
        carried = self.growth * state.error

        def solver(exhausted, rejected):
            return HybridState(
                u=self.solver_step(u).astype(u.dtype), error=carried + self.solver_error,
                steps=state.steps + 1, surrogate_steps=state.surrogate_steps,
                solver_steps=state.solver_steps + 1, rejected=state.rejected + rejected.astype(jnp.int32),
                exhausted=exhausted)

        def try_surrogate():
            proposed = self.surrogate_step(u).astype(u.dtype)
            ok, estimate = self._guard(u, proposed)
            within = carried + estimate <= self.tolerance
            accepted = HybridState(
                u=proposed, error=carried + estimate, steps=state.steps + 1,
                surrogate_steps=state.surrogate_steps + 1, solver_steps=state.solver_steps,
                rejected=state.rejected, exhausted=state.exhausted)
            # an accepted step the budget cannot take: solver from now on; a refusal is one solver step
            return lax.cond(ok & within, lambda: accepted, lambda: solver(ok & ~within, ~ok))

        forced = jnp.zeros((), bool)
        if self.correct_every:
            forced = (state.steps + 1) % self.correct_every == 0
        return lax.cond(state.exhausted | forced,
                        lambda: solver(state.exhausted, jnp.zeros((), bool)), try_surrogate)

    def rollout(self, u0: Float[Array, "*space c"], n: int) -> HybridTrajectory:
        """``n`` budgeted steps from ``u0`` (``lax.scan``; jit with ``n`` static)."""
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        state0 = self.init(u0)

        def body(state, _):
            new = self.step_state(state)
            return new, (new.u, new.error, new.surrogate_steps > state.surrogate_steps)

        final, (us, errors, surrogate) = lax.scan(body, state0, None, length=int(n))
        return HybridTrajectory(
            u=jnp.concatenate([state0.u[None], us]), error=jnp.concatenate([state0.error[None], errors]),
            surrogate=surrogate, final=final)

    def _guard(self, u, proposed):
        ok, estimate = self.guard(u, proposed)
        estimate = jnp.asarray(estimate, jnp.float64).reshape(())
        # a non-finite proposal or estimate is never accepted
        ok = jnp.asarray(ok, bool).reshape(()) & jnp.isfinite(estimate) & jnp.all(jnp.isfinite(proposed))
        return ok, jnp.where(jnp.isfinite(estimate), estimate, jnp.inf)


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """A guarded hybrid run's settings (pure data, from an experiment's ``[hybrid]`` table; ``audit.compare_hybrid``
    takes it).

    A steady map (no time steps) takes ``tolerance`` and ``guard = "residual"``
    only; the other keys are time-stepping settings. How many test samples a
    comparison runs and how often it times them are ``audit.compare_hybrid``'s
    arguments ``samples`` and ``repeats``.

    Args:
        tolerance: the error budget of a hybrid run: absolute RMS error (over grid
            points and channels, the norm of ``solvers.Solution.error``) allowed at
            any saved frame. Required; choose it in the units of ``u``.
        guard: ``"conformal"`` (the audit's split-conformal per-step bound, measured
            on the calibration split) or ``"residual"`` (the PDE residual of each
            proposed state, computed with a fine solver step) or ``"state"`` (a bound that depends
            on the proposed step: a conformal factor, measured on the calibration split, times the
            proposal's cheap exponential-midpoint residual; ``audit.state_guard``).
        correct_every: 0 (off) or k >= 2: every k-th step is a solver step (re-anchoring).
        growth: per-step amplification of the carried error (>= 1; 1 for diffusive
            dynamics, larger for chaotic ones).
        steps: save intervals run from each initial condition (``None``: the test
            file's whole time axis).
        solver_substeps: solver steps per save interval of the solver baseline (and of
            the hybrid's solver steps); the solver step is ``dt_save / solver_substeps``.
        solver_method: the ETDRK method of the solver baseline.
    """

    tolerance: float
    guard: Literal["conformal", "residual", "state"] = "conformal"
    correct_every: int = 0
    growth: float = 1.0
    steps: int | None = None
    solver_substeps: int = 1
    solver_method: Literal["etdrk4", "etdrk2", "etdrk1"] = "etdrk4"

    def __post_init__(self):
        def check(cond, name, msg, value):
            if not cond:
                raise ValueError(f"{name}: {msg}, got {value!r}")

        check(np.isfinite(self.tolerance) and self.tolerance > 0, "tolerance", "must be > 0 and finite", self.tolerance)
        check(self.guard in ("conformal", "residual", "state"), "guard", "must be 'conformal', 'residual' or 'state'",
              self.guard)
        def integer(value):
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        check(integer(self.correct_every) and (self.correct_every == 0 or self.correct_every >= 2), "correct_every",
              "must be 0 (off) or an integer >= 2", self.correct_every)
        check(np.isfinite(self.growth) and self.growth >= 1, "growth", "must be >= 1 and finite", self.growth)
        check(self.steps is None or (integer(self.steps) and self.steps >= 1), "steps", "must be an integer >= 1",
              self.steps)
        check(integer(self.solver_substeps) and self.solver_substeps >= 1, "solver_substeps",
              "must be an integer >= 1", self.solver_substeps)
        check(self.solver_method in ("etdrk4", "etdrk2", "etdrk1"), "solver_method",
              "must be 'etdrk4', 'etdrk2' or 'etdrk1'", self.solver_method)
