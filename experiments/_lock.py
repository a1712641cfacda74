"""One writer per output folder: an exclusive, advisory lock held while a command writes there; and files that
appear whole or not at all (:func:`write_atomically`).

``output_lock(folder)`` takes ``fcntl.flock`` on ``folder/.byai.lock`` (without
waiting) and writes the holder's process id into it. A second writer is
refused in one line naming that process id. The operating system releases a
flock when its process ends, however it ends, so the lock of a killed process
is never stale: the next writer simply takes it over. The file is removed on a
clean exit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from solvers import ByaiError

LOCK_NAME = ".byai.lock"


class LockedError(ByaiError):
    """Another process is writing into the same output folder."""


@contextlib.contextmanager
def output_lock(folder, *, owner: bool = True):
    """Hold the write lock of ``folder`` (created if missing) for the ``with`` block.

    Args:
        folder: the output folder.
        owner: take the lock (False: do nothing, for the processes of a multi-process
            run that are not process 0 and write into the same folder by design).
    Raises:
        LockedError: another live process holds the lock (the message names its process id).
    """
    if not owner:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{folder} is being written by another byai process (pid {holder}); wait for it to "
                              "finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


def write_atomically(path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix) and rename it to ``path``.

    Readers see the old file or the new one, never a part; the temporary file is removed when ``write``
    fails (a full disk, an interrupt).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
