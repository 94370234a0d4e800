"""End to end, a plain ``mlflow server`` on a throwaway PostgreSQL cluster with proxied
artifacts, and the pipeline's train stage using it over HTTP only: a training that loses the
server is kept and logged once it is back, and a stopped server makes the train stage fail at
once, in one line. What a pipeline run logs through a server, its champion, ``charmt translate``
and ``mlflow models serve`` from it are proved on the team's server (tests/team_server.py and
its tests/test_team_*.py), PostgreSQL and proxied artifacts too, behind nginx and basic auth.

Each scenario has its own project, its own server and its own database; they share only the
PostgreSQL cluster (one per test process, with the team's tests), in which none of them touches
another's database, so any order passes.

Needs the system's PostgreSQL 15 (``.ci/install-system-packages``): skipped without it, except in
CI (env CI set), where that is a failure. PostgreSQL refuses to run as root: as root, the cluster
runs as the ``postgres`` system user in a directory it owns.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml
from commands import run, subprocess_env
from projects import TINY_PARAMS, make_project, tiny_zip

from bench.servers import free_port, started

# One worker runs both modules that use the session's PostgreSQL cluster (tests/scheduling.py).
pytestmark = pytest.mark.e2e


MODEL_NAME = "charmt-translator"


class TrackingServer:
    """``mlflow server`` on a PostgreSQL store with proxied artifacts, as docs/team.md sets it up;
    started and stopped (or killed) as a scenario needs, always on the same port and store."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend, self.directory = backend, directory
        self.artifacts = directory / "artifacts"
        self.uri = f"http://127.0.0.1:{free_port()}"
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            *("server", "--backend-store-uri", self.backend, "--serve-artifacts"),
            *("--artifacts-destination", str(self.artifacts), "--workers", "1"),
            *("--host", "127.0.0.1", "--port", self.uri.rsplit(":", 1)[1]),
        ]
        # Up for clients when its API answers from the store, not just its health check.
        ready = ("/health", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default")
        running = contextlib.ExitStack()
        self._server = running.enter_context(
            started(command, self.uri, self.directory / "server.log", ready, subprocess_env())
        )
        self._running = running

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server's whole process group with ``sig`` (SIGKILL: the server dies)."""
        if self._running is not None:
            self._server.stop(sig)
            self._running.close()
            self._running = None


@pytest.fixture
def server(postgres, tmp_path) -> Iterator[TrackingServer]:
    """A scenario's own server on its own, empty database."""
    tracking_server = TrackingServer(postgres(), tmp_path / "mlflow-server")
    tracking_server.directory.mkdir()
    tracking_server.start()
    try:
        yield tracking_server
    finally:
        tracking_server.stop()


@pytest.fixture
def project(tmp_path) -> Path:
    """A scenario's own tiny project, download and preprocess already run (no MLflow in them)."""
    params = {**TINY_PARAMS, "registry": {"model_name": MODEL_NAME}}
    return make_project(tmp_path / "project", tiny_zip(), params, prepared=True)


def run_ids(client: mlflow.MlflowClient) -> set[str]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id for r in client.search_runs(experiments)}


def test_a_training_that_loses_the_server_is_kept_and_logged_when_it_is_back(project, server):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 25  # long enough to lose the server during training
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    client = mlflow.MlflowClient(server.uri)
    before = run_ids(client)

    output = project.parent / "lost.log"
    with open(output, "w") as log:
        training = subprocess.Popen(
            ["dvc", "repro", "train"],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=subprocess_env(MLFLOW_TRACKING_URI=server.uri),
        )
    try:
        run_id = None
        deadline = time.monotonic() + 300
        while training.poll() is None and time.monotonic() < deadline:
            new = run_ids(client) - before
            if new and client.get_metric_history(next(iter(new)), "loss"):
                run_id = next(iter(new))
                server.stop(signal.SIGKILL)  # the server dies after epoch 1 was logged
                break
            time.sleep(0.1)
        assert run_id, f"no epoch was logged:\n{output.read_text()[-3000:]}"
        assert training.wait(timeout=600) != 0
    finally:
        if training.poll() is None:
            training.kill()
    text = output.read_text()
    assert "the trained model is saved in models" in text and "charmt log-training" in text
    assert "Traceback" not in text
    assert json.loads((project / "models/mlflow_run.json").read_text())["run_id"] == run_id
    assert len((project / "metrics/history.csv").read_text().splitlines()) == 1 + 25

    # Once the server is back, the documented commands log the result and tell DVC the train
    # stage's outputs are complete: the next repro would evaluate without training again.
    server.start()
    run(["charmt", "log-training"], project, MLFLOW_TRACKING_URI=server.uri)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == list(range(1, 26))
    assert "best_val_loss" in logged.data.metrics
    models = client.search_logged_models(
        experiment_ids=[logged.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert sorted(m.name for m in models) == ["model", "translator"]  # each once, none half-logged
    assert all(m.status == "READY" for m in models), models
    run(["dvc", "commit", "-f", "train"], project)
    planned = run(["dvc", "repro", "--dry"], project, MLFLOW_TRACKING_URI=server.uri)
    assert "Running stage 'train'" not in planned and "Running stage 'evaluate'" in planned


def test_train_fails_at_once_with_one_line_when_the_server_is_stopped(project, server):
    server.stop()  # the train stage's inputs are there: the project is prepared
    done = subprocess.run(
        ["dvc", "repro", "-f", "-s", "train"],
        cwd=project,
        env=subprocess_env(MLFLOW_TRACKING_URI=server.uri),
        capture_output=True,
        text=True,
        timeout=120,  # MLflow's own retries would take ~250 s
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert server.uri in errors[0] and "not reachable" in errors[0]
    assert "MLFLOW_TRACKING_URI" in errors[0]
    assert "Traceback" not in done.stderr and "Epoch 1" not in done.stdout + done.stderr
