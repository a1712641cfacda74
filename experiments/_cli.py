"""The ``byai`` command line: one verb per stage, each in its own module.

Every verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
User errors (bad config, missing file, bad value) are raised as
:class:`UsageError` (or ``ValueError``/``FileNotFoundError`` from the
libraries) and printed as one line, exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._host import reuse_freed_host_memory

# verb -> (module, one-line help). Modules are imported only when their verb runs.
VERBS = {
    "solve": ("experiments._solve_cmd", "solve a PDE and print a convergence table"),
    "generate": ("experiments._generate_cmd", "generate a reference dataset from a config"),
    "info": ("experiments._info_cmd", "describe a dataset file"),
    "train": ("experiments._train_cmd", "train a surrogate on a dataset"),
    "audit": ("experiments._audit_cmd", "audit a surrogate against an accuracy requirement"),
    "hybrid": ("experiments._hybrid_cmd", "run the guarded hybrid stepper against the solver"),
    "run": ("experiments._run_cmd", "run every stage of one config"),
    "bench": ("experiments._bench_cmd", "benchmark byai on the peers' workloads"),
}


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parser(argv) -> tuple[argparse.ArgumentParser, object]:
    parser = argparse.ArgumentParser(prog="byai", description="High-precision solvers, surrogates and their audit.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verb = argv[0] if argv and argv[0] in VERBS else None
    for name, (module, help_) in VERBS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == verb:  # only the chosen verb's module is imported
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser, verb


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, _ = _parser(argv)
    args = parser.parse_args(argv)
    reuse_freed_host_memory()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("byai: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"byai {args.verb}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # domain errors of the libraries (ResolutionError, DatasetError, ...)
        if type(e).__name__.endswith("Error") and type(e).__module__.split(".")[0] in (
                "solvers", "datasets", "surrogates", "audit", "experiments"):
            print(f"byai {args.verb}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        raise


def _one_line(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in msg:
        msg = f"{msg}: {e.filename}"
    return " ".join(msg.split())


if __name__ == "__main__":
    sys.exit(main())
