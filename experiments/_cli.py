"""The ``byai`` command line: one verb per stage, each in its own module.

Every verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``;
the stage verbs (generate, train, audit, hybrid) also expose
``stage(config, *, out, ...) -> int``, which ``run`` calls with the loaded
config and which ``byai run`` calls directly.

Exit status: 0 success; 1 a requirement failed (``byai audit``, ``byai run``);
2 a user error, any :class:`solvers.ByaiError` (bad argument, file or config
value, or a computation that cannot keep its promise), printed as one line
``byai VERB: error: ...``, and a fault of the machine (a full disk or quota, a
read-only or unwritable folder, a file over the size limit, an I/O error: an
``OSError`` of :data:`MACHINE_FAULTS`), printed as one line naming the file and
the cause; 130 interrupted by SIGINT (Ctrl-C); 143 terminated by SIGTERM (what a
batch scheduler sends before it kills a job), handled exactly like SIGINT; 3 any
other exception, which is a bug in byai and keeps its traceback.

An interrupted or terminated command and one stopped by a machine fault keep
what they completed (the dataset journal, the last checkpoint, the finished
stages of ``byai run``): rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path

from solvers import ByaiError

from ._host import reuse_freed_host_memory

# verb -> (module, one-line help). Modules are imported only when their verb runs.
VERBS = {
    "solve": ("experiments._solve_cmd", "solve a PDE and print a convergence table"),
    "generate": ("experiments._generate_cmd", "generate a reference dataset from a config"),
    "info": ("experiments._info_cmd", "describe a dataset file"),
    "import": ("experiments._import_cmd", "import a PDEBench or The Well dataset as byai split files"),
    "train": ("experiments._train_cmd", "train a surrogate on a dataset"),
    "audit": ("experiments._audit_cmd", "audit a surrogate against an accuracy requirement"),
    "hybrid": ("experiments._hybrid_cmd", "run the guarded hybrid stepper against the solver"),
    "crossover": ("experiments._crossover_cmd", "map where a surrogate pays against the solver across grid sizes"),
    "export": ("experiments._export_cmd", "export a trained surrogate as a jax.export program"),
    "run": ("experiments._run_cmd", "run every stage of one config"),
    "bench": ("experiments._bench_cmd", "benchmark byai on the peers' workloads"),
}

EXIT_USER_ERROR = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

# errno -> the cause, for the OSErrors that are faults of the machine rather than bugs of byai
MACHINE_FAULTS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (over the file system's or the process's file size limit)",
    errno.EIO: "input/output error of the storage device",
}
_WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # only a write can meet these
# HDF5 (h5py) reports a system error in its message text: "errno = 28, error message = 'No space left ...'"
_H5_ERRNO = re.compile(r"errno = (\d+)")
_H5_TEXTS = {"no space left": errno.ENOSPC, "read-only file system": errno.EROFS,
             "disk quota exceeded": errno.EDQUOT, "file too large": errno.EFBIG}
_H5_FILE = re.compile(r"\b(?:file)?name = '([^']+)'")


class UsageError(ByaiError):
    """A bad command-line argument or input path; the message names the argument or the file."""


def output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder to write into (it may not exist yet); ``UsageError`` naming ``option`` when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a folder")
    for parent in path.parents:  # the nearest existing folder above it must be one
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
            break
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread; a ``KeyboardInterrupt`` so that it unwinds exactly like Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def _raise_interrupts_again(hook):
    """``sys.unraisablehook`` that delivers a swallowed interrupt again, else calls ``hook``.

    Python runs a signal handler in the main thread at the next bytecode, which may be inside a
    finaliser or a garbage collector callback (JAX installs one); an exception raised there cannot
    propagate and is only reported. For ``Terminated`` and ``KeyboardInterrupt`` the signal is sent
    again instead, 10 ms later from another thread (sent from the main thread, its handler would run
    at once, still inside the hook), so the handler runs again after the callback has returned, and
    the command stops as it should.
    """
    def handle(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, KeyboardInterrupt):
            again = threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGTERM if isinstance(exc, Terminated)
                                                    else signal.SIGINT))
            again.daemon = True
            again.start()
            return
        hook(unraisable)

    return handle


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = argv[0] if argv and argv[0] in VERBS else None  # otherwise argparse prints the usage and exits
    args = None
    previous = _on_sigterm(_terminate)
    previous_hook = sys.unraisablehook
    ours = sys.unraisablehook = _raise_interrupts_again(previous_hook)
    try:
        args = _parser(verb).parse_args(argv)
        reuse_freed_host_memory()
        return int(args._run(args) or 0)
    except Terminated:
        print(f"byai {verb}: terminated (SIGTERM); what was complete is kept and a rerun resumes", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("byai: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ByaiError as e:
        print(f"byai {verb}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        fault = machine_fault(e, getattr(args, "out", None))
        if fault is not None:
            print(f"byai {verb}: error: {fault}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        print(f"byai {verb}: internal error: the traceback above is a bug in byai", file=sys.stderr)
        return EXIT_BUG
    finally:
        _on_sigterm(previous)
        # a hook installed on top of ours during the command stays: the checkpoints' filter of what orbax's
        # threads still report after a failed write or restore (surrogates/_checkpoint.py), when the process ends
        if sys.unraisablehook is ours:
            sys.unraisablehook = previous_hook


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM and return the previous one (nothing, off the main thread)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread of the interpreter: signals cannot be handled here
        return None


def machine_fault(e: BaseException, out=None) -> str | None:
    """One line for an ``OSError`` in ``e`` or its causes that is a fault of the machine (:data:`MACHINE_FAULTS`),
    naming the file when the error knows it (else the output folder ``out``), or ``None``."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):
            code, path = _fault_of(e)
            if code in MACHINE_FAULTS:
                where = f" {path}" if path else (f" under {out}" if out else "")
                verb = "while writing" if code in _WRITE_FAULTS else "while reading or writing"
                return f"{MACHINE_FAULTS[code]} {verb}{where}; what was complete is kept and a rerun resumes"
        e = e.__cause__ or e.__context__
    return None


def _fault_of(e: OSError) -> tuple[int | None, str | None]:
    """The errno and file name of an ``OSError``, read from h5py's message text where it carries them there."""
    text = str(e)
    code = e.errno
    if code not in MACHINE_FAULTS:
        m = _H5_ERRNO.search(text)
        code = int(m.group(1)) if m else next((c for t, c in _H5_TEXTS.items() if t in text.lower()), code)
    path = e.filename
    if path is None:
        m = _H5_FILE.search(text)
        path = m.group(1) if m else None
    return code, (None if path is None else str(path))


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (its class name when it has none)."""
    return " ".join((str(e) or type(e).__name__).split())


if __name__ == "__main__":
    sys.exit(main())
