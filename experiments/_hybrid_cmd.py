"""``byai hybrid CONFIG.toml --data DIR --model DIR --out DIR [--audit DIR]``: the guarded hybrid against the solver.

Reads the config's ``[hybrid]`` section and its run settings (``samples``,
``repeats``: :class:`experiments._config.HybridRunSettings`), with ``[audit]``'s
alpha and, when present, ``[data]``'s problem kind; opens ``DIR/test.h5`` (and
``DIR/calibration.h5`` for the conformal and state guards) and the trained model, runs
:func:`audit.compare_hybrid` and writes ``OUT/hybrid.png`` and then
``OUT/hybrid.json`` (each whole or not at all), holding the write lock of
``OUT`` (:func:`experiments._lock.output_lock`). With ``--audit DIR`` the conformal guard takes its
one-step bound from ``DIR/report.json`` when that report audited the same
model on the same calibration data at the same alpha. A model trained with ``[model] stride = k`` is paired
with a solver over ``k`` save intervals per step (its recorded ``dt``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from experiments._audit_cmd import load_model, step_of, tree_sha256
from experiments._cli import UsageError, input_folder, output_folder
from experiments._config import ExperimentConfig, load
from experiments._lock import output_lock, write_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML with a [hybrid] section (and [audit] for alpha)")
    parser.add_argument("--data", required=True, help="dataset folder with test.h5 and calibration.h5")
    parser.add_argument("--model", required=True, help="trained model folder (byai train --out)")
    parser.add_argument("--out", required=True, help="output folder for hybrid.json and hybrid.png")
    parser.add_argument("--audit", default=None, metavar="DIR",
                        help="audit folder (byai audit --out) whose report.json gives the conformal one-step bound")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="override [hybrid] tolerance (absolute RMS error)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages or progress bars")


def run(args) -> int:
    return stage(load(args.config, sections=("data", "audit", "hybrid")), data=args.data, model=args.model,
                 out=args.out, quiet=args.quiet, tolerance=args.tolerance, audit=args.audit)


def stage(config: ExperimentConfig, *, data, model, out, quiet: bool = False, tolerance: float | None = None,
          audit=None) -> int:
    """Compare the guarded hybrid with the solver alone on ``data/test.h5``; write ``out/hybrid.json`` and ``.png``.

    Args:
        config: the experiment: its ``[hybrid]`` section (required) and run settings, ``[audit]``'s alpha
            (``audit.AuditConfig`` default when absent), ``[data]``'s problem kind (optional).
        data: the dataset folder (``test.h5``; ``calibration.h5`` for the conformal and state guards).
        model: the trained model folder.
        out: the output folder.
        quiet: no progress messages and no progress bars (bars show only when stderr is a terminal).
        tolerance: replaces ``[hybrid]`` tolerance (``--tolerance``).
        audit: an audit output folder whose ``report.json`` gives the conformal one-step bound.
    Returns:
        0.
    """
    import datasets
    from audit import AuditConfig, check_hybrid_config, compare_hybrid, guard_kind

    hybrid, settings = config.require("hybrid"), config.run_settings("hybrid")
    if tolerance is not None:
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise UsageError(f"--tolerance must be > 0, got {tolerance}")
        hybrid = dataclasses.replace(hybrid, tolerance=tolerance)
    alpha = (config.section("audit") or AuditConfig()).alpha
    spec = config.section("data")
    if spec is not None:  # settings the configured problem kind cannot take are refused before any file is read
        check_hybrid_config(spec.problem, hybrid)
    needs_calibration = guard_kind(hybrid).needs_calibration
    data = Path(data)
    for name in ("test.h5",) + (("calibration.h5",) if needs_calibration else ()):
        if not (data / name).is_file():
            raise UsageError(f"--data {data}: {name} does not exist (run byai generate first)")
    model = input_folder(model, "--model", "run byai train first")
    audit = None if audit is None else input_folder(audit, "--audit", "run byai audit first")
    out = output_folder(out)

    import jax

    test = datasets.open(data / "test.h5", verify=True)  # damaged or changed data is refused before use
    config.check_data(data / "test.h5", test.attrs)
    calibration = datasets.open(data / "calibration.h5", verify=True) if needs_calibration else None
    stepper, info, with_params = load_model(model)
    step = step_of(info, config)  # the model's stride sets the solver's interval; its input_steps the window
    if audit is not None and info.get("checkpoint") and Path(info["checkpoint"]).exists():
        info = {**info, "checkpoint_sha256": tree_sha256(Path(info["checkpoint"]))}  # as byai audit records it
    with output_lock(out, owner=jax.process_index() == 0):
        result = compare_hybrid(hybrid, test, calibration, stepper, samples=settings.samples,
                                repeats=settings.repeats, with_params=with_params, model_info=info, alpha=alpha,
                                audit_dir=audit, pde_classes=config.pde_classes(), log=None if quiet else _log,
                                quiet=quiet, **step)
        # hybrid.json last: beside a hybrid.json is always its own hybrid.png
        (out / "hybrid.json").unlink(missing_ok=True)
        write_atomically(out / "hybrid.png", result.plot)
        write_atomically(out / "hybrid.json", lambda tmp: tmp.write_text(json.dumps(result.to_json(), indent=2)))
    if not quiet:
        _log(f"wrote {out / 'hybrid.json'} and {out / 'hybrid.png'}")
    print(result.line())
    return 0


def _log(message: str) -> None:
    """One message line on stderr, written above a running progress bar (``tqdm.write``)."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
