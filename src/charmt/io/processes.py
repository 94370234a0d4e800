"""Servers this project starts on 127.0.0.1 (the MLflow UI; in tests and benchmarks, many more):
a free port to give them, a wait until one answers, and a stop that reaches its process group.

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
import time

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a GET of ``url`` answers with a success status now (within 5 s)."""
    import requests  # not at import: the data stages that import this package stay light

    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:  # not up yet, or too busy starting to answer
        return False


def wait_until_answers(url: str, process: subprocess.Popen, timeout: float) -> str | None:
    """Wait until ``url`` answers (``answers``), started by ``process``: None once it does, else
    why not, for the caller's message: the process exited first, or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not answers(url):
        if process.poll() is not None:
            return f"exited with status {process.returncode} before {url} answered"
        if time.monotonic() > deadline:
            return f"did not answer within {timeout:.0f} s at {url}"
        time.sleep(0.3)
    return None


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
