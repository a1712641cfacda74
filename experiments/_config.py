"""One experiment TOML: the sections ``[data]``, ``[model]``, ``[train]``, ``[audit]``, ``[hybrid]``.

Each section is the frozen config dataclass of its stage, defined (as pure
data) in that stage's package; this module only knows the explicit
name -> class table :data:`SECTIONS` and composes them into an
:class:`ExperimentConfig`. Unknown top-level sections, unknown keys, wrong
types and out-of-range values raise ``ConfigError`` naming the file and the
key (``quickstart.toml: train.lr: must be > 0, got -1.0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
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
    """The config class of section ``name``, or ``None`` when its package does not provide it yet."""
    module, cls = SECTIONS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The sections of one experiment TOML, each its stage's frozen config (``None`` when absent).

    Attributes:
        path: the TOML file read.
        raw: the TOML tables as read (for hashing a stage's inputs and for the verbs).
        data, model, train, audit, hybrid: the parsed sections.
        unavailable: sections present in the file whose config class the installed
            packages do not provide (their stage cannot run).
    """

    path: Path
    raw: dict
    data: Any = None
    model: Any = None
    train: Any = None
    audit: Any = None
    hybrid: Any = None
    unavailable: tuple[str, ...] = ()

    def fingerprint(self, stage: str) -> str:
        """sha256 of the sections ``stage`` depends on (a stage is redone when it changes)."""
        tables = {name: self.raw.get(name) for name in STAGES[stage]}
        return hashlib.sha256(json.dumps(tables, sort_keys=True, default=str).encode()).hexdigest()


def load(path) -> ExperimentConfig:
    """Read and validate an experiment TOML; errors name the file and the key."""
    path = Path(path)
    raw = load_toml(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown section (allowed: {', '.join(SECTIONS)})")
    parsed, unavailable = {}, []
    for name in SECTIONS:
        if name not in raw:
            continue
        cls = section_class(name)
        if cls is None:
            unavailable.append(name)
            continue
        try:
            parsed[name] = from_dict(cls, raw[name], name)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return ExperimentConfig(path=path, raw=raw, unavailable=tuple(unavailable), **parsed)


def load_section(path, name: str):
    """Read one section of an experiment TOML strictly (what a single verb needs)."""
    path = Path(path)
    raw = load_toml(path)
    if name not in raw:
        raise ConfigError(f"{path}: [{name}] section is missing")
    cls = section_class(name)
    if cls is None:
        module, cls_name = SECTIONS[name]
        raise ConfigError(f"{path}: [{name}] cannot be read: {module}.{cls_name} is not available")
    try:
        return from_dict(cls, raw[name], name)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
