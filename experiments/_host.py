"""Settings the ``byai`` command applies to its own process (the libraries never change their host process).

glibc returns a freed block larger than its mmap threshold to the kernel at once,
and trims the top of the heap when more than its trim threshold is free. XLA on
CPU allocates a jitted program's temporaries afresh on every call (the training
step compiles them into heaps of at most 16 MiB, see ``surrogates/_train.py``),
so with the defaults every step can page-fault its temporaries in again,
zero-filled by the kernel: ~96k faults and ~40% of an FNO step's CPU time
(measured with getrusage on the fno1d benchmark). Serving blocks up to 32 MiB
(glibc's largest threshold) from the heap and never trimming it cut that to
~6-30k faults and 15-80 ms of kernel time per step. The cost: the process keeps
its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def reuse_freed_host_memory() -> bool:
    """glibc: serve blocks up to 32 MiB from the heap and never trim it; False where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False
