"""The ``byai`` command line: one verb per stage, each in its own module.

Every verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``;
the stage verbs (generate, train, audit, hybrid) also expose
``stage(config, *, out, ...) -> int``, which ``run`` calls with the loaded
config and which ``byai run`` calls directly.

Exit status: 0 success; 1 a requirement failed (``byai audit``, ``byai run``);
2 a user error, any :class:`solvers.ByaiError` (bad argument, file or config
value, or a computation that cannot keep its promise), printed as one line
``byai VERB: error: ...``; 130 interrupted; 3 any other exception, which is a
bug in byai and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from solvers import ByaiError

from ._host import reuse_freed_host_memory

# verb -> (module, one-line help). Modules are imported only when their verb runs.
VERBS = {
    "solve": ("experiments._solve_cmd", "solve a PDE and print a convergence table"),
    "generate": ("experiments._generate_cmd", "generate a reference dataset from a config"),
    "info": ("experiments._info_cmd", "describe a dataset file"),
    "train": ("experiments._train_cmd", "train a surrogate on a dataset"),
    "audit": ("experiments._audit_cmd", "audit a surrogate against an accuracy requirement"),
    "hybrid": ("experiments._hybrid_cmd", "run the guarded hybrid stepper against the solver"),
    "export": ("experiments._export_cmd", "export a trained surrogate as a jax.export program"),
    "run": ("experiments._run_cmd", "run every stage of one config"),
    "bench": ("experiments._bench_cmd", "benchmark byai on the peers' workloads"),
}

EXIT_USER_ERROR = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


class UsageError(ByaiError):
    """A bad command-line argument or input path; the message names the argument or the file."""


def output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder to write into (it may not exist yet); ``UsageError`` naming ``option`` when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a folder")
    return path


def input_folder(path, option: str, hint: str = "") -> Path:
    """``path`` as an existing folder; ``UsageError`` naming ``option`` (and what makes the folder) otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{option} {path} is not a folder" + (f" ({hint})" if hint else ""))
    return path


def _parser(verb: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="byai", description="High-precision solvers, surrogates and their audit.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (module, help_) in VERBS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == verb:  # only the chosen verb's module is imported
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = argv[0] if argv and argv[0] in VERBS else None  # otherwise argparse prints the usage and exits
    try:
        args = _parser(verb).parse_args(argv)
        reuse_freed_host_memory()
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("byai: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ByaiError as e:
        print(f"byai {verb}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception:
        traceback.print_exc()
        print(f"byai {verb}: internal error: the traceback above is a bug in byai", file=sys.stderr)
        return EXIT_BUG


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (its class name when it has none)."""
    return " ".join((str(e) or type(e).__name__).split())


if __name__ == "__main__":
    sys.exit(main())
