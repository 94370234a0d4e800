"""The team's server as docs/team.md builds it, for the team's test modules (test_team_access,
test_team_server, test_team_serving): PostgreSQL holding both the tracking store and the auth
app's user database, two ``mlflow server --app-name basic-auth`` processes sharing them (and one
artifact destination, one secret key), and nginx terminating TLS in front of both with a
throwaway CA, all on 127.0.0.1. Users reader, trainer and maintainer hold the roles docs/team.md
grants; every check goes through the proxy over real HTTPS.

tests/conftest.py's session fixtures ``team`` and ``promoted`` build it once per worker; the
modules that use it, and tests/test_server.py, which shares the worker's PostgreSQL cluster, are
one work unit (tests/scheduling.py): one worker runs them all.

Needs PostgreSQL and nginx from the system packages (``.ci/install-system-packages``): skipped
without them, except in CI, where that is a failure.
"""

from __future__ import annotations

import contextlib
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
import mlflow.server
import psycopg
import pytest
import requests
from commands import run, subprocess_env
from postgres_cluster import require
from projects import TINY_PARAMS, make_project, tiny_zip

from charmt.io.processes import free_port, wait_until_answers
from charmt.io.processes import stop_group as stop

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


def start_nginx(
    directory: Path, template: str, url: str, ca: Path, **fields: object
) -> subprocess.Popen:
    """nginx on ``template`` (a configuration that starts with ``NGINX_TOP``) with ``fields``,
    its files in ``directory``; once ``url`` answers over TLS with ``ca``."""
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    # As root nginx's workers would run as nobody, who cannot enter pytest's tmp.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(template.format(user=user, dir=directory, **fields))
    with open(directory / "nginx.out", "wb") as output:
        nginx = subprocess.Popen(
            [NGINX, "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, verify=str(ca), timeout=5)
            return nginx
        except requests.RequestException:
            if nginx.poll() is not None or time.monotonic() > deadline:
                stop(nginx)
                log = (directory / "error.log").read_text()
                pytest.fail(f"nginx did not answer at {url}:\n{log}")
            time.sleep(0.3)


@contextlib.contextmanager
def running_team(postgres, directory: Path) -> Iterator[Team]:
    """The team's servers, started in ``directory`` on a database of the ``postgres`` cluster,
    with the admin's set-up done; stopped on exit."""
    require(Path(NGINX).is_file(), "nginx not found: install the nginx package")
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
        servers = "\n".join(f"        server {b.removeprefix('http://')};" for b in backends)
        uri = f"https://127.0.0.1:{port}"
        nginx = start_nginx(
            directory,
            NGINX_CONF,
            f"{uri}/health",
            ca,
            servers=servers,
            port=port,
            cert=cert,
            key=key,
        )
        processes.append(nginx)

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


def promote(team: Team, directory: Path) -> dict:
    """A trainer's complete run, not promoted (not permitted); then the maintainer's promotion
    of that run's model, without training again."""
    project = new_project(directory)
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
