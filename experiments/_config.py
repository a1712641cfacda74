"""One experiment TOML: the sections ``[data]``, ``[model]``, ``[train]``, ``[audit]``, ``[hybrid]``, ``[crossover]``.

Each section is the frozen config dataclass of its stage, defined (as pure
data) in that stage's package; this module only knows the explicit
name -> class table :data:`SECTIONS` and composes them into an
:class:`ExperimentConfig`. A few keys of a section are not the library's but
the run's: how the processes of a multi-host run meet, how often a stage times
and how much of the test split the hybrid comparison spends. They sit in the
same TOML tables; :data:`RUN_SETTINGS` says which table holds them, and they
are read into this module's own classes (:class:`LaunchSettings`,
:class:`AuditRunSettings`, :class:`HybridRunSettings`), which a verb passes to
the library as arguments.

:func:`load` is the one way to read a config: a verb loads the sections it
needs and asks for them with :meth:`ExperimentConfig.require` (or
:meth:`ExperimentConfig.section` when the section is optional) and for their
run settings with :meth:`ExperimentConfig.run_settings`. Unknown top-level
sections, unknown keys, wrong types and out-of-range values raise
``ConfigError`` naming the key (``train.lr: must be > 0, got -1.0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_type_hints

from experiments._toml import ConfigError, from_dict, load_toml

# section -> (module, class): the explicit table (no registries). The stage that reads it is in STAGES.
SECTIONS = {
    "data": ("datasets", "DatasetSpec"),
    "model": ("surrogates", "ModelConfig"),
    "train": ("surrogates", "TrainConfig"),
    "audit": ("audit", "AuditConfig"),
    "hybrid": ("surrogates", "HybridConfig"),
    "crossover": ("audit", "CrossoverConfig"),
}

# stage -> the sections it needs, in the order ``byai run`` runs them.
STAGES = {
    "generate": ("data",),
    "train": ("data", "model", "train"),
    "audit": ("data", "model", "train", "audit"),
    "hybrid": ("data", "model", "train", "audit", "hybrid"),
}


def _check(cond: bool, name: str, message: str, value) -> None:
    if not cond:
        raise ValueError(f"{name}: {message}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class LaunchSettings:
    """How the processes of a multi-host run meet (``byai generate``, ``train`` and ``run``): the ``[train]``
    keys ``coordinator_address``, ``num_processes``, ``process_id``, ``coordinator_timeout``
    (``jax.distributed.initialize`` takes them).

    Args:
        coordinator_address: ``host:port`` of process 0 (``None``: the environment ``BYAI_COORDINATOR``,
            or one process alone).
        num_processes: processes in the run, >= 1 (``None``: ``BYAI_NUM_PROCESSES``).
        process_id: this process, in ``[0, num_processes)`` (``None``: ``BYAI_PROCESS_ID``).
        coordinator_timeout: seconds a process waits for the coordinator and the other processes before it
            gives up with an error, >= 1 (300, jax's own default, leaves a batch system time to start every
            process; a few seconds suit a test).
    """

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    coordinator_timeout: int = 300

    def __post_init__(self):
        _check(self.num_processes is None or self.num_processes >= 1, "num_processes", "must be >= 1",
               self.num_processes)
        _check(self.coordinator_timeout >= 1, "coordinator_timeout", "must be >= 1 (seconds)",
               self.coordinator_timeout)
        if self.process_id is not None:
            _check(self.process_id >= 0 and (self.num_processes is None or self.process_id < self.num_processes),
                   "process_id", "must be in [0, num_processes)", self.process_id)


@dataclasses.dataclass(frozen=True)
class AuditRunSettings:
    """How ``byai audit`` times: the ``[audit.equal_accuracy]`` key ``repeats``.

    Args:
        repeats: timed runs of the surrogate's rollout and of each solver setting of the
            equal-accuracy search (the fastest is kept; compilation is excluded), >= 1.
    """

    repeats: int = 3

    def __post_init__(self):
        _check(self.repeats >= 1, "repeats", "must be >= 1", self.repeats)


@dataclasses.dataclass(frozen=True)
class HybridRunSettings:
    """How much ``byai hybrid`` runs: the ``[hybrid]`` keys ``samples`` and ``repeats``.

    Args:
        samples: test samples run, >= 1 (``None``: all of them).
        repeats: timed runs of the solver alone and of the hybrid (the fastest is kept;
            compilation is excluded), >= 1.
    """

    samples: int | None = None
    repeats: int = 3

    def __post_init__(self):
        _check(self.samples is None or self.samples >= 1, "samples", "must be >= 1", self.samples)
        _check(self.repeats >= 1, "repeats", "must be >= 1", self.repeats)


# section -> (run settings class, the table inside the section that holds its keys): the run's keys,
# read from the same TOML tables as the library's but never given to the library's config class.
RUN_SETTINGS = {
    "train": (LaunchSettings, ()),
    "audit": (AuditRunSettings, ("equal_accuracy",)),
    "hybrid": (HybridRunSettings, ()),
}


def section_class(name: str):
    """The config class of section ``name`` (importing its package; an import error is the bug it is)."""
    module, cls = SECTIONS[name]
    return getattr(importlib.import_module(module), cls)


def _parse(name: str, table) -> tuple[Any, Any]:
    """Section ``name`` of a TOML file as its config class and its run settings (``None`` when the section has
    none); errors name the key."""
    cls = section_class(name)
    if name not in RUN_SETTINGS or not isinstance(table, dict):  # from_dict refuses a value that is not a table
        return from_dict(cls, table, name), None
    library, run = _split(name, table, cls)
    return from_dict(cls, library, name), from_dict(RUN_SETTINGS[name][0], run, _key(name, RUN_SETTINGS[name][1]))


def _split(name: str, table: dict, cls) -> tuple[dict, dict]:
    """``table`` without the run keys of section ``name`` (a copy), and those keys.

    An unknown key of a table on the way to the run keys is refused here, naming the
    library's and the run's keys together (as ``from_dict`` names the allowed keys).
    """
    run_cls, path = RUN_SETTINGS[name]
    run_keys = [f.name for f in dataclasses.fields(run_cls)]
    library = node = dict(table)
    for depth in range(len(path) + 1):
        allowed = [f.name for f in dataclasses.fields(cls) if f.init] + (run_keys if depth == len(path) else [])
        unknown = sorted(set(node) - set(allowed))
        if unknown:
            raise ConfigError(f"{_key(name, path[:depth] + (unknown[0],))}: unknown key "
                              f"(allowed: {', '.join(sorted(allowed))})")
        if depth == len(path):
            return library, {k: node.pop(k) for k in run_keys if k in node}
        sub = node.get(path[depth])
        if not isinstance(sub, dict):  # absent (defaults), or malformed: the library's class says so
            return library, {}
        cls = get_type_hints(cls)[path[depth]]
        node[path[depth]] = node = dict(sub)


def _key(name: str, path: tuple[str, ...]) -> str:
    return ".".join((name, *path))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The sections of one experiment TOML, each its stage's frozen config (``None`` when absent or not loaded).

    Attributes:
        path: the TOML file read.
        raw: the TOML tables as read (for hashing a stage's inputs).
        data, model, train, audit, hybrid, crossover: the sections :func:`load` parsed.
        runs: the run settings (:data:`RUN_SETTINGS`) of the sections :func:`load` parsed.
    """

    path: Path
    raw: dict
    data: Any = None
    model: Any = None
    train: Any = None
    audit: Any = None
    hybrid: Any = None
    crossover: Any = None
    runs: dict = dataclasses.field(default_factory=dict)

    def section(self, name: str):
        """Section ``name`` as its config class, or ``None`` when the file has no such section.

        A section the file has but :func:`load` was not asked for is parsed (and validated) here.
        """
        if name not in SECTIONS:
            raise KeyError(f"no config section {name!r} (sections: {', '.join(SECTIONS)})")
        parsed = getattr(self, name)
        if parsed is not None or name not in self.raw:
            return parsed
        return _parse(name, self.raw[name])[0]

    def run_settings(self, name: str):
        """The run settings of section ``name`` (its :data:`RUN_SETTINGS` class; defaults when the file has no
        such section), e.g. ``config.run_settings("hybrid").repeats``; a section :func:`load` did not parse is
        not validated here beyond these keys (``byai generate`` reads ``[train]``'s launch settings alone)."""
        if name not in RUN_SETTINGS:
            raise KeyError(f"section {name!r} has no run settings (sections with some: {', '.join(RUN_SETTINGS)})")
        if name in self.runs:
            return self.runs[name]
        cls, path = RUN_SETTINGS[name]
        node = self.raw.get(name)
        for key in path:  # only the run's keys are read here (the section's own are validated by ``section``)
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return cls()
        keys = {f.name for f in dataclasses.fields(cls)}
        return from_dict(cls, {k: v for k, v in node.items() if k in keys}, _key(name, path))

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
    parsed, runs = {}, {}
    for name in SECTIONS:
        if name not in raw or name not in wanted:
            continue
        try:
            parsed[name], run = _parse(name, raw[name])
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}" if whole else str(e)) from None
        if run is not None:
            runs[name] = run
    return ExperimentConfig(path=path, raw=raw, runs=runs, **parsed)
