"""The PDE catalogue as the datasets see it, derived from the solver classes (``solvers.PDES``).

A config names an equation by its ``name`` (``"burgers"``) or, for an equation
written outside byai, as ``"package.module:ClassName"``: that module is
imported because the config (written by the user) names it. A data file's
recorded ``pde`` is only ever looked up among known classes, never imported.
"""

from __future__ import annotations

import dataclasses
import importlib

import solvers

from ._errors import DatasetError

BUILTIN: dict[str, type[solvers.PDE]] = {cls.name: cls for cls in solvers.PDES}


def pde_class(ref: str) -> type[solvers.PDE]:
    """The class a config's ``pde = ref`` names: a built-in name, or ``"package.module:ClassName"`` (imported).

    Raises ``ValueError("pde: ...")`` for an unknown name, a module that cannot be imported or a class that is
    not a ``solvers.PDE``.
    """
    if not isinstance(ref, str):
        raise ValueError(f"pde: must be a string, got {ref!r}")
    if ":" not in ref:
        if ref not in BUILTIN:
            raise ValueError(f"pde: must be one of {', '.join(BUILTIN)} or 'package.module:ClassName' for an "
                             f"equation of your own, got {ref!r}")
        return BUILTIN[ref]
    module_name, _, cls_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"pde: cannot import module {module_name!r} of {ref!r} ({e}); is it on PYTHONPATH?") from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, solvers.PDE) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"pde: {ref!r} is not a solvers.pytree_dataclass subclass of solvers.SemiLinearPDE")
    return cls


def known_class(name: str, known: tuple[type[solvers.PDE], ...] = ()) -> type[solvers.PDE]:
    """The class whose ``name`` a data file records, among the built-ins and ``known`` (never imported)."""
    for cls in (*known, *BUILTIN.values()):
        if cls.name == name:
            return cls
    raise DatasetError(f"dataset's pde {name!r} is not a byai PDE ({', '.join(BUILTIN)}) nor the config's; "
                       "cannot rebuild its solver")


def make_grid(shape, length=None) -> solvers.Grid:
    return solvers.Grid(tuple(int(n) for n in shape), None if length is None else tuple(float(x) for x in length))


def build_pde(cls: type[solvers.PDE], grid: solvers.Grid, params: dict, forcing: str = "none"):
    """PDE ``cls`` on ``grid`` with physics ``params`` (numbers or traced scalars) and, where the class has one,
    a named ``forcing``."""
    allowed = cls.parameters()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"params.{unknown[0]}: unknown parameter for {cls.name} "
                         f"(allowed: {', '.join(allowed) or 'none'})")
    kwargs = dict(params)
    if forcing != "none":
        kwargs["forcing"] = forcing
    return cls(grid, **kwargs)


def has_forcing(cls: type[solvers.PDE]) -> bool:
    """Whether ``cls`` takes a ``forcing`` (a config's ``forcing = "kolmogorov"`` applies to it)."""
    return any(f.name == "forcing" for f in dataclasses.fields(cls))
