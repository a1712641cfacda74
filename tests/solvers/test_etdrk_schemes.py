"""The ETDRK schemes as declared in ``solvers._etdrk.METHODS``: the stated order and evaluations per
step are what the schemes do (the orders themselves are measured in test_convergence_order.py), and
``solve`` counts its evaluations from them."""

import jax.numpy as jnp
import numpy as np
import pytest

from solvers import Burgers, Grid, solve, stepper
from solvers._etdrk import ETDRK, METHODS, ETDRK1, ETDRK2, ETDRK4, etd_coefficients, etd_step_hat

GRID = Grid((32,))
(X,) = GRID.coordinates()
U0 = np.sin(X)[:, None]


def test_the_table_names_each_scheme_with_its_order():
    assert METHODS == {"etdrk1": ETDRK1, "etdrk2": ETDRK2, "etdrk4": ETDRK4}
    assert [(cls.order, cls.evaluations) for cls in METHODS.values()] == [(1, 1), (2, 2), (4, 4)]
    assert all(issubclass(cls, ETDRK) for cls in METHODS.values())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_step_evaluates_the_nonlinear_term_as_often_as_declared(method):
    pde = Burgers(GRID, nu=0.1)
    calls = []

    def counted(v):
        calls.append(1)
        return pde.nonlinear(v)

    cls = METHODS[method]
    c = cls.coefficients(pde.linear(), 0.01)
    v = cls.step(counted, c, GRID.fft(jnp.asarray(U0)))
    assert len(calls) == cls.evaluations
    # the by-name functions and the stepper take the same step
    np.testing.assert_array_equal(etd_step_hat(pde.nonlinear, etd_coefficients(pde.linear(), 0.01, method), method,
                                               GRID.fft(jnp.asarray(U0))), v)
    np.testing.assert_array_equal(stepper(pde, 0.01, method).step_hat(GRID.fft(jnp.asarray(U0))), v)


def test_solve_counts_evaluations_from_the_scheme():
    sol = solve(Burgers(GRID, nu=0.1), U0, [0.0, 0.1], rtol=1e-4, method="etdrk2")
    attempts = sol.stats["accepted"] + sol.stats["rejected"]
    # three steps per attempt: the fine trajectory's two halves and its coarse companion's whole step
    assert sol.stats["nfev"] == attempts * 3 * METHODS["etdrk2"].evaluations


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match=r"method must be one of \['etdrk1', 'etdrk2', 'etdrk4'\], got 'rk4'"):
        etd_coefficients(jnp.ones((17, 1)), 0.1, "rk4")
    with pytest.raises(ValueError, match="method must be one of"):
        stepper(Burgers(GRID, nu=0.1), 0.1, "rk4")
    with pytest.raises(ValueError, match="method must be one of"):
        solve(Burgers(GRID, nu=0.1), U0, [0.0, 0.1], method="rk4")
