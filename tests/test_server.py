"""End to end, a team's set-up: a real ``mlflow server`` on a throwaway PostgreSQL cluster with
proxied artifacts, and the real pipeline, ``charmt translate`` and ``mlflow models serve`` using it
over HTTP only. Also: a training that loses the server is kept and logged once it is back, and a
stopped server makes the train stage fail at once.

Needs the system's PostgreSQL 15 (``.ci/install-system-packages``): skipped without it, except in
CI (env CI set), where that is a failure. PostgreSQL refuses to run as root: as root, the cluster
runs as the ``postgres`` system user in a directory it owns.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
import yaml
from conftest import TINY_PARAMS, make_project, run, subprocess_env, write_tiny_zip

pytestmark = pytest.mark.e2e


def _postgres_bin() -> Path:
    """The newest PostgreSQL server's bin directory of the system packages (Debian 12: 15;
    GitHub's Ubuntu runners: 16), or CHARMT_PG_BIN."""
    if os.environ.get("CHARMT_PG_BIN"):
        return Path(os.environ["CHARMT_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/<version>/bin")


PG_BIN = _postgres_bin()
MODEL_NAME = "charmt-translator"
WORDS = ["abc", "hgfe", "deed", "bach"]


def require(available: bool, reason: str) -> None:
    """Skip when a system package is missing; in CI that is a failure."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: this test must run)")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.RequestException:  # not up yet, or too busy starting to answer
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a server started in its own session, and every process it started (``mlflow server``
    runs uvicorn and job consumers, which can outlive it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; the URI of an empty database in it."""
    require(
        all((PG_BIN / tool).is_file() for tool in ("initdb", "pg_ctl", "createdb")),
        f"PostgreSQL not found in {PG_BIN}: install the postgresql package",
    )
    as_root = os.geteuid() == 0
    if as_root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        require(user is not None and shutil.which("runuser") is not None, "no postgres user")

    def as_postgres(*command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if as_root else list(command)

    # Not under pytest's tmp_path: the postgres user must own it and reach it.
    directory = Path(tempfile.mkdtemp(prefix="charmt-pg-"))
    if as_root:
        os.chown(directory, user.pw_uid, user.pw_gid)
    port, data = free_port(), directory / "data"

    def pg(*command: str) -> None:
        done = subprocess.run(as_postgres(*command), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"

    try:
        pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off"
        pg(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(directory / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        pg(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(directory, ignore_errors=True)


class TrackingServer:
    """``mlflow server`` on PostgreSQL with proxied artifacts, as docs/team.md sets it up."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend, self.directory = backend, directory
        self.artifacts = directory / "artifacts"
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.directory / "server.log"
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            self.backend,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=subprocess_env(),
                start_new_session=True,
            )
        try:
            wait_until_up(f"{self.uri}/health", self.process, log)
            # Up for clients when its API answers from the store, not just its health check.
            api = f"{self.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
            wait_until_up(api, self.process, log)
        except BaseException:
            self.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:  # once per start: its process group id may be reused later
            stop(self.process, sig)
            self.process = None


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory) -> Iterator[TrackingServer]:
    tracking_server = TrackingServer(postgres, tmp_path_factory.mktemp("mlflow-server"))
    tracking_server.start()
    try:
        yield tracking_server
    finally:
        tracking_server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("server-project")
    params = {**TINY_PARAMS, "registry": {"model_name": MODEL_NAME}}
    return make_project(root / "project", write_tiny_zip(root / "fra-eng.zip"), params)


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


def test_pipeline_logs_runs_metrics_models_and_samples_through_the_server(project, server):
    run(["dvc", "repro"], project, MLFLOW_TRACKING_URI=server.uri)

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
    assert {m.name for m in models} == {"model", "translator"}

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


def test_translate_and_serve_the_champion_from_the_server(project, server, tmp_path):
    expected = translate(project, "models", server.uri)
    assert len(expected) == len(WORDS)
    assert translate(project, f"models:/{MODEL_NAME}@champion", server.uri) == expected

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        serving = subprocess.Popen(
            [
                *("mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion"),
                *("--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=subprocess_env(MLFLOW_TRACKING_URI=server.uri),
            start_new_session=True,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", serving, log)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"inputs": WORDS}, timeout=120
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected
    finally:
        stop(serving)


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
    assert {m.name for m in models} == {"model", "translator"}
    run(["dvc", "commit", "-f", "train"], project)
    planned = run(["dvc", "repro", "--dry"], project, MLFLOW_TRACKING_URI=server.uri)
    assert "Running stage 'train'" not in planned and "Running stage 'evaluate'" in planned


def test_train_fails_at_once_with_one_line_when_the_server_is_stopped(project, server):
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
