"""``byai run CONFIG.toml --out DIR``: generate, train, audit and hybrid for one config.

Each stage is the ``stage`` function of the verb of the same name, called with
the loaded config, into ``DIR/data``, ``DIR/model``, ``DIR/audit`` and
``DIR/hybrid`` (the hybrid reads its one-step bound from ``DIR/audit``).
``DIR/run.json`` records which stages completed and the fingerprint (sha256)
of the config sections each depended on: rerunning the command skips a
complete stage whose sections did not change and whose outputs are still
there and pass cheap checks (:data:`OUTPUT_CHECKS`), and reruns the others,
saying why (the stages resume their own partial work: generation continues
from the last complete sample, training from its last checkpoint); a rerun
stage reruns every stage after it. A stage whose sections the config lacks is
skipped with the reason, and so is every stage after it; a config without any
section has nothing to run and is refused.
The audit failing its requirement is a result, not an error: the hybrid stage
still runs and the command exits 1, like ``byai audit``.

One ``byai run`` writes into ``DIR`` at a time (process 0 holds the lock of
:func:`experiments._lock.output_lock`; a second one is refused in one line
naming the holder's process id). A multi-host run joins its processes once,
with ``[train]``'s launch settings, before the first stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from experiments import _audit_cmd, _generate_cmd, _hybrid_cmd, _train_cmd
from experiments._cli import UsageError, one_line, output_folder
from experiments._config import SECTIONS, STAGES, ExperimentConfig, load
from experiments._launch import initialize_distributed
from experiments._lock import output_lock, write_atomically
from experiments._toml import ConfigError
from solvers import ByaiError

OUT_DIRS = {"generate": "data", "train": "model", "audit": "audit", "hybrid": "hybrid"}
STATE_FILE = "run.json"


class RunError(ByaiError):
    """A stage of ``byai run`` failed; the message names the stage and its own error."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML with [data], [model], [train], [audit], [hybrid]")
    parser.add_argument("--out", required=True, help="run folder (DIR/data, DIR/model, DIR/audit, DIR/hybrid)")
    parser.add_argument("--redo", choices=list(STAGES), default=None,
                        help="rerun this stage and every later one even if complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    config = load(args.config)
    if not config.raw:
        first = next(iter(STAGES))
        raise ConfigError(f"{config.path}: nothing to run: the config has none of the sections "
                          f"{', '.join(f'[{name}]' for name in SECTIONS)} (the first stage, {first}, needs "
                          f"{', '.join(f'[{name}]' for name in STAGES[first])})")
    out = output_folder(args.out)
    initialize_distributed(config.run_settings("train"))
    import jax

    with output_lock(out, owner=jax.process_index() == 0):
        return _run_stages(config, out, redo=args.redo, quiet=args.quiet)


def _run_stages(config: ExperimentConfig, out: Path, *, redo: str | None, quiet: bool) -> int:
    """Run (or resume) every stage of ``config`` into ``out``; print the summary; the exit status."""
    state = _read_state(out / STATE_FILE)
    results: dict[str, str] = {}
    audit_rc = None
    blocked = None
    redo = list(STAGES).index(redo) if redo else len(STAGES)
    for i, stage in enumerate(STAGES):
        if blocked:
            results[stage] = f"skipped: {blocked}"
            _say(f"[{stage}] {results[stage]}")
            continue
        reason = _unavailable(config, stage)
        if reason:
            results[stage] = f"skipped: {reason}"
            blocked = f"needs the {stage} stage, which was skipped"
            _say(f"[{stage}] {results[stage]}")
            continue
        fingerprint = config.fingerprint(stage)
        done = state.get(stage, {})
        why = ""
        if i < redo and done.get("fingerprint") == fingerprint:
            damage = OUTPUT_CHECKS[stage](config, out / OUT_DIRS[stage])
            if damage is None:
                results[stage] = "complete (resumed: not rerun)"
                if stage == "audit":
                    audit_rc = done.get("rc", 0)
                _say(f"[{stage}] {results[stage]}")
                continue
            why = f" (recorded complete, but {damage})"
        _say(f"[{stage}] running into {out / OUT_DIRS[stage]}{why}")
        start = time.perf_counter()
        try:
            rc = _run_stage(stage, config, out, quiet=quiet)
        except ByaiError as e:  # the stage's own one-line error, with the stage named
            raise RunError(f"{stage} stage: {one_line(e)}") from None
        seconds = time.perf_counter() - start
        if rc not in ((0, 1) if stage == "audit" else (0,)):
            state.pop(stage, None)
            _write_state(out / STATE_FILE, state)
            raise RunError(f"stage {stage} failed with exit status {rc}")
        if stage == "audit":
            audit_rc = rc
        state[stage] = {"fingerprint": fingerprint, "rc": rc, "seconds": round(seconds, 3)}
        # a rerun stage invalidates the ones after it
        for later in list(STAGES)[i + 1:]:
            state.pop(later, None)
        _write_state(out / STATE_FILE, state)
        results[stage] = f"done in {seconds:.1f} s"
        _say(f"[{stage}] {results[stage]}")
    print(summary(out, results))
    return 1 if audit_rc == 1 else 0


def _unavailable(config: ExperimentConfig, stage: str) -> str | None:
    """Why ``stage`` cannot run with this config, or ``None``."""
    for name in STAGES[stage]:
        if name not in config.raw:
            return f"the config has no [{name}] section"
    return None


def _run_stage(stage: str, config: ExperimentConfig, out: Path, *, quiet: bool) -> int:
    """Call the ``stage`` function of ``stage``'s verb on the run folder ``out`` (each stage reads the folders of
    the stages before it); returns its exit status."""
    data, model, audit, where = (out / OUT_DIRS[s] for s in ("generate", "train", "audit", stage))
    if stage == "generate":
        return _generate_cmd.stage(config, out=where, quiet=quiet)
    if stage == "train":
        return _train_cmd.stage(config, data=data, out=where, quiet=quiet, resume=_has_checkpoint(where))
    if stage == "audit":
        return _audit_cmd.stage(config, data=data, model=model, out=where, quiet=quiet)
    return _hybrid_cmd.stage(config, data=data, model=model, out=where, quiet=quiet, audit=audit)


def _data_damage(config: ExperimentConfig, folder: Path) -> str | None:
    """Why ``folder`` does not hold the finished dataset of ``config`` (a split file with samples in the config is
    missing, fails ``datasets.open``'s schema and completeness checks, or has no sha256), or ``None``."""
    import datasets

    spec = config.require("data")
    for split in datasets.SPLITS:
        path = folder / f"{split}.h5"
        if getattr(spec.splits, split) == 0:
            continue
        if not path.is_file():
            return f"{path} is missing"
        try:
            with datasets.open(path) as ds:
                sha = str(ds.attrs.get("sha256", ""))
        except datasets.DatasetError as e:
            return one_line(e)
        if not sha:
            return f"{path} records no sha256"
    return None


def _model_damage(config: ExperimentConfig, folder: Path) -> str | None:
    """Why ``folder`` does not hold the trained model of ``config`` (``byai_model.json`` unreadable, or the
    checkpoint of the final step ``train.steps`` missing or unreadable), or ``None``."""
    import surrogates

    try:
        surrogates.read_metadata(folder)
    except surrogates.CheckpointError as e:
        return one_line(e)
    final = folder / "checkpoints" / str(config.require("train").steps)  # orbax renames it into place when whole
    try:
        if not any(os.scandir(final)):
            return f"its final checkpoint {final} is empty"
    except OSError:
        return f"its final checkpoint {final} is missing or unreadable"
    return None


def _audit_damage(config: ExperimentConfig, folder: Path) -> str | None:
    """Why ``folder`` does not hold a finished audit (report.json, which is written last, report.html and
    predictions.h5 all there, and report.json a JSON object), or ``None``."""
    for name in ("predictions.h5", "report.html", "report.json"):
        if not (folder / name).is_file():
            return f"{folder / name} is missing"
    if not isinstance(_load_json(folder / "report.json"), dict):
        return f"{folder / 'report.json'} is not a readable JSON report"
    return None


def _hybrid_damage(config: ExperimentConfig, folder: Path) -> str | None:
    """Why ``folder`` does not hold a finished hybrid comparison (hybrid.png and hybrid.json, a JSON object)."""
    for name in ("hybrid.png", "hybrid.json"):
        if not (folder / name).is_file():
            return f"{folder / name} is missing"
    if not isinstance(_load_json(folder / "hybrid.json"), dict):
        return f"{folder / 'hybrid.json'} is not readable JSON"
    return None


# stage -> why its folder does not hold its finished outputs (None: it does); cheap checks, no full checksums
OUTPUT_CHECKS = {"generate": _data_damage, "train": _model_damage, "audit": _audit_damage, "hybrid": _hybrid_damage}


def _has_checkpoint(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a training run to resume (what ``surrogates.train`` refuses without resume)."""
    return (model_dir / "byai_model.json").exists() or (model_dir / "checkpoints").is_dir()


def _read_state(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a byai run record; remove it or choose another --out") from None
    if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
        raise UsageError(f"{path} is not a byai run record; remove it or choose another --out")
    return state


def _write_state(path: Path, state: dict) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(state, indent=2, sort_keys=True)))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _fmt(x, spec=".3g") -> str:
    return "unknown" if x is None else (format(x, spec) if isinstance(x, int | float) else str(x))


def summary(out: Path, results: dict[str, str]) -> str:
    """The final summary: each stage's status, the audit verdict, the speedups and the break-even."""
    lines = [f"byai run summary ({out})"]
    lines += [f"  {stage:9s} {status}" for stage, status in results.items()]
    finished = {stage for stage, status in results.items() if not status.startswith("skipped")}
    # the files of a stage skipped this time may be an earlier config's: they are not this run's results
    report = _load_json(out / "audit" / "report.json") if "audit" in finished else None
    if report is not None:
        eq = report.get("equal_accuracy") or {}
        req = report.get("requirement")
        req = req.get("text", req) if isinstance(req, dict) else req
        verdict = "PASSED" if report.get("passed") else "FAILED"
        lines.append(f"  audit verdict: {verdict} ({req})")
        multiple = report.get("tolerance_multiple")
        if isinstance(multiple, dict) and isinstance(multiple.get("rmse"), dict):
            rmse = multiple["rmse"]
            lines.append(f"  tolerance multiple (surrogate RMS error / solver tolerance): median "
                         f"{_fmt(rmse.get('q50'))}, q95 {_fmt(rmse.get('q95'))}")
        else:
            lines.append(f"  tolerance multiple: {_fmt(_scalar(multiple))}")
        speedup = eq.get("speedup")
        setting = eq.get("solver_setting")
        lines.append(f"  speedup at equal accuracy: {_fmt(speedup)}"
                     + (f" (solver at {_setting(setting)})" if speedup is not None and setting else "")
                     + (f" ({eq['reason']})" if speedup is None and eq.get("reason") else ""))
        cost = report.get("cost")
        if isinstance(cost, dict) and cost.get("sentence"):
            lines.append(f"  cost: {cost['sentence']}")
    hybrid = _load_json(out / "hybrid" / "hybrid.json") if "hybrid" in finished else None
    if hybrid is not None:
        lines.append(f"  hybrid speedup vs solver: {_fmt(hybrid.get('speedup_vs_solver'))} "
                     f"({hybrid.get('surrogate_steps')} surrogate / {hybrid.get('solver_steps')} solver steps, "
                     f"error {_fmt(hybrid.get('error_vs_reference'))} vs tolerance {_fmt(hybrid.get('tolerance'))}, "
                     f"{'within' if hybrid.get('within_tolerance') else 'NOT within'} tolerance)")
        if hybrid.get("note"):
            lines.append(f"  hybrid: {hybrid['note']}")
    return "\n".join(lines)


def _setting(setting) -> str:
    if isinstance(setting, dict):
        return ", ".join(f"{k}={v}" for k, v in setting.items())
    return str(setting)


def _scalar(value):
    """A summary number from a report field that may be a number or a table of statistics."""
    if isinstance(value, dict):
        for key in ("q95", "max", "mean", "value"):
            if isinstance(value.get(key), int | float):
                return value[key]
        return None
    return value
