"""``byai audit CONFIG.toml --data DIR (--model DIR | --predictions FILE) --out DIR [--require "METRIC<=VALUE"]``.

With ``--predictions FILE`` (rollouts any model made from ``DIR/test.h5``'s initial conditions, frame 0
included, in byai's ``u`` or PDEBench's ``tensor`` layout, one frame per save interval unless the config's
``[model] stride`` says the model stepped that many) it runs :func:`audit.run_predictions`:
``--calibration-predictions FILE`` (from ``DIR/calibration.h5``'s) gives the conformal bound, without it the
verdict is the test quantile's alone and the report says so; ``--surrogate-seconds S`` (wall time of one
rollout as stored) gives the speedup, without it the speedup is unknown.

Loads ``DIR/test.h5`` and ``DIR/calibration.h5`` (``datasets.open``), the model
(``surrogates.load``; its recorded ``stride`` and ``input_steps`` are the audit's ``stride`` and
``window``), runs :func:`audit.run` with the config's
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
    parser.add_argument("--model", default=None, help="trained model folder (byai train --out)")
    parser.add_argument("--predictions", default=None, metavar="FILE",
                        help="instead of --model: any model's rollouts from test.h5's initial conditions (HDF5: "
                             "byai 'u' (sample, time, *space, channel) or PDEBench 'tensor' (sample, time, x[, y]"
                             "[, channel])), frame 0 the initial condition")
    parser.add_argument("--calibration-predictions", default=None, metavar="FILE",
                        help="with --predictions: rollouts from calibration.h5's initial conditions (the "
                             "conformal bound; without them the verdict rests on the test quantile alone)")
    parser.add_argument("--surrogate-seconds", default=None, type=float, metavar="S",
                        help="with --predictions: wall time (s) of one rollout as stored, for the speedup at "
                             "equal accuracy (unknown without it)")
    parser.add_argument("--out", required=True, help="report folder (report.json, report.html, predictions.h5)")
    parser.add_argument("--require", default=None, metavar="METRIC<=VALUE",
                        help="override the config's requirement, e.g. 'rel_l2<=0.05' or 'rel_l2<=300x' "
                             "(300 times the solver tolerance)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages or progress bars")


def load_model(model_dir: Path):
    """``(stepper, info, with_params)`` of a trained model folder.

    A model trained with per-sample physics parameters gives ``stepper(u, p)``
    (``with_params`` True; the audit passes each sample's ``params``); any
    other gives ``stepper(u)``. ``info`` (``surrogates.load``'s) says the stepper's step: ``stride``
    (saved frames per step), ``dt`` and ``input_steps`` (the window its state holds); see :func:`step_of`.
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


def step_of(info: dict, config: ExperimentConfig | None = None) -> dict:
    """``{"stride", "window"}`` of a loaded model (``info`` of :func:`load_model`; 1 each when it records none).

    A config whose ``[model]`` states another stride than the model was trained with is refused
    (``ConfigError`` naming ``model.stride``): the data would be compared at the wrong interval.
    """
    from experiments._toml import ConfigError

    stride, window = int(info.get("stride") or 1), int(info.get("input_steps") or 1)
    model = None if config is None else config.raw.get("model")
    if isinstance(model, dict) and "stride" in model:
        stated = config.require("model").stride
        if stated != stride:
            raise ConfigError(f"model.stride: {stated} in {config.path}, but the model was trained with stride "
                              f"{stride}; audit it at its own stride (set model.stride = {stride})")
    return {"stride": stride, "window": window}


def predictions_stride(config: ExperimentConfig) -> int:
    """The stride of predictions an external model made: ``[model] stride`` when the config states one, else 1."""
    model = config.raw.get("model")
    return config.require("model").stride if isinstance(model, dict) and "stride" in model else 1


def run(args) -> int:
    if (args.model is None) == (args.predictions is None):
        raise UsageError("give exactly one of --model DIR (a byai model) and --predictions FILE (any model's "
                         "rollouts)")
    if args.predictions is None:
        for option, value in (("--calibration-predictions", args.calibration_predictions),
                              ("--surrogate-seconds", args.surrogate_seconds)):
            if value is not None:
                raise UsageError(f"{option} goes with --predictions, not --model")
        return stage(load(args.config, sections=("audit",)), data=args.data, model=args.model, out=args.out,
                     quiet=args.quiet, require=args.require)
    return stage_predictions(load(args.config, sections=("audit",)), data=args.data, predictions=args.predictions,
                             out=args.out, quiet=args.quiet, require=args.require,
                             calibration_predictions=args.calibration_predictions,
                             surrogate_seconds=args.surrogate_seconds)


def stage_predictions(config: ExperimentConfig, *, data, predictions, out, quiet: bool = False,
                      require: str | None = None, calibration_predictions=None,
                      surrogate_seconds: float | None = None) -> int:
    """Audit the rollouts in ``predictions`` on ``data/test.h5`` into ``out`` (:func:`audit.run_predictions`).

    Args:
        config, data, out, quiet, require: as in :func:`stage`.
        predictions: HDF5 file of rollouts from the test initial conditions (byai or PDEBench layout).
        calibration_predictions: the same from ``data/calibration.h5``'s initial conditions, or None.
        surrogate_seconds: wall time (s) of one stored rollout, or None (speedup unknown).
    Returns:
        0 when the requirement holds, 1 when it fails.
    """
    import jax

    import audit
    import datasets

    cfg = config.section("audit") or audit.AuditConfig()
    try:
        requirement = cfg.to_requirement(require)
    except ValueError as e:
        raise UsageError(str(e)) from None
    data = input_folder(data, "--data", "run byai generate or byai import first")
    for option, path in (("--predictions", predictions), ("--calibration-predictions", calibration_predictions)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{option} {path} is not a file")
    out = output_folder(out)
    test = datasets.open(data / "test.h5", verify=True)
    config.check_data(data / "test.h5", test.attrs)
    calibration = (datasets.open(data / "calibration.h5", verify=True)
                   if calibration_predictions is not None else None)
    with output_lock(out, owner=jax.process_index() == 0):
        report = audit.run_predictions(
            Path(predictions), test, calibration, None if calibration_predictions is None else
            Path(calibration_predictions), requirement, config=cfg, surrogate_seconds=surrogate_seconds,
            pde_classes=config.pde_classes(), out_dir=out, provenance={"data_dir": str(data.resolve())},
            repeats=config.run_settings("audit").repeats, quiet=quiet or not sys.stderr.isatty(),
            stride=predictions_stride(config))
    print(one_line(report.summary))
    return 0 if report.passed else 1


def stage(config: ExperimentConfig, *, data, model, out, quiet: bool = False, require: str | None = None) -> int:
    """Audit the model in ``model`` on ``data/test.h5`` (calibrated on ``data/calibration.h5``) into ``out``.

    Args:
        config: the experiment; its ``[audit]`` section and run settings (``audit.AuditConfig`` and
            :class:`experiments._config.AuditRunSettings` defaults when absent).
        data: the dataset folder (``test.h5``, ``calibration.h5``; ``train.h5`` for provenance).
        model: the trained model folder.
        out: the report folder (``report.json``, ``report.html``, ``predictions.h5``).
        quiet: no progress messages or bars (there are none either when stderr is not a terminal).
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
    step = step_of(info, config)
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
                           generation_cost=audit.generation_cost(data), training_cost=audit.training_cost(model),
                           **step)
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
    conformal = (f"conformal bound {_g(c['bound'])} (alpha {c['alpha']:g}, test coverage {_g(c['coverage_test'])})"
                 if c.get("bound") is not None else f"no conformal bound ({c.get('status', 'unknown')})")
    parts = [f"{s['verdict'].upper()} {req['text']} over {req['horizon']} steps: "
             f"q{req['quantile']:g} {_g(sc['test_quantile'])}, {conformal}"]
    parts.append("tolerance multiple unknown" if tm == "unknown"
                 else f"rmse {_g(tm['rmse']['mean'])}x solver tolerance (mean)")
    if eq.get("status") == "measured" and eq.get("speedup") is None:
        parts.append("speedup at equal accuracy unknown (no surrogate time)")
    elif eq.get("status") == "measured":
        parts.append(f"speedup at equal accuracy {_g(eq['speedup'])} ({eq['speedup_bound']} bound)"
                     if eq["speedup_bound"] != "exact" else f"speedup at equal accuracy {_g(eq['speedup'])}")
    else:
        parts.append(f"equal accuracy {eq.get('status')}")
    return "; ".join(parts)
