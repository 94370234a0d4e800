"""Servers this project starts on 127.0.0.1 (the MLflow UI; in tests and benchmarks, many more):
a free port to give them, and a stop that reaches their whole process group.

A server started with ``start_new_session=True`` leads a process group of its own, so stopping
the group stops its workers too: ``mlflow ui`` / ``mlflow server`` run uvicorn workers and job
consumers that outlive a SIGTERM to the parent otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Send ``sig`` to ``process``'s whole group, then SIGKILL to whatever of the group is left
    after ``timeout`` seconds, and reap ``process``. Call it once: after the leader is reaped, its
    group id may be reused by an unrelated process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the leader's children, if it is gone
    process.wait(timeout=30)
