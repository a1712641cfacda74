"""``byai generate CONFIG.toml --out DIR [--quiet]``: the ``[data]`` section -> one HDF5 file per split.

A multi-host generation joins its processes with ``[train]``'s launch settings (the same as ``byai train``:
:func:`experiments._launch.initialize_distributed`); process 0 holds the write lock of ``DIR``.
"""

from __future__ import annotations

from experiments._cli import output_folder
from experiments._config import ExperimentConfig, load
from experiments._launch import initialize_distributed
from experiments._lock import output_lock

SPLITS = ("train", "val", "calibration", "test")


def add_arguments(parser) -> None:
    parser.add_argument("config", help="experiment TOML with a [data] section")
    parser.add_argument("--out", required=True, help="output folder for train.h5, val.h5, calibration.h5, test.h5")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--split", action="append", choices=SPLITS,
                        help="generate only this split (repeatable; default: all)")


def run(args) -> int:
    return stage(load(args.config, sections=("data",)), out=args.out, quiet=args.quiet, splits=args.split)


def stage(config: ExperimentConfig, *, out, quiet: bool = False, splits=None) -> int:
    """Generate the dataset of ``config``'s ``[data]`` section into the folder ``out``.

    Args:
        config: the experiment; its ``[data]`` section is required (``[train]``'s launch settings, when given,
            join the processes of a multi-host run).
        out: the dataset folder (created; an interrupted generation there resumes).
        quiet: no progress bar and no list of the files written.
        splits: the splits to generate (default: every split with samples).
    Returns:
        0.
    """
    spec = config.require("data")
    out = output_folder(out)
    initialize_distributed(config.run_settings("train"))

    import jax

    import datasets

    with output_lock(out, owner=jax.process_index() == 0):
        paths = datasets.generate(spec, out, quiet=quiet, splits=splits)
    if not quiet:
        for split, path in paths.items():
            print(f"{split}: {path}")
    return 0
