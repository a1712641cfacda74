"""Joining the processes of a multi-host run (``jax.distributed.initialize``), for ``byai generate``, ``train``
and ``run`` alike.

The settings are :class:`experiments._config.LaunchSettings` (the ``[train]`` keys ``coordinator_address``,
``num_processes``, ``process_id``, ``coordinator_timeout``), else the environment ``BYAI_COORDINATOR``,
``BYAI_NUM_PROCESSES``, ``BYAI_PROCESS_ID``. A process says on stderr what it waits for and for how long.

jax aborts the whole process natively (no Python exception) when its coordination client cannot register
within the timeout, so a process other than 0 first waits for the coordinator's port to accept a TCP
connection, and gives up with a one-line :class:`CoordinatorError` when it does not within
``coordinator_timeout`` seconds; only the rest of the timeout goes to ``jax.distributed.initialize``.
Process 0 starts the coordinator itself: when the other processes do not all arrive within the timeout,
jax's native abort (its own message on stderr, after the line saying what it waited for) remains.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time

from experiments._cli import UsageError
from experiments._config import LaunchSettings
from solvers import ByaiError


class CoordinatorError(ByaiError):
    """The coordinator of a multi-host run did not answer in time; the message names it and the timeout."""


def distributed_settings(launch: LaunchSettings) -> tuple[str | None, int | None, int | None]:
    """Coordinator address, process count and id from the config, else from the environment."""
    env = os.environ
    address = launch.coordinator_address or env.get("BYAI_COORDINATOR") or None
    try:
        n = launch.num_processes if launch.num_processes is not None else (
            int(env["BYAI_NUM_PROCESSES"]) if env.get("BYAI_NUM_PROCESSES") else None)
        pid = launch.process_id if launch.process_id is not None else (
            int(env["BYAI_PROCESS_ID"]) if env.get("BYAI_PROCESS_ID") else None)
    except ValueError:
        raise UsageError("BYAI_NUM_PROCESSES and BYAI_PROCESS_ID must be integers") from None
    return address, n, pid


def initialize_distributed(launch: LaunchSettings) -> None:
    """``jax.distributed.initialize`` when a coordinator is configured (before any computation; once per process).

    Raises:
        UsageError: incomplete settings (a coordinator without process count and id, or the reverse).
        CoordinatorError: a process other than 0 could not reach the coordinator within
            ``launch.coordinator_timeout`` seconds.
    """
    import jax

    address, n, pid = distributed_settings(launch)
    if address is None:
        if n not in (None, 1):
            raise UsageError("train.num_processes > 1 needs train.coordinator_address (or BYAI_COORDINATOR)")
        return
    if n is None or pid is None:
        raise UsageError("a coordinator address needs num_processes and process_id (config or BYAI_* environment)")
    if not 0 <= pid < n:
        raise UsageError(f"process id {pid} is not in [0, {n}) (train.process_id or BYAI_PROCESS_ID)")
    if jax.distributed.is_initialized():  # byai run initialises once for all its stages
        return
    host, port = _host_port(address)
    timeout = launch.coordinator_timeout
    what = "starting the coordinator and waiting for the other processes" if pid == 0 else \
        "waiting for the coordinator"
    print(f"byai: process {pid} of {n}: {what} at {address}, for up to {timeout} s (train.coordinator_timeout)",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    if pid != 0:
        _wait_for_port(host, port, deadline, f"process {pid} of {n}", address, timeout)
    try:  # CPU processes exchange gradients through gloo (no effect on accelerators)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):
        pass
    remaining = max(1, math.ceil(deadline - time.monotonic()))
    jax.distributed.initialize(coordinator_address=address, num_processes=n, process_id=pid,
                               initialization_timeout=remaining)


def _host_port(address: str) -> tuple[str, int]:
    """``("host", port)`` of ``"host:port"`` or ``"[v6]:port"``; ``UsageError`` naming the key otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"train.coordinator_address: expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _wait_for_port(host: str, port: int, deadline: float, who: str, address: str, timeout: int) -> None:
    """Return once ``host:port`` accepts a TCP connection; ``CoordinatorError`` when it does not by ``deadline``."""
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CoordinatorError(f"{who} could not reach the coordinator at {address} within {timeout} s "
                                   f"({reason}); start process 0 first, check the address and port, or raise "
                                   "train.coordinator_timeout")
        try:
            with socket.create_connection((host, port), timeout=min(left, 2.0)):
                return
        except OSError as e:
            reason = e.strerror or type(e).__name__
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
