"""``byai import pdebench|the_well SOURCE --out DIR [--pde NAME] [--param k=v ...] [--splits ...] [--seed S]``.

Imports one PDEBench file, or a The Well file or split folder, as ``DIR/train.h5``, ``val.h5``,
``calibration.h5`` and ``test.h5`` (:func:`datasets.import_splits`): a permutation of the source's
samples drawn with the seed, cut in that order, so ``DIR`` is a ``--data`` for ``byai train``,
``audit`` and ``hybrid``. Default splits: 10 % each for val, calibration and test (at least one sample
each), the rest train. A rerun with the same arguments keeps the files already written; the command
holds the write lock of ``DIR``.
"""

from __future__ import annotations

import math

from experiments._cli import UsageError, output_folder
from experiments._lock import output_lock

SPLITS = ("train", "val", "calibration", "test")


def add_arguments(parser) -> None:
    parser.add_argument("format", choices=("pdebench", "the_well"), help="the source's layout")
    parser.add_argument("source", help="the source file (The Well: a file or a split folder of .hdf5 files)")
    parser.add_argument("--out", required=True, help="output folder for train.h5, val.h5, calibration.h5, test.h5")
    parser.add_argument("--pde", default="unknown",
                        help="the byai PDE the data satisfies (default unknown; a PDEBench Darcy file is darcy)")
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="a physics parameter of --pde (repeatable), e.g. nu=0.01 or source=1.0")
    parser.add_argument("--splits", default=None, metavar="train=N,val=N,calibration=N,test=N",
                        help="samples per split (missing splits: 0); default 10%% each for val, calibration "
                             "and test, the rest train")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutation of the source's samples")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")


def _pairs(items, option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        if key.strip() in out:
            raise UsageError(f"{option} {item!r}: {key.strip()} given twice")
        out[key.strip()] = value.strip()
    return out


def parse_params(items) -> dict[str, float]:
    """``["nu=0.01", ...]`` -> ``{"nu": 0.01}``; ``UsageError`` naming ``--param`` for a bad item."""
    out = {}
    for key, value in _pairs(items, "--param").items():
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"--param {key}={value}: the value must be a number") from None
        if not math.isfinite(v):
            raise UsageError(f"--param {key}={value}: the value must be finite")
        out[key] = v
    return out


def parse_splits(text: str | None) -> dict[str, int] | None:
    """``"train=80,test=10"`` -> ``{"train": 80, "test": 10}``; ``UsageError`` naming ``--splits`` otherwise."""
    if text is None:
        return None
    out = {}
    for key, value in _pairs([p for p in text.split(",") if p.strip()], "--splits").items():
        if key not in SPLITS:
            raise UsageError(f"--splits {key}={value}: unknown split (allowed: {', '.join(SPLITS)})")
        if not value.isdigit():
            raise UsageError(f"--splits {key}={value}: the number of samples must be an integer >= 0")
        out[key] = int(value)
    if not any(out.values()):
        raise UsageError(f"--splits {text!r}: at least one split must have samples")
    return out


def run(args) -> int:
    import datasets

    out = output_folder(args.out)
    params = parse_params(args.param)
    splits = parse_splits(args.splits)
    with output_lock(out):
        paths = datasets.import_splits(args.format, args.source, out, splits=splits, seed=args.seed, pde=args.pde,
                                       pde_params=params)
    if not args.quiet:
        for split, path in paths.items():
            print(f"{split}: {path}")
    return 0
