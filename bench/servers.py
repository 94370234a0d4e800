"""Real servers on 127.0.0.1 for the tests and the benchmarks (not part of the installed library).

``started(command, url, log_path)`` runs any server command in a process group of its own, its
output in a log file, until ``url`` answers; on exit it stops the whole group (``mlflow server``'s
uvicorn workers and job consumers outlive a SIGTERM to the parent otherwise). ``free_port`` finds
a port to give it.

``served(uri)`` starts the real MLflow scoring server for a logged ``translator``
(``mlflow models serve --env-manager local``: this environment, no new virtualenv) on a free port
the same way, waits until it answers ``/ping``, and stops it afterwards. ``post`` sends one
request and returns the status code and body, error codes included. Used by the load test
(``bench/load.py``) and the serving tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from charmt.io.processes import free_port, stop_group, wait_until_answers

__all__ = ["Server", "free_port", "post", "served", "started"]


class Server:
    """A server started by :func:`started`: its base URL, process (the group's leader) and log."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path) -> None:
        self.url, self.process, self.log_path = url, process, log_path
        self._stopped = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Send ``sig`` to the server's whole process group, then SIGKILL to whatever of the
        group is left after ``timeout`` seconds. Once only: after the leader is reaped, its
        group id may be reused by an unrelated process."""
        if not self._stopped:
            self._stopped = True
            stop_group(self.process, sig, timeout)


@contextlib.contextmanager
def started(
    command: Sequence[str],
    url: str,
    log_path: str | os.PathLike[str],
    ready: Sequence[str] = ("",),
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 180,
    stop_timeout: float = 15,
) -> Iterator[Server]:
    """Run ``command`` (a server listening at base URL ``url``) until the block ends.

    Its stdout and stderr are appended to ``log_path``. The block starts once every path of
    ``ready`` (``url`` + path, in order) answers 200; a ``RuntimeError`` with the log's tail if
    the process exits first or ``timeout`` seconds pass. On exit the process group gets SIGTERM,
    then SIGKILL after ``stop_timeout`` seconds (:meth:`Server.stop`).
    """
    log_path = Path(log_path)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env if env is not None else os.environ),
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(url, process, log_path)
    try:
        deadline = time.monotonic() + timeout
        for path in ready:
            why_not = wait_until_answers(url + path, process, deadline - time.monotonic())
            if why_not is not None:
                raise RuntimeError(f"{command[0]} {why_not}; {log_path} ends:\n{server.log_tail()}")
        yield server
    finally:
        server.stop(timeout=stop_timeout)


def mlflow_command() -> str:
    """The ``mlflow`` command of this interpreter's environment (else the one on PATH)."""
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    return str(mlflow_cli) if mlflow_cli.exists() else "mlflow"


@contextlib.contextmanager
def served(
    model_uri: str,
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
    cwd: str | os.PathLike[str] | None = None,
) -> Iterator[Server]:
    """Serve ``model_uri`` on 127.0.0.1 until the block ends; its output goes to ``log_path``."""
    port = free_port()
    command = [
        mlflow_command(),
        *("models", "serve", "-m", model_uri, "--env-manager", "local"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    with started(
        command, f"http://127.0.0.1:{port}", log_path, ("/ping",), env, cwd, timeout
    ) as server:
        yield server


def post(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    timeout: float = 120,
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    """POST ``body`` to ``url``; the status code and the body as text (error responses too).

    ``headers`` are sent as well (an ``Authorization`` header, say); ``context`` verifies an
    HTTPS server (``ssl.create_default_context(cafile=...)`` for a private CA)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are still there (Linux /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return found


def process_tree_rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MiB (Linux /proc)."""
    total_kib = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024
