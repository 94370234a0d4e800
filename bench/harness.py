"""What the benchmark drivers (bench/run.py, bench/quality.py) share: their work and results
folders, the raw pairs file, a worker run in a fresh process, the worker's peak memory, the
machine header of a results file, and the writing of that file.

A worker is the driver's own script run again with ``--worker [NAME] ARGS``: a fresh process, so
each measurement starts from an empty TensorFlow (memory, threads, compiled graphs) and its peak
memory is its own. It prints its result as JSON on the last line of its standard output.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
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


# --- the worker protocol ---------------------------------------------------------------------


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


def answer_as_worker(worker: Callable[..., dict], arguments: str) -> None:
    """The worker's side of ``run_worker``: call ``worker`` with the JSON ``arguments`` (keyword
    arguments) and print its result as the one JSON line the driver reads."""
    print(json.dumps(worker(**json.loads(arguments))))


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the results file ------------------------------------------------------------------------


def machine() -> dict:
    """The machine header of a results file: its CPUs and platform."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform()}


def cpu_name() -> str:
    """The processor's name as the platform reports it (its architecture where it reports none)."""
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """The packages' versions but TensorFlow's: the driver stays free of TensorFlow, so a worker
    that imports it reports it (``tf.__version__``: the distribution is tensorflow-cpu on the CPU
    build, tensorflow on the GPU one)."""
    from importlib.metadata import version

    return {p: version(p) for p in ("keras", "numpy", "mlflow", "dvc")}


def write_results(json_path: Path, results: dict, markdown: str | None = None) -> Path:
    """``results`` as JSON at ``json_path`` and, if given, ``markdown`` beside it (.md), each
    written atomically: a reader (or a run stopped halfway) never sees half a file. The path."""
    from charmt.io.atomic import write_json, write_text

    write_json(json_path, results)
    if markdown is not None:
        write_text(json_path.with_suffix(".md"), markdown)
    return json_path
