"""Uniform axes read from stored values: the spacing a coordinate implies, up to its storage rounding."""

from __future__ import annotations

import numpy as np

from solvers import InputError

ULPS = 8
"""Differences may depart from the mean spacing by ``ULPS * eps * max|t|`` of the axis' storage dtype."""


def uniform_spacing(t, dtype=None, *, name: str = "t") -> float:
    """The spacing ``dt`` of an axis meant to be uniform, ``t_k = t_0 + k dt``, read from its stored values.

    Stored values carry the rounding of their dtype: PDEBench's float32 ``t-coordinate``
    ``arange(T) * 0.05`` has steps from 0.04999995 to 0.05000007. Those count as uniform when every
    step ``dt_k = t_{k+1} - t_k`` (computed in float64) satisfies ``|dt_k - dt| <= 8 eps max|t|`` with
    ``eps`` the machine epsilon of the storage dtype and ``dt = (t_{-1} - t_0) / (n - 1)``. The
    spacing returned (float64) is the decimal with the fewest digits whose axis ``t_0 + k dt'`` stays
    within that bound of every stored value (0.05 for PDEBench's float32 steps of 0.05), else ``dt``.
    Rounding a value moves it by at most ``eps |t| / 2``, so a uniform axis' steps stay within ``eps max|t|`` of ``dt``; a real non-uniform axis departs by far more.

    Args:
        t: the axis' values, increasing, at least two.
        dtype: the dtype the values were stored in (default: ``t``'s own; give ``float32`` for
            float32 values already converted to float64).
        name: the axis' name in the error message (e.g. ``"time"``, ``"t-coordinate"``).
    Returns the spacing (float64, > 0).
    Raises :class:`solvers.InputError` naming the axis when it has fewer than two values, is not
    increasing, or its steps differ by more than the rounding of its dtype.
    """
    a = np.asarray(t)
    dtype = np.dtype(dtype or (a.dtype if a.dtype.kind == "f" else np.float64))
    if dtype.kind != "f":
        raise InputError(f"dtype: the storage dtype of {name} must be a float dtype, got {dtype}")
    a = a.astype(np.float64).reshape(-1)
    if a.size < 2:
        raise InputError(f"{name}: a uniform spacing needs at least 2 values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: holds non-finite values, so it has no spacing")
    steps = np.diff(a)
    dt = (a[-1] - a[0]) / (a.size - 1)
    if not np.all(steps > 0):
        k = int(np.argmin(steps > 0))
        raise InputError(f"{name}: not increasing (value {k + 1} = {a[k + 1]!r} after {a[k]!r})")
    tol = ULPS * float(np.finfo(dtype).eps) * float(np.max(np.abs(a)))
    worst = int(np.argmax(np.abs(steps - dt)))
    if abs(steps[worst] - dt) > tol:
        raise InputError(f"{name}: not uniformly spaced: steps range from {steps.min():.9g} to {steps.max():.9g} "
                         f"around the mean {dt:.9g} (step {worst} departs by {abs(steps[worst] - dt):.3g}, more than "
                         f"the {tol:.3g} that {dtype} rounding allows)")
    # the shortest decimal whose axis t_0 + k dt stays within the same tolerance of every stored value
    # (float32 0.04999999884 -> 0.05): the step the writer meant, as well supported by the data as dt
    k = np.arange(a.size)
    for digits in range(1, 18):
        meant = float(f"{dt:.{digits - 1}e}")
        if np.max(np.abs(a[0] + k * meant - a)) <= tol:
            return meant
    return float(dt)


def uniform_values(t, dtype=None, *, name: str = "t") -> tuple[np.ndarray, float]:
    """``(t_0 + k dt, dt)`` in float64 for an axis :func:`uniform_spacing` accepts (same arguments and errors)."""
    dt = uniform_spacing(t, dtype, name=name)
    a = np.asarray(t, dtype=np.float64).reshape(-1)
    return a[0] + np.arange(a.size) * dt, dt
