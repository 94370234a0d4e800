"""bench/servers.py's ``started``: a server command in a process group of its own, up once its URL
answers, and the whole group gone afterwards, children that ignore SIGTERM included.

A tiny Python HTTP server stands in for MLflow's (seconds, no model).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request

import psutil
import pytest

from bench.servers import free_port, started

# An HTTP server that first starts a child which ignores SIGTERM, as MLflow's job consumers
# outlive a SIGTERM to `mlflow server`; the child's pid goes to argv[2].
SERVER = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
open(sys.argv[2], "w").write(str(child.pid))
http.server.test(http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_started_waits_for_the_url_and_stops_the_whole_group(tmp_path):
    port, pid_file = free_port(), tmp_path / "child.pid"
    command = [sys.executable, "-c", SERVER, str(port), str(pid_file)]
    url = f"http://127.0.0.1:{port}"
    with started(command, url, tmp_path / "log", cwd=tmp_path, stop_timeout=2) as server:
        with urllib.request.urlopen(url, timeout=5) as response:  # up when the block starts
            assert response.status == 200
        child = int(pid_file.read_text())
        assert os.getpgid(child) == os.getpgid(server.process.pid) == server.process.pid
        assert os.getpgid(server.process.pid) != os.getpgid(0)
    assert not server.alive()
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not gone(child):
        os.kill(child, 9)  # not left behind by a failing test
        pytest.fail("a child that ignores SIGTERM outlived the server's stop")


def test_a_server_that_dies_before_answering_fails_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no such store'); sys.exit(3)"]
    with (
        pytest.raises(RuntimeError, match=r"(?s)exited with status 3.*no such store"),
        started(command, f"http://127.0.0.1:{free_port()}", tmp_path / "log"),
    ):
        pass


def test_a_server_that_never_answers_times_out_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    with (
        pytest.raises(RuntimeError, match=r"(?s)did not answer within 2 s.*starting"),
        started(command, f"http://127.0.0.1:{free_port()}", tmp_path / "log", timeout=2),
    ):
        pass
