"""End to end, the team's server as docs/team.md builds it: PostgreSQL holding both the tracking
store and the auth app's user database, two ``mlflow server --app-name basic-auth`` processes
sharing them (and one artifact destination, one secret key), and nginx terminating TLS in front
of both with a throwaway CA, all on 127.0.0.1. Users reader, trainer and maintainer hold the
roles docs/team.md grants; every check goes through the proxy over real HTTPS.

What one pipeline run logs through a server with proxied artifacts (the run, its metrics and
models, its artifacts in the server's destination, the registered champion) is proved here, on
the trainer's run that the maintainer promotes (``promoted``); tests/test_server.py keeps the
plain server's own scenarios. The sweep registers into a model of its own, so the tests pass in
any order. The PostgreSQL cluster is the worker's, shared with tests/test_server.py (one work
unit in tests/scheduling.py: one worker runs both).

Needs PostgreSQL and nginx from the system packages (``.ci/install-system-packages``): skipped
without them, except in CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.server
import psycopg
import pytest
import requests
from conftest import (
    PROJECT,
    TINY_PARAMS,
    make_project,
    reversal_pairs,
    run,
    stdout_lines,
    subprocess_env,
    tiny_zip,
)
from postgres_cluster import PG_BIN, require
from test_sweeps import experiments

from bench.servers import process_tree, served
from charmt.io.processes import free_port, wait_until_answers
from charmt.io.processes import stop_group as stop

# One worker runs both modules that use the session's PostgreSQL cluster (tests/scheduling.py).
pytestmark = pytest.mark.e2e

MODEL_NAME = "charmt-translator"
SWEEP_MODEL = "charmt-sweep"
EXPERIMENT = "charmt"
ADMIN_PASSWORD = "admin-Secret-7f3a9c"  # at least 12 characters: MLflow refuses shorter
PASSWORDS = {
    "reader": "reader-Secret-2b8e1d",
    "trainer": "trainer-Secret-9c4f0a",
    "maintainer": "maintainer-Secret-5d7e3b",
}
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# TINY_PARAMS' data, as tests/test_server.py's: the projects are copies of one prepared project.
TEAM_PARAMS = {
    **TINY_PARAMS,
    "train": {**TINY_PARAMS["train"], "epochs": 2},
    "registry": {"model_name": MODEL_NAME},
    "tracking": {"experiment_name": EXPERIMENT},
}
# What the team's processes run with: no usage telemetry leaves the machine.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
WORDS = ["abc", "hgfe", "deed", "bach"]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1: (ca, cert, key)."""
    ca_key, ca, key, request, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)

    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out"),
        *(str(ca), "-days", "2", "-subj", "/CN=charmt test CA"),
    )
    openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request)),
        *("-subj", "/CN=127.0.0.1"),
    )
    openssl(
        *("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)),
    )
    return ca, cert, key


# What both nginx configurations of this module share: a root-run test's user, its files under
# the test's directory, temp paths there too.
NGINX_TOP = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""

NGINX_CONF = (
    NGINX_TOP
    + """\
    log_format upstream '$status $request_method $upstream_addr';
    access_log {dir}/access.log upstream;
    upstream mlflow {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 0;
        proxy_read_timeout 300s;
        proxy_request_buffering off;
        location / {{
            proxy_pass http://mlflow;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""
)


@dataclass
class Team:
    """The running team's server: the proxy's URI, the CA, the backends and the database."""

    uri: str
    ca: Path
    backends: list[str]
    database: str
    processes: list[subprocess.Popen]
    experiment_id: str
    directory: Path

    def env(self, user: str | None, password: str | None = None, ca: bool = True) -> dict:
        """A client's environment: the proxy's URI, ``user``'s credentials, the CA."""
        env = {"MLFLOW_TRACKING_URI": self.uri, **NO_TELEMETRY}
        if ca:
            env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.ca)
        if user is not None:
            env["MLFLOW_TRACKING_USERNAME"] = user
            env["MLFLOW_TRACKING_PASSWORD"] = password or PASSWORDS.get(user, ADMIN_PASSWORD)
        return env

    def client(self, user: str, monkeypatch: pytest.MonkeyPatch) -> mlflow.MlflowClient:
        for name, value in self.env(user).items():
            monkeypatch.setenv(name, value)
        return mlflow.MlflowClient(self.uri)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    why_not = wait_until_answers(url, process, timeout)
    if why_not is not None:
        pytest.fail(f"the server {why_not}:\n{log.read_text()[-3000:]}")


def start_mlflow(directory: Path, name: str, env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    port = free_port()
    log = directory / f"{name}.log"
    command = [
        *(str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth"),
        *("--backend-store-uri", env["CHARMT_BACKEND"], "--serve-artifacts"),
        *("--artifacts-destination", str(directory / "artifacts")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    wait_until_up(f"http://127.0.0.1:{port}/health", process, log)
    return f"http://127.0.0.1:{port}", process


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory) -> Iterator[Team]:
    require(Path(NGINX).is_file(), "nginx not found: install the nginx package")
    directory = tmp_path_factory.mktemp("team-server")
    backend = postgres()  # the tracking store's database; the users' one beside it
    with psycopg.connect(backend, autocommit=True) as connection:
        connection.execute("CREATE DATABASE mlflow_auth")
    auth_database = backend.rsplit("/", 1)[0] + "/mlflow_auth"
    config = directory / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {auth_database}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = subprocess_env(
        CHARMT_BACKEND=backend,
        MLFLOW_AUTH_CONFIG_PATH=str(config),
        MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY="team-shared-flask-secret-key",
        **NO_TELEMETRY,
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    processes: list[subprocess.Popen] = []
    try:
        # One after the other: the first creates the tables and the admin, the second finds them.
        for name in ("mlflow-1", "mlflow-2"):
            _backend, process = start_mlflow(directory, name, env)
            processes.append(process)
        backends = [f"http://127.0.0.1:{p.args[p.args.index('--port') + 1]}" for p in processes]
        ca, cert, key = make_certificates(directory)
        port = free_port()
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / name).mkdir()
        servers = "\n".join(f"        server {b.removeprefix('http://')};" for b in backends)
        (directory / "nginx.conf").write_text(
            NGINX_CONF.format(
                # As root nginx's workers would run as nobody, who cannot enter pytest's tmp.
                user="user root;" if os.geteuid() == 0 else "",
                dir=directory,
                servers=servers,
                port=port,
                cert=cert,
                key=key,
            )
        )
        nginx = subprocess.Popen(
            [NGINX, "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stdout=open(directory / "nginx.out", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(nginx)
        uri = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{uri}/health", verify=str(ca), timeout=5)
                break
            except requests.RequestException:
                assert nginx.poll() is None, (directory / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.3)

        # The admin's set-up, as docs/team.md gives it: users, the experiment and the
        # registered model created by the admin, and each role's grants.
        admin_env = {
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": str(ca),
        }
        with pytest.MonkeyPatch.context() as admin:
            for name, value in admin_env.items():
                admin.setenv(name, value)
            experiment_id = set_up_team(uri)
        yield Team(uri, ca, backends, backend, processes, experiment_id, directory)
    finally:
        for process in reversed(processes):
            stop(process)


def set_up_team(uri: str) -> str:
    """docs/team.md's admin commands: the experiment id."""
    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT)
    client.create_registered_model(MODEL_NAME)
    for user, password in PASSWORDS.items():
        auth.create_user(user, password)
    auth.grant_user_permission("reader", "experiment", experiment_id, "READ")
    auth.grant_user_permission("reader", "registered_model", MODEL_NAME, "READ")
    auth.grant_user_permission("trainer", "experiment", experiment_id, "EDIT")
    auth.grant_user_permission("trainer", "registered_model", MODEL_NAME, "READ")
    auth.grant_user_permission("maintainer", "experiment", experiment_id, "EDIT")
    auth.grant_user_permission("maintainer", "registered_model", MODEL_NAME, "EDIT")
    return experiment_id


def new_project(tmp_path: Path, name: str = "project") -> Path:
    """A tiny project whose download and preprocess have run (no MLflow in them): ``dvc repro``
    runs train and evaluate, the stages that talk to the server."""
    return make_project(tmp_path / name, tiny_zip(), TEAM_PARAMS, prepared=True)


def failing_train(project: Path, env: dict[str, str]) -> tuple[list[str], str, float]:
    """``dvc repro train`` that must fail: its ``error:`` lines, its whole output, seconds."""
    started = time.monotonic()
    environment = subprocess_env(**env)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if name not in env:
            environment.pop(name, None)
    if "MLFLOW_TRACKING_SERVER_CERT_PATH" not in env:
        environment.pop("MLFLOW_TRACKING_SERVER_CERT_PATH", None)
    done = subprocess.run(
        ["dvc", "repro", "train"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert done.returncode != 0
    output = done.stdout + done.stderr
    return (
        [line for line in done.stderr.splitlines() if line.startswith("error: ")],
        output,
        seconds,
    )


@pytest.fixture(scope="module")
def promoted(team, tmp_path_factory) -> dict:
    """A trainer's complete run, not promoted (not permitted); then the maintainer's promotion
    of that run's model, without training again."""
    project = new_project(tmp_path_factory.mktemp("trainer"))
    output = run(["dvc", "repro"], project, **team.env("trainer"))
    trainer_promotion = json.loads((project / "metrics/promotion.json").read_text())
    started = time.monotonic()
    maintainer_output = run(
        ["dvc", "repro", "-f", "-s", "evaluate"], project, **team.env("maintainer")
    )
    return {
        "project": project,
        "output": output + maintainer_output,
        "trainer_promotion": trainer_promotion,
        "promotion": json.loads((project / "metrics/promotion.json").read_text()),
        "run_id": json.loads((project / "models/mlflow_run.json").read_text())["run_id"],
        "promote_seconds": time.monotonic() - started,
    }


def test_anonymous_and_wrong_password_requests_are_refused(team):
    search = "/api/2.0/mlflow/experiments/search?max_results=5"
    for base in [team.uri, *team.backends]:
        verify = str(team.ca) if base.startswith("https") else True
        assert requests.get(base + search, verify=verify, timeout=30).status_code == 401
        wrong = requests.get(base + search, auth=("trainer", "nope"), verify=verify, timeout=30)
        assert wrong.status_code == 401
        right = requests.get(
            base + search, auth=("reader", PASSWORDS["reader"]), verify=verify, timeout=30
        )
        assert right.status_code == 200
        # NO_PERMISSIONS: a user sees only what they were granted.
        names = {e["name"] for e in right.json().get("experiments", [])}
        assert names <= {EXPERIMENT}, names


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (None, "needs credentials"),
        ("wrong", "refused the credentials"),
        ("reader", "no permission to write to experiment 'charmt'"),
    ],
)
def test_train_fails_fast_with_one_line_naming_what_is_missing(team, tmp_path, who, expected):
    project = new_project(tmp_path)
    env = team.env("trainer", password="not-the-password") if who == "wrong" else team.env(who)
    errors, output, seconds = failing_train(project, env)
    assert len(errors) == 1, output[-3000:]
    assert expected in errors[0]
    if who == "reader":
        assert "EDIT" in errors[0]
    else:
        assert "MLFLOW_TRACKING_USERNAME" in errors[0] and "MLFLOW_TRACKING_PASSWORD" in errors[0]
    assert "Traceback" not in output and "Epoch 1" not in output
    assert seconds < 60, seconds  # dvc and the stage's start-up; the check itself is ~1 s
    print(f"{who}: {seconds:.1f} s: {errors[0]}")


def test_without_the_ca_the_stage_fails_in_seconds_naming_the_certificate(team, tmp_path):
    project = new_project(tmp_path)
    errors, output, seconds = failing_train(project, team.env("trainer", ca=False))
    assert len(errors) == 1, output[-3000:]
    assert "certificate" in errors[0] and "MLFLOW_TRACKING_SERVER_CERT_PATH" in errors[0]
    assert "Traceback" not in output
    assert seconds < 60, seconds
    print(f"no CA: {seconds:.1f} s: {errors[0]}")


def test_a_trainer_completes_a_run_and_a_maintainer_promotes_it_later(
    team, promoted, monkeypatch, tmp_path
):
    trainer = promoted["trainer_promotion"]
    assert trainer["promoted"] is False and trainer["version"] is None
    assert trainer["decision"].startswith("not permitted: trainer may not register")
    assert "dvc repro -f -s evaluate" in trainer["decision"]

    client = team.client("maintainer", monkeypatch)
    project, run_id = promoted["project"], promoted["run_id"]
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == "2"
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    for name in ("exact_match", "char_accuracy", "bleu", "chrf", "test_loss"):
        assert logged.data.metrics[name] == pytest.approx(evaluation[name])
    assert "best_val_loss" in logged.data.metrics
    losses = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in losses) == [1, 2]

    # Evaluating again logged no model: the training's two, each once, none half-logged.
    models = client.search_logged_models(
        experiment_ids=[logged.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert sorted(m.name for m in models) == ["model", "translator"]
    assert all(m.status == "READY" for m in models), models

    # Proxied artifacts: the run's artifacts go through the proxy and the servers, which keep
    # them in their shared --artifacts-destination; the clients only ever talk HTTPS.
    assert logged.info.artifact_uri.startswith("mlflow-artifacts:")
    assert "samples.tsv" in {a.path for a in client.list_artifacts(run_id)}
    copy = client.download_artifacts(run_id, "samples.tsv", str(tmp_path))
    assert Path(copy).read_text() == (project / "metrics/samples.tsv").read_text()
    assert list((team.directory / "artifacts").rglob("samples.tsv"))

    # The maintainer's evaluation registered the same run's model, the first version (the
    # trainer's registered none), and made it champion; the decision in the run and the file.
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert (champion.version, champion.run_id) == ("1", run_id)
    promotion = promoted["promotion"]
    assert (promotion["version"], promotion["promoted"]) == (1, True)
    assert logged.data.tags["promotion.decision"] == promotion["decision"]
    assert "Epoch 1" not in promoted["output"].split("Running stage 'evaluate'")[-1]


def test_a_trainer_cannot_move_the_alias(team, promoted, monkeypatch):
    client = team.client("trainer", monkeypatch)
    with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
        client.delete_registered_model_alias(MODEL_NAME, "champion")


def test_a_reader_searches_runs_and_loads_the_champion(team, promoted, monkeypatch):
    from charmt.inference.translator import (
        Translator,  # Keras: imported by the tests that load a model
    )

    client = team.client("reader", monkeypatch)
    runs = client.search_runs([team.experiment_id])
    assert promoted["run_id"] in {r.info.run_id for r in runs}
    # The champion by name, through the proxy as the reader, translates as the project's own
    # models/ does: loaded as a pyfunc, and with charmt translate.
    champion = f"models:/{MODEL_NAME}@champion"
    expected = Translator.load(promoted["project"] / "models").translate(WORDS)
    assert len(expected) == len(WORDS)
    assert mlflow.pyfunc.load_model(champion).predict(WORDS) == expected
    translated = stdout_lines(
        ["charmt", "translate", "--model", champion, *WORDS],
        promoted["project"],
        timeout=300,
        **team.env("reader"),
    )
    assert translated == expected
    with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
        client.set_tag(promoted["run_id"], "reader.was.here", "1")


def test_no_password_is_recorded_anywhere(team, promoted, monkeypatch, tmp_path):
    secrets = [ADMIN_PASSWORD, *PASSWORDS.values()]
    project = promoted["project"]
    places = {"stage output": promoted["output"]}
    for path in [project / "dvc.lock", project / "params.yaml", *(project / "metrics").rglob("*")]:
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    client = team.client("admin", monkeypatch)
    logged = client.get_run(promoted["run_id"])
    places["params"] = json.dumps(logged.data.params)
    places["tags"] = json.dumps(logged.data.tags)
    artifacts = Path(client.download_artifacts(promoted["run_id"], "", str(tmp_path / "a")))
    for path in artifacts.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    # The whole tracking database and the user database, as text.
    for database in (team.database.rsplit("/", 1)[1], "mlflow_auth"):
        dump = subprocess.run(
            [
                *(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                str(PG_BIN / "pg_dump"),
                team.database.rsplit("/", 1)[0] + f"/{database}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dump.returncode == 0, dump.stderr
        assert "CREATE TABLE" in dump.stdout
        places[f"database {database}"] = dump.stdout
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a password in {place}"


def test_telemetry_is_off_in_the_servers_and_the_pipeline(team, tmp_path):
    for process in team.processes[:2]:
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert b"MLFLOW_DISABLE_TELEMETRY=true" in environ
    answer = requests.get(
        f"{team.uri}/ajax-api/3.0/mlflow/ui-telemetry",
        auth=("reader", PASSWORDS["reader"]),
        verify=str(team.ca),
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["disable_ui_telemetry"] is True
    # The pipeline's stages import charmt first, which turns telemetry off before mlflow loads.
    env = subprocess_env()
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        env.pop(name, None)
    probe = (
        "import charmt, mlflow\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "import os\n"
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], os.environ['DO_NOT_TRACK'],"
        " get_telemetry_client())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["true", "true", "None"], done.stderr


def test_a_sweep_through_two_server_processes_completes_and_crowns_the_best(
    team, tmp_path, monkeypatch
):
    # The sweep registers into a model of its own, made and granted by the admin as docs/team.md
    # does the team's: the team's champion stays the promoted run's, whatever the tests' order.
    team.client("admin", monkeypatch).create_registered_model(SWEEP_MODEL)
    auth = mlflow.server.get_app_client("basic-auth", tracking_uri=team.uri)
    auth.grant_user_permission("maintainer", "registered_model", SWEEP_MODEL, "EDIT")
    project = new_project(tmp_path)
    env = team.env("maintainer")
    # Two experiments, one for each worker; tests/test_sweeps.py runs the 2 x 2 grid locally.
    sweep = ["-S", "train.latent_dim=16,32", "-S", f"registry.model_name={SWEEP_MODEL}"]
    run(["dvc", "exp", "run", "--queue", *sweep], project, **env)
    served_before = (team.directory / "access.log").read_text().count("\n")
    started = subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=project,
        env=subprocess_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    assert started.returncode == 0
    deadline = time.monotonic() + 900
    while True:
        status = run(["dvc", "queue", "status"], project)
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2, status

    client = team.client("maintainer", monkeypatch)
    shown = experiments(project)
    run_ids = {
        data["metrics"]["metrics/train.json"]["data"]["mlflow_run_id"] for data in shown.values()
    }
    assert len(run_ids) == 2, shown
    for run_id in run_ids:
        logged = client.get_run(run_id)
        assert logged.info.status == "FINISHED"
        assert "char_accuracy" in logged.data.metrics and "promotion.decision" in logged.data.tags
    # The champion is the best of every version scored on this test split.
    champion = client.get_model_version_by_alias(SWEEP_MODEL, "champion")
    tag = next(key for key in champion.tags if key.startswith("test_score."))
    scores = {
        v.version: float(v.tags[tag])
        for v in client.search_model_versions(f"name = '{SWEEP_MODEL}'")
        if tag in v.tags
    }
    assert run_ids <= {v.run_id for v in client.search_model_versions(f"name = '{SWEEP_MODEL}'")}
    assert float(champion.tags[tag]) == max(scores.values())
    # Both server processes answered the sweep's requests, through the one proxy.
    lines = (team.directory / "access.log").read_text().splitlines()[served_before:]
    upstreams = {line.split()[-1] for line in lines}
    assert {b.removeprefix("http://") for b in team.backends} <= upstreams


SERVE_USER, SERVE_PASSWORD = "app", "app-Secret-6a2f9e"
# docs/team.md's block for the served model, with this test's paths and ports.
SERVE_NGINX_CONF = (
    NGINX_TOP
    + """\
    access_log {dir}/access.log;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        auth_basic "charmt";
        auth_basic_user_file {dir}/charmt.htpasswd;
        location / {{ proxy_pass {backend}; }}
    }}
}}
"""
)


def test_the_champion_served_behind_nginx_with_a_password_and_tls(
    team, promoted, tmp_path, monkeypatch
):
    # docs/team.md: the scoring server on 127.0.0.1 with telemetry off, downloading the
    # champion through the proxy as the reader.
    champion = f"models:/{MODEL_NAME}@champion"
    team.client("reader", monkeypatch)  # the reader's credentials and CA, in this process too
    expected = mlflow.pyfunc.load_model(champion).predict(WORDS)
    env = subprocess_env(**team.env("reader"))
    with served(champion, tmp_path / "serve.log", env=env, cwd=tmp_path) as server:
        for pid in process_tree(server.process.pid):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"MLFLOW_DISABLE_TELEMETRY=true" in environ, pid
        directory = tmp_path / "nginx"
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / name).mkdir(parents=True)
        hashed = subprocess.run(
            ["openssl", "passwd", "-apr1", SERVE_PASSWORD],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        (directory / "charmt.htpasswd").write_text(f"{SERVE_USER}:{hashed}\n")
        port = free_port()
        (directory / "nginx.conf").write_text(
            SERVE_NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "",
                dir=directory,
                port=port,
                cert=team.directory / "server.pem",
                key=team.directory / "server.key",
                backend=server.url,
            )
        )
        with open(directory / "nginx.out", "wb") as output:
            nginx = subprocess.Popen(
                [NGINX, "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            url = f"https://127.0.0.1:{port}"
            invocations = f"{url}/invocations"
            body = {"inputs": ["abc"]}
            deadline = time.monotonic() + 30
            while True:
                try:
                    anonymous = requests.post(
                        invocations, json=body, verify=str(team.ca), timeout=30
                    )
                    break
                except requests.ConnectionError:
                    assert nginx.poll() is None, (directory / "error.log").read_text()
                    assert time.monotonic() < deadline, "nginx did not answer"
                    time.sleep(0.3)
            assert anonymous.status_code == 401
            wrong = requests.post(
                invocations, json=body, auth=(SERVE_USER, "nope"), verify=str(team.ca), timeout=30
            )
            assert wrong.status_code == 401
            right = requests.post(
                invocations,
                json={"inputs": WORDS},
                auth=(SERVE_USER, SERVE_PASSWORD),
                verify=str(team.ca),
                timeout=60,
            )
            assert right.status_code == 200, right.text
            # The champion's translations, as the reader's pyfunc gives them.
            assert right.json()["predictions"] == expected

            # bench/load.py through the proxy: a short load and the bad-request table.
            sentences = tmp_path / "sentences.txt"
            sentences.write_text("\n".join(p.source for p in reversal_pairs(50, 4)) + "\n")
            out = tmp_path / "load.json"
            load_env = subprocess_env(
                CHARMT_LOAD_USER=SERVE_USER, CHARMT_LOAD_PASSWORD=SERVE_PASSWORD
            )
            done = subprocess.run(
                [
                    *(sys.executable, "bench/load.py", "--url", url, "--ca", str(team.ca)),
                    *("--clients", "2", "--requests", "5", "--sentences", str(sentences)),
                    *("--out", str(out)),
                ],
                cwd=PROJECT,
                env=load_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
            report = json.loads(out.read_text())
            assert report["load"]["requests"] == 10 and report["load"]["errors"] == 0, report
            assert all(row["kept_serving"] for row in report["bad_requests"]), report
            print(done.stdout)
        finally:
            stop(nginx)
