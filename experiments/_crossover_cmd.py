"""``byai crossover CONFIG.toml --data DIR --model DIR [--model DIR ...] --out DIR [--shapes 32,64] [--samples N]``.

Maps where a surrogate pays (:func:`audit.crossover`): at each grid size of ``[crossover] shapes``
(or ``--shapes``; a 2-D size ``n`` is ``n x n``) it generates a small reference test set with the
``[data]`` section's PDE, parameters, tolerance, times and seed into ``OUT/data/`` (reused by a
rerun; ``DIR/test.h5`` serves at the data's own size when it was made by the same config), measures
each model's real error (the ``[audit]`` requirement's metric and quantile over its horizon) and
seconds per rollout, runs the audit's equal-accuracy search at that error and writes
``OUT/crossover.png`` and then ``OUT/crossover.json`` (each whole or not at all), holding the write
lock of ``OUT``. Each ``--model`` gives one row per size; its stride is read from its metadata
(1 when absent). Prints one paragraph stating where the speedup crosses 1.
Exit status: 0, or 2 on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments._cli import UsageError, input_folder, output_folder
from experiments._config import ExperimentConfig, load
from experiments._lock import output_lock, write_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML: [data] (required), [audit], [crossover] (defaults when "
                                       "absent)")
    parser.add_argument("--data", required=True, help="dataset folder (its test.h5 is reused at its own size)")
    parser.add_argument("--model", required=True, action="append", metavar="DIR",
                        help="trained model folder (byai train --out); repeat for several models or strides")
    parser.add_argument("--out", required=True, help="output folder (crossover.json, crossover.png, data/)")
    parser.add_argument("--shapes", default=None, metavar="N,N,...",
                        help="grid sizes per axis, e.g. 32,64,128,256 (overrides [crossover] shapes)")
    parser.add_argument("--samples", default=None, type=int, metavar="N",
                        help="reference samples per size (overrides [crossover] samples)")
    parser.add_argument("--repeats", default=None, type=int, metavar="N",
                        help="timed runs of each rollout and solver setting, the fastest kept (overrides "
                             "[audit.equal_accuracy] repeats; more steady the timings on a loaded machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages or progress bars")


def run(args) -> int:
    return stage(load(args.config, sections=("data", "audit", "crossover")), data=args.data, models=args.model,
                 out=args.out, shapes=args.shapes, samples=args.samples, repeats=args.repeats, quiet=args.quiet)


def stage(config: ExperimentConfig, *, data, models, out, shapes: str | None = None, samples: int | None = None,
          repeats: int | None = None, quiet: bool = False) -> int:
    """Measure the models in ``models`` against the solver at equal accuracy across grid sizes into ``out``.

    Args:
        config: the experiment: ``[data]`` (required: how reference data is made), ``[audit]`` (the
            requirement and equal-accuracy settings; timing repeats) and ``[crossover]`` (defaults when absent).
        data: the dataset folder (``test.h5`` reused at its own size when made by this config).
        models: trained model folders.
        out: the output folder.
        shapes: ``"32,64,128"`` replacing ``[crossover] shapes`` (``--shapes``).
        samples: replacing ``[crossover] samples`` (``--samples``).
        repeats: timed runs replacing ``[audit.equal_accuracy] repeats`` (``--repeats``).
        quiet: no progress messages and no progress bars (bars show only when stderr is a terminal).
    Returns:
        0.
    """
    import dataclasses

    import audit

    spec = config.require("data")
    cfg = config.section("audit") or audit.AuditConfig()
    cross = config.section("crossover") or audit.CrossoverConfig()
    try:
        if shapes is not None:
            cross = dataclasses.replace(cross, shapes=_sizes(shapes))
        if samples is not None:
            cross = dataclasses.replace(cross, samples=samples)
    except ValueError as e:  # CrossoverConfig names the key: shapes or samples
        raise UsageError(f"--{e}") from None
    if repeats is None:
        repeats = config.run_settings("audit").repeats
    elif repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {repeats}")
    data = input_folder(data, "--data", "run byai generate first")
    original = data / "test.h5"
    if original.is_file():
        import datasets

        config.check_data(original, datasets.open(original).attrs)
    folders = [input_folder(m, "--model", "run byai train first") for m in models]
    if len({f.resolve() for f in folders}) != len(folders):
        raise UsageError("--model: the same folder is given twice")
    out = output_folder(out)
    from tqdm import tqdm

    # messages through tqdm.write appear above the running progress bars
    say = (lambda m: None) if quiet else (lambda m: tqdm.write(f"byai crossover: {m}", file=sys.stderr))
    crossover_models = [_model(f, spec) for f in folders]

    import jax

    with output_lock(out, owner=jax.process_index() == 0):
        result = audit.crossover(spec, crossover_models, shapes=cross.shapes, samples=cross.samples,
                                 cache=out / "data", requirement=cfg.to_requirement(), config=cfg,
                                 original=original if original.is_file() else None,
                                 repeats=repeats, pde_classes=config.pde_classes(),
                                 say=say, quiet=quiet)
        (out / "crossover.json").unlink(missing_ok=True)  # beside a crossover.json is always its own png
        write_atomically(out / "crossover.png", result.plot)
        write_atomically(out / "crossover.json",
                         lambda tmp: tmp.write_text(json.dumps(result.summary, indent=1, allow_nan=False)))
    say(f"wrote {out / 'crossover.json'} and {out / 'crossover.png'}")
    print(result.sentence())
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    """``"32,64,128"`` as ``(32, 64, 128)``."""
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"shapes: expected comma-separated grid sizes such as 32,64,128, got {text!r}") from None


def _model(folder: Path, spec):
    """The :class:`audit.CrossoverModel` of a trained model folder: its stepper, stride (metadata, default 1) and
    the grids it can run on; ``UsageError`` for a model of another PDE."""
    import audit
    import surrogates
    from experiments._audit_cmd import load_model

    meta = surrogates.read_metadata(folder)
    stepper, info, with_params = load_model(folder)
    recorded = str(info.get("pde", spec.pde_name))
    if recorded.strip().lower() != spec.pde_name.lower():
        raise UsageError(f"--model {folder} was trained on pde {recorded!r}, but the config's [data] pde is "
                         f"{spec.pde!r}")
    model_config = meta.get("model_config") if isinstance(meta.get("model_config"), dict) else {}
    stride = audit.model_stride(meta, f"--model {folder}")
    window = meta.get("input_steps", 1)
    if window != 1:  # its state is a window of frames, which the study does not start rollouts from
        reason = f"a model of input_steps = {window!r} (a window stepper) is not measured by byai crossover"
        return audit.CrossoverModel(str(folder), stepper, stride, with_params, lambda shape: reason)
    return audit.CrossoverModel(str(folder), stepper, stride, with_params,
                                lambda shape: audit.model_grid_problem(model_config, shape))
