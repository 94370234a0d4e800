"""The README's tour, run for real: every shell line of its code blocks, in order, in a fresh
project on a small profile of the shared data; the lines that keep running (``charmt ui``,
``mlflow models serve``) started in the background until the tour is done."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from commands import subprocess_env
from doc_reading import split_commands
from projects import PROJECT, make_project

from charmt.io.processes import answers, free_port
from charmt.io.processes import stop_group as stop

SHARED_DATA = PROJECT.parent / "shared" / "data" / "fra-eng.zip"
# The smallest profile of the shared data that runs every step (the README's example sentences
# use only characters of its first 500 pairs); far too short to translate well.
# .ci/pipeline-check trains on 2,000 of its pairs and checks the scores.
TOUR_PARAMS = {
    "data": {"num_samples": 500},
    "train": {"epochs": 1, "latent_dim": 32},
    "evaluate": {"batch_size": 256},
}
# Commands that keep running: started in the background, and stopped once the tour is done.
SERVERS = (["charmt", "ui"], ["mlflow", "models", "serve"])


def tour_lines() -> list[str]:
    """The README's tour: the shell lines of its code blocks, in order, continuations joined."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    lines, pending = [], ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending)
        pending = ""
    return lines


def is_server(line: str) -> bool:
    words = [c.words for c in split_commands(0, line)]
    return any(w[: len(s)] == s for w in words for s in SERVERS)


def wait_until(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 300):
    """Poll ``condition`` until it returns something true; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        tail = log.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"{what}: exited with {process.returncode}:\n{tail}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s:\n{tail}"
        time.sleep(0.5)
    return result


def start_server(line: str, project: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a tour line that keeps running, in its own process group; return once it answers."""
    if line.startswith("charmt ui"):
        line += " --no-browser --port 0"  # no browser here, and any free port
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", line],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if line.startswith("charmt ui"):

        def printed_link():
            found = re.search(r"http://127\.0\.0\.1:\d+/#/\S+", log.read_text(errors="replace"))
            return found and found.group(0)

        link = wait_until(printed_link, "charmt ui's link", server, log)
        assert link.endswith("/runs?workflowType=machine_learning"), link
        assert answers(link.split("/#/")[0] + "/health")
    else:
        port = line.split("--port ")[1].split()[0]
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/ping"), "serving", server, log)
    return server


@pytest.mark.e2e
def test_the_readme_tour_runs(tmp_path):
    if not SHARED_DATA.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} not found (CI puts shared/ beside the checkout)")
        pytest.skip(f"{SHARED_DATA} not found")
    lines = tour_lines()
    assert lines[0] == "dvc repro"
    exp_run = next(line for line in lines if line.startswith("dvc exp run -S"))
    assert any(line.startswith("charmt ui") for line in lines)
    project = make_project(tmp_path / "project", SHARED_DATA, TOUR_PARAMS)
    env = {k: v for k, v in subprocess_env().items() if k != "MLFLOW_TRACKING_URI"}
    servers: list[subprocess.Popen] = []
    outputs: dict[str, str] = {}
    # A shared machine: the README's fixed ports may be taken, so the served model gets a free one.
    port = str(free_port())
    try:
        for line in lines:
            line = line.replace("--port 5001", f"--port {port}")
            line = line.replace("localhost:5001/", f"localhost:{port}/")
            if is_server(line):
                log = tmp_path / f"server-{len(servers)}.log"
                servers.append(start_server(line, project, env, log))
                continue
            done = subprocess.run(
                ["bash", "-c", line],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{line} failed:\n{output[-5000:]}"
            outputs[line.split(" -")[0]] = output
    finally:
        for server in servers:
            stop(server)

    assert "Running stage 'train'" in outputs["dvc repro"]
    # The changed param re-ran train and evaluate only.
    rerun = outputs[exp_run.split(" -")[0]]
    assert "Running stage 'train'" in rerun and "Running stage 'evaluate'" in rerun
    assert "Running stage 'preprocess'" not in rerun
    assert "128" in outputs["dvc exp show"]
    translate = next(line for line in lines if line.startswith("charmt translate"))
    assert len(outputs[translate].strip().splitlines()) >= 2
    assert '"predictions"' in outputs["curl"]
