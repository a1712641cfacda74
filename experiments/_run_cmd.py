"""``byai run CONFIG.toml --out DIR``: generate, train, audit and hybrid for one config.

Each stage is the ``stage`` function of the verb of the same name, called with
the loaded config, into ``DIR/data``, ``DIR/model``, ``DIR/audit`` and
``DIR/hybrid`` (the hybrid reads its one-step bound from ``DIR/audit``).
``DIR/run.json`` records which stages completed and the fingerprint (sha256)
of the config sections each depended on: rerunning the command skips a
complete stage whose sections did not change and reruns the others (the
stages resume their own partial work: generation continues from the last
complete sample, training from its last checkpoint). A stage whose sections
the config lacks is skipped with the reason, and so is every stage after it.
The audit failing its requirement is a result, not an error: the hybrid stage
still runs and the command exits 1, like ``byai audit``.
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
from experiments._config import STAGES, ExperimentConfig, load
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
    out = output_folder(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _read_state(out / STATE_FILE)
    results: dict[str, str] = {}
    audit_rc = None
    blocked = None
    redo = list(STAGES).index(args.redo) if args.redo else len(STAGES)
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
        if i < redo and done.get("fingerprint") == fingerprint and (out / OUT_DIRS[stage]).is_dir():
            results[stage] = "complete (resumed: not rerun)"
            if stage == "audit":
                audit_rc = done.get("rc", 0)
            _say(f"[{stage}] {results[stage]}")
            continue
        _say(f"[{stage}] running into {out / OUT_DIRS[stage]}")
        start = time.perf_counter()
        try:
            rc = _run_stage(stage, config, out, quiet=args.quiet)
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
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(x, spec=".3g") -> str:
    return "unknown" if x is None else (format(x, spec) if isinstance(x, int | float) else str(x))


def summary(out: Path, results: dict[str, str]) -> str:
    """The final summary: each stage's status, the audit verdict and the speedups."""
    lines = [f"byai run summary ({out})"]
    lines += [f"  {stage:9s} {status}" for stage, status in results.items()]
    report = _load_json(out / "audit" / "report.json")
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
    hybrid = _load_json(out / "hybrid" / "hybrid.json")
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
