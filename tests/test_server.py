"""End to end, a team's set-up: a real ``mlflow server`` on a throwaway PostgreSQL cluster with
proxied artifacts, and the real pipeline, ``charmt translate`` and ``mlflow models serve`` using it
over HTTP only. Also: a training that loses the server is kept and logged once it is back, and a
stopped server makes the train stage fail at once.

Each scenario has its own project, its own server and its own database; they share only the
PostgreSQL cluster, in which none of them touches another's database, so any order passes. The
first two look at one pipeline run (``reproduced``), which neither changes.

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
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import TINY_PARAMS, make_project, run, subprocess_env, write_tiny_zip

from bench.servers import free_port, post, served, started

pytestmark = pytest.mark.e2e


MODEL_NAME = "charmt-translator"
WORDS = ["abc", "hgfe", "deed", "bach"]


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


def tiny_project(root: Path) -> Path:
    params = {**TINY_PARAMS, "registry": {"model_name": MODEL_NAME}}
    return make_project(root / "project", write_tiny_zip(root / "fra-eng.zip"), params)


@pytest.fixture
def project(tmp_path) -> Path:
    """A scenario's own tiny project, nothing run in it yet."""
    return tiny_project(tmp_path)


@dataclass
class Reproduced:
    project: Path
    server: TrackingServer


@pytest.fixture(scope="module")
def reproduced(postgres, tmp_path_factory) -> Iterator[Reproduced]:
    """``dvc repro`` of a tiny project through a server of its own. Read only: the scenarios
    that use it look at what the pipeline logged and serve its champion, and change neither."""
    root = tmp_path_factory.mktemp("reproduced")
    tracking_server = TrackingServer(postgres(), root)
    tracking_server.start()
    try:
        project = tiny_project(root)
        run(["dvc", "repro"], project, MLFLOW_TRACKING_URI=tracking_server.uri)
        yield Reproduced(project, tracking_server)
    finally:
        tracking_server.stop()


def run_ids(client: mlflow.MlflowClient) -> set[str]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id for r in client.search_runs(experiments)}


def translate(project: Path, model: str, uri: str) -> list[str]:
    """``charmt translate --model model WORDS`` in ``project``; its standard output's lines."""
    done = subprocess.run(
        ["charmt", "translate", "--model", model, *WORDS],
        cwd=project,
        env=subprocess_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_pipeline_logs_runs_metrics_models_and_samples_through_the_server(reproduced):
    project, server = reproduced.project, reproduced.server
    client = mlflow.MlflowClient(server.uri)
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == "3"
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    for name in ("exact_match", "char_accuracy", "bleu", "chrf", "test_loss"):
        assert logged.data.metrics[name] == pytest.approx(evaluation[name])
    assert "best_val_loss" in logged.data.metrics
    losses = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in losses) == [1, 2, 3]

    models = client.search_logged_models(
        experiment_ids=[logged.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert sorted(m.name for m in models) == ["model", "translator"]  # each once, none half-logged
    assert all(m.status == "READY" for m in models), models

    # Proxied artifacts: the run's artifacts go through the server, which keeps them in its own
    # --artifacts-destination; the client only ever talks HTTP.
    assert logged.info.artifact_uri.startswith("mlflow-artifacts:")
    assert "samples.tsv" in {a.path for a in client.list_artifacts(run_id)}
    copy = client.download_artifacts(run_id, "samples.tsv", str(project.parent))
    assert Path(copy).read_text() == (project / "metrics/samples.tsv").read_text()
    assert list(server.artifacts.rglob("samples.tsv"))

    # The registry on the server: version 1, champion, with the decision in the run and file.
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert (champion.version, champion.run_id) == ("1", run_id)
    promotion = json.loads((project / "metrics/promotion.json").read_text())
    assert (promotion["version"], promotion["promoted"]) == (1, True)
    assert logged.data.tags["promotion.decision"] == promotion["decision"]


def test_translate_and_serve_the_champion_from_the_server(reproduced, tmp_path):
    project, server = reproduced.project, reproduced.server
    expected = translate(project, "models", server.uri)
    assert len(expected) == len(WORDS)
    assert translate(project, f"models:/{MODEL_NAME}@champion", server.uri) == expected

    env = subprocess_env(MLFLOW_TRACKING_URI=server.uri)
    champion = f"models:/{MODEL_NAME}@champion"
    with served(champion, tmp_path / "serve.log", env, cwd=tmp_path) as serving:
        status, text = post(f"{serving.url}/invocations", json.dumps({"inputs": WORDS}).encode())
    assert status == 200, text
    assert json.loads(text)["predictions"] == expected


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
    run(["dvc", "repro", "preprocess"], project)  # the train stage's inputs, no MLflow needed
    server.stop()
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
