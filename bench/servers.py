"""Real servers on 127.0.0.1 for the tests and the benchmarks (not part of the installed library).

Serving a logged ``translator`` with ``mlflow models serve`` on this machine, for checks.

``served(uri)`` starts the real MLflow scoring server (``--env-manager local``: this environment,
no new virtualenv) on a free 127.0.0.1 port, waits until it answers ``/ping``, and stops it
afterwards. ``post`` sends one request and returns the status code and body, error codes included.
Used by the load test (``bench/load.py``) and the serving tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Server:
    """A running scoring server: its base URL and process."""

    url: str
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(
    model_uri: str,
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[Server]:
    """Serve ``model_uri`` on 127.0.0.1 until the block ends; its output goes to ``log_path``."""
    port = free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    command = [
        str(mlflow_cli) if mlflow_cli.exists() else "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=dict(env or os.environ)
        )
        server = Server(f"http://127.0.0.1:{port}", process)
        try:
            _wait_until_up(server, log_path, timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(server: Server, log_path: str | os.PathLike[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(f"{server.url}/ping", timeout=2) as response,
        ):
            if response.status == 200:
                return
        if not server.alive():
            tail = Path(log_path).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow models serve exited early; its log ends:\n{tail}")
        time.sleep(0.3)
    raise RuntimeError(f"mlflow models serve did not answer /ping within {timeout:.0f} s")


def post(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    timeout: float = 120,
) -> tuple[int, str]:
    """POST ``body`` to ``url``; the status code and the body as text (error responses too)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def process_tree_rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MiB (Linux /proc)."""
    total_kib = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
    return total_kib / 1024
