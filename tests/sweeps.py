"""DVC experiment sweeps in tests: the 2 x 2 grid the session's ``sweep`` fixture queues, running
the queue to its end, what ``dvc exp show`` lists, and stopping the queue's workers (daemons that
would outlive the tests otherwise)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from commands import run, subprocess_env
from projects import TINY_PARAMS

# The sweep both tests/test_sweeps.py and tests/test_ui.py look at: a 2 x 2 grid of tiny
# experiments queued on a project with no MLflow store yet, run by two DVC queue workers.
SWEEP = ("train.latent_dim=16,32", "train.learning_rate=0.003,0.01")
SWEEP_PARAMS = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 2}}


def run_queue(project: Path, jobs: int, timeout: float = 900) -> str:
    """``dvc queue start -j jobs``, then wait until nothing is queued or running; the final
    ``dvc queue status``. The workers run in the background; ``dvc queue status`` is how a user
    sees them finish."""
    import time

    # Not through run(): the workers it starts inherit its stdout, and reading that pipe to its
    # end would wait for the whole queue.
    started = subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        cwd=project,
        env={k: v for k, v in subprocess_env().items() if k != "MLFLOW_TRACKING_URI"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    assert started.returncode == 0, "dvc queue start failed"
    deadline = time.monotonic() + timeout
    while True:
        status = run(["dvc", "queue", "status"], project)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout} s:\n{status}"
        time.sleep(5)


def project_processes(project: Path) -> list[str]:
    """Processes whose working directory or command line is under ``project`` (DVC queue
    workers and the experiments they run): ``pid cmdline`` for each."""
    import psutil

    root = str(project.resolve())
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if process.info["pid"] == os.getpid():
            continue
        cwd, cmdline = process.info["cwd"] or "", " ".join(process.info["cmdline"] or ())
        if cwd == root or cwd.startswith(root + os.sep) or root in cmdline:
            found.append(f"{process.info['pid']} {cmdline}")
    return found


def stop_queue(project: Path, grace: float = 30) -> None:
    """Stop the DVC queue's workers of ``project`` and everything they started: ``dvc queue
    stop``, then SIGTERM and at last SIGKILL for whatever still runs under the project.

    The workers are daemons in sessions of their own (dvc_task spawns them with a double fork),
    so they outlive ``dvc queue start`` and the test session unless stopped."""
    import signal
    import time

    import psutil

    subprocess.run(
        ["dvc", "queue", "stop"],
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        timeout=120,
    )
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace
        while project_processes(project) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = project_processes(project)
        if not left:
            return
        if sig is not None:
            for line in left:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(int(line.split()[0])).send_signal(sig)


@dataclass
class Sweep:
    project: Path
    store: str  # the project's own default MLflow store
    status: str  # `dvc queue status` once the queue is empty


def experiments(project) -> dict[str, dict]:
    """``dvc exp show --json``: experiment name -> its data (params, metrics)."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project))
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                found[revision["name"]] = revision["data"]
    return found
