"""Build ``solvers`` PDE objects from names and plain parameters (the only place that knows the table)."""

from __future__ import annotations

import math

import solvers

from ._spec import PDES, DatasetSpec


def make_grid(shape, length=None) -> solvers.Grid:
    return solvers.Grid(tuple(int(n) for n in shape), None if length is None else tuple(float(x) for x in length))


def build_pde(name: str, grid: solvers.Grid, params: dict, forcing: str = "none"):
    """``solvers`` PDE ``name`` on ``grid`` with physics ``params`` (numbers or traced scalars)."""
    if name not in PDES:
        raise ValueError(f"pde: must be one of {', '.join(PDES)}, got {name!r}")
    cls_name, allowed, _ = PDES[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"params.{unknown[0]}: unknown parameter for {name} (allowed: {', '.join(allowed) or 'none'})")
    kwargs = dict(params)
    if name == "navier_stokes" and forcing != "none":
        kwargs["forcing"] = forcing
    return getattr(solvers, cls_name)(grid, **kwargs)


def channels_of(spec: DatasetSpec) -> int:
    """Channels of the spec's PDE state (Burgers 2-D: 2, Gray-Scott: 2, else 1)."""
    if spec.pde == "gray_scott":
        return 2
    if spec.pde == "burgers":
        return len(spec.shape)
    return 1


def channel_names(pde: str, ndim: int) -> tuple[str, ...]:
    if pde == "gray_scott":
        return ("u", "v")
    if pde == "burgers" and ndim == 2:
        return ("u", "v")
    if pde == "navier_stokes":
        return ("omega",)
    if pde == "darcy":  # stage 0 holds the coefficient a, stage 1 the solution u (see _storage)
        return ("a_then_u",)
    return ("u",)


def spec_grid(spec: DatasetSpec) -> solvers.Grid:
    return make_grid(spec.shape, spec.length or (2 * math.pi,) * len(spec.shape))
