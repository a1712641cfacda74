"""``byai audit CONFIG.toml --data DIR --model DIR --out DIR [--require "METRIC<=VALUE"]``.

Loads ``DIR/test.h5`` and ``DIR/calibration.h5`` (``datasets.open``), the model
(``surrogates.load``), runs :func:`audit.run` with the config's
``[audit]`` section and its timing repeats (defaults when the section is absent) and writes
``OUT/predictions.h5``, ``OUT/report.html`` and, last, ``OUT/report.json``, holding the write
lock of ``OUT`` (:func:`experiments._lock.output_lock`).
Exit status: 0 when the requirement holds, 1 when it fails, 2 on bad input
(one line on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from experiments._cli import UsageError, input_folder, output_folder
from experiments._config import ExperimentConfig, load
from experiments._lock import output_lock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML (its [audit] section; defaults when absent)")
    parser.add_argument("--data", required=True, help="folder holding test.h5 and calibration.h5")
    parser.add_argument("--model", required=True, help="trained model folder (byai train --out)")
    parser.add_argument("--out", required=True, help="report folder (report.json, report.html, predictions.h5)")
    parser.add_argument("--require", default=None, metavar="METRIC<=VALUE",
                        help="override the config's requirement, e.g. 'rel_l2<=0.05' or 'rel_l2<=300x' "
                             "(300 times the solver tolerance)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def load_model(model_dir: Path):
    """``(stepper, info, with_params)`` of a trained model folder.

    A model trained with per-sample physics parameters gives ``stepper(u, p)``
    (``with_params`` True; the audit passes each sample's ``params``); any
    other gives ``stepper(u)``.
    """
    import surrogates

    model, stats, info = surrogates.load(model_dir)
    info = dict(info or {})
    input_stats = info.get("input_stats")  # a steady map's input normalisation
    if model.num_params:
        def stepper(u, p):
            return surrogates.as_stepper(model, stats, params=p, input_stats=input_stats)(u)

        return stepper, info, True
    return surrogates.as_stepper(model, stats, input_stats=input_stats), info, False


def run(args) -> int:
    return stage(load(args.config, sections=("audit",)), data=args.data, model=args.model, out=args.out,
                 quiet=args.quiet, require=args.require)


def stage(config: ExperimentConfig, *, data, model, out, quiet: bool = False, require: str | None = None) -> int:
    """Audit the model in ``model`` on ``data/test.h5`` (calibrated on ``data/calibration.h5``) into ``out``.

    Args:
        config: the experiment; its ``[audit]`` section and run settings (``audit.AuditConfig`` and
            :class:`experiments._config.AuditRunSettings` defaults when absent).
        data: the dataset folder (``test.h5``, ``calibration.h5``; ``train.h5`` for provenance).
        model: the trained model folder.
        out: the report folder (``report.json``, ``report.html``, ``predictions.h5``).
        quiet: no progress messages (also when stderr is not a terminal).
        require: ``"METRIC<=VALUE"`` replacing the config's requirement (``--require``).
    Returns:
        0 when the requirement holds, 1 when it fails.
    """
    import jax

    import audit
    import datasets

    cfg = config.section("audit") or audit.AuditConfig()
    try:
        requirement = cfg.to_requirement(require)
    except ValueError as e:  # a malformed --require text (audit's message names the option)
        raise UsageError(str(e)) from None
    data = input_folder(data, "--data", "run byai generate first")
    model = input_folder(model, "--model", "run byai train first")
    out = output_folder(out)
    test = datasets.open(data / "test.h5", verify=True)  # the checksums the report cites are checked
    calibration = datasets.open(data / "calibration.h5", verify=True)
    config.check_data(data / "test.h5", test.attrs)
    stepper, info, with_params = load_model(model)
    provenance = {"model_dir": str(model.resolve()), "data_dir": str(data.resolve())}
    if info.get("checkpoint") and Path(info["checkpoint"]).exists():
        provenance["checkpoint_sha256"] = tree_sha256(Path(info["checkpoint"]))
    train = data / "train.h5"
    if "dataset_sha256" in info and train.exists():
        train_sha = str(datasets.open(train).attrs.get("sha256", ""))
        provenance["train_sha256"] = train_sha
        provenance["dataset_matches_training"] = bool(train_sha and train_sha == str(info["dataset_sha256"]))
    with output_lock(out, owner=jax.process_index() == 0):
        report = audit.run(stepper, test, calibration, requirement, config=cfg, pde_classes=config.pde_classes(),
                           out_dir=out, model_info=info, provenance=provenance, with_params=with_params,
                           repeats=config.run_settings("audit").repeats, quiet=quiet or not sys.stderr.isatty(),
                           generation_cost=audit.generation_cost(data), training_cost=audit.training_cost(model))
    print(one_line(report.summary))
    return 0 if report.passed else 1


def tree_sha256(path: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``path`` (sorted), or of one file."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _g(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def one_line(s: dict) -> str:
    """``PASS rel_l2<=0.05 over 20 steps: q0.95 0.031, conformal bound 0.036 (alpha 0.1, ...); ...``."""
    req, sc, c, eq = s["requirement"], s["score"], s["conformal"], s["equal_accuracy"]
    tm = s["tolerance_multiple"]
    parts = [f"{s['verdict'].upper()} {req['text']} over {req['horizon']} steps: "
             f"q{req['quantile']:g} {_g(sc['test_quantile'])}, conformal bound {_g(c['bound'])} "
             f"(alpha {c['alpha']:g}, test coverage {_g(c['coverage_test'])})"]
    parts.append("tolerance multiple unknown" if tm == "unknown"
                 else f"rmse {_g(tm['rmse']['mean'])}x solver tolerance (mean)")
    if eq.get("status") == "measured":
        parts.append(f"speedup at equal accuracy {_g(eq['speedup'])} ({eq['speedup_bound']} bound)"
                     if eq["speedup_bound"] != "exact" else f"speedup at equal accuracy {_g(eq['speedup'])}")
    else:
        parts.append(f"equal accuracy {eq.get('status')}")
    return "; ".join(parts)
