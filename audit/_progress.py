"""Progress bars and messages of the audit, the hybrid comparison and the crossover study.

A bar ticks on the host between calls (never inside jitted code, never inside a timed
region) and shows on stderr only when stderr is a terminal and the caller is not quiet;
otherwise it is tqdm's disabled bar, whose ``update`` does nothing. A bar is transient
(``leave=False``): the message lines, written through :func:`echo` so that they appear
above a running bar instead of through it, remain the record of what ran.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str, quiet: bool, *, unit: str = "it") -> tqdm:
    """A progress bar of ``total`` ticks on stderr, disabled when ``quiet`` or when stderr is not a terminal.

    Use it as a context manager (``with bar(n, "rollouts", quiet) as b: ... b.update()``): it is
    closed cleanly when the work stops early or raises, at whatever count it reached.
    """
    stream = sys.stderr
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=stream,
                disable=quiet or not _is_terminal(stream))


def echo(message: str) -> None:
    """Write one message line on stderr, above any running bar."""
    tqdm.write(message, file=sys.stderr)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream (pythonw), or a closed one
        return False
