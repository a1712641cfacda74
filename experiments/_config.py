"""One experiment TOML: the sections ``[data]``, ``[model]``, ``[train]``, ``[audit]``, ``[hybrid]``.

Each section is the frozen config dataclass of its stage, defined (as pure
data) in that stage's package; this module only knows the explicit
name -> class table :data:`SECTIONS` and composes them into an
:class:`ExperimentConfig`. :func:`load` is the one way to read a config: a
verb loads the sections it needs and asks for them with
:meth:`ExperimentConfig.require` (or :meth:`ExperimentConfig.section` when the
section is optional). Unknown top-level sections, unknown keys, wrong types
and out-of-range values raise ``ConfigError`` naming the key
(``train.lr: must be > 0, got -1.0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from experiments._toml import ConfigError, from_dict, load_toml

# section -> (module, class): the explicit table (no registries). The stage that reads it is in STAGES.
SECTIONS = {
    "data": ("datasets", "DatasetSpec"),
    "model": ("surrogates", "ModelConfig"),
    "train": ("surrogates", "TrainConfig"),
    "audit": ("audit", "AuditConfig"),
    "hybrid": ("surrogates", "HybridConfig"),
}

# stage -> the sections it needs, in the order ``byai run`` runs them.
STAGES = {
    "generate": ("data",),
    "train": ("data", "model", "train"),
    "audit": ("data", "model", "train", "audit"),
    "hybrid": ("data", "model", "train", "audit", "hybrid"),
}


def section_class(name: str):
    """The config class of section ``name``, or ``None`` when its package cannot be imported in this installation."""
    module, cls = SECTIONS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None


def _parse(name: str, table):
    """Section ``name`` of a TOML file as its config class (errors name the key)."""
    cls = section_class(name)
    if cls is None:
        module, cls_name = SECTIONS[name]
        raise ConfigError(f"[{name}] cannot be read: {module}.{cls_name} cannot be imported")
    return from_dict(cls, table, name)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The sections of one experiment TOML, each its stage's frozen config (``None`` when absent or not loaded).

    Attributes:
        path: the TOML file read.
        raw: the TOML tables as read (for hashing a stage's inputs).
        data, model, train, audit, hybrid: the sections :func:`load` parsed.
        unavailable: sections present in the file whose config class cannot be
            imported (their stage cannot run).
    """

    path: Path
    raw: dict
    data: Any = None
    model: Any = None
    train: Any = None
    audit: Any = None
    hybrid: Any = None
    unavailable: tuple[str, ...] = ()

    def section(self, name: str):
        """Section ``name`` as its config class, or ``None`` when the file has no such section.

        A section the file has but :func:`load` was not asked for is parsed (and validated) here.
        """
        if name not in SECTIONS:
            raise KeyError(f"no config section {name!r} (sections: {', '.join(SECTIONS)})")
        parsed = getattr(self, name)
        if parsed is not None or name not in self.raw:
            return parsed
        return _parse(name, self.raw[name])

    def require(self, name: str):
        """Section ``name`` as its config class; ``ConfigError`` when the file has none."""
        parsed = self.section(name)
        if parsed is None:
            raise ConfigError(f"{self.path}: [{name}] section is missing")
        return parsed

    def pde_classes(self) -> tuple:
        """The class the ``[data]`` section's ``pde`` names (so files of a PDE of your own can be read), or ``()``
        without a ``[data]`` section."""
        spec = self.section("data")
        return () if spec is None else (spec.pde_class,)

    def check_data(self, path, attrs) -> None:
        """Refuse a data file whose recorded PDE is not the ``[data]`` section's (nothing to check without one)."""
        spec = self.section("data")
        if spec is not None:
            spec.check_file(path, attrs)

    def fingerprint(self, stage: str) -> str:
        """sha256 of the sections ``stage`` depends on (a stage is redone when it changes)."""
        tables = {name: self.raw.get(name) for name in STAGES[stage]}
        return hashlib.sha256(json.dumps(tables, sort_keys=True, default=str).encode()).hexdigest()


def load(path, sections: Iterable[str] | None = None) -> ExperimentConfig:
    """Read an experiment TOML and validate its sections.

    Args:
        path: the TOML file.
        sections: the sections to parse and validate now (a verb names those it
            reads; any other is parsed when asked for). ``None``: every section
            of the file, and then an error names the file as well as the key
            (``byai run`` validates the whole experiment before its first stage).
    Raises:
        ConfigError: a missing or malformed file, an unknown section, or a bad
            key or value in a validated section.
    """
    path = Path(path)
    raw = load_toml(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown section (allowed: {', '.join(SECTIONS)})")
    whole = sections is None
    wanted = set(SECTIONS) if whole else set(sections)
    if wanted - set(SECTIONS):
        raise KeyError(f"no config section {sorted(wanted - set(SECTIONS))[0]!r} (sections: {', '.join(SECTIONS)})")
    parsed, unavailable = {}, []
    for name in SECTIONS:
        if name not in raw:
            continue
        if section_class(name) is None:
            unavailable.append(name)
            continue
        if name not in wanted:
            continue
        try:
            parsed[name] = _parse(name, raw[name])
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}" if whole else str(e)) from None
    return ExperimentConfig(path=path, raw=raw, unavailable=tuple(unavailable), **parsed)
