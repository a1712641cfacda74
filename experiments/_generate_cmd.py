"""``byai generate CONFIG.toml --out DIR [--quiet]``: the ``[data]`` section -> one HDF5 file per split."""

from __future__ import annotations

from experiments._cli import UsageError
from experiments._toml import from_dict, load_toml


def add_arguments(parser) -> None:
    parser.add_argument("config", help="experiment TOML with a [data] section")
    parser.add_argument("--out", required=True, help="output folder for train.h5, val.h5, calibration.h5, test.h5")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--split", action="append", choices=("train", "val", "calibration", "test"),
                        help="generate only this split (repeatable; default: all)")


def run(args) -> int:
    import datasets

    table = load_toml(args.config)
    if "data" not in table:
        raise UsageError(f"{args.config}: no [data] section")
    spec = from_dict(datasets.DatasetSpec, table["data"], "data")
    paths = datasets.generate(spec, args.out, quiet=args.quiet, splits=args.split)
    if not args.quiet:
        for split, path in paths.items():
            print(f"{split}: {path}")
    return 0
