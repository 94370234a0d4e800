"""What the benchmark drivers (bench/run.py, bench/quality.py) share: their work and results
folders, the raw pairs file, and a worker run in a fresh process.

A worker is the driver's own script run again with ``--worker ...``: a fresh process, so each
measurement starts from an empty TensorFlow (memory, threads, compiled graphs) and its peak
memory is its own. It prints its result as JSON on the last line of its standard output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"


def raw_pairs(data: str) -> str:
    """``data`` (a URL, a zip or a fra.txt) as the raw pairs file in WORK, fetched once."""
    from charmt.data.download import fetch_pairs_file

    raw = WORK / "fra.txt"
    if not raw.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        fetch_pairs_file(data, raw, progress=False)
    return str(raw)


class WorkerFailed(Exception):
    """A worker process exited non-zero; ``stderr`` is the end of what it wrote there (empty
    when it wrote to the terminal)."""

    def __init__(self, name: str, stderr: str) -> None:
        super().__init__(f"worker {name} failed")
        self.stderr = stderr


def run_worker(script: str, args: Sequence[str], name: str, show_progress: bool = False) -> dict:
    """Run ``script`` with ``args`` in a fresh Python; the JSON of its standard output's last line.

    ``show_progress``: its standard error goes to this terminal as it runs, instead of being kept
    for ``WorkerFailed``. The caller's PYTHONPATH is kept after the project root, so that a worker
    imports the same charmt as the driver (a checkout on PYTHONPATH, not the installed one).
    """
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, script, *args],
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path),
    )
    if done.returncode != 0:
        raise WorkerFailed(name, (done.stderr or "")[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
