"""The champion served as docs/team.md serves it: ``mlflow models serve`` on 127.0.0.1, downloading
the team's champion through the proxy (tests/team_server.py), behind nginx with a password and
TLS; and bench/load.py's load and bad-request table through that proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest
import requests
from commands import subprocess_env
from projects import PROJECT
from team_server import MODEL_NAME, NGINX_TOP, WORDS, start_nginx
from tiny_task import reversal_pairs

from bench.servers import process_tree, served
from charmt.io.processes import free_port
from charmt.io.processes import stop_group as stop

pytestmark = pytest.mark.e2e

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
        hashed = subprocess.run(
            ["openssl", "passwd", "-apr1", SERVE_PASSWORD],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        directory = tmp_path / "nginx"
        directory.mkdir()
        (directory / "charmt.htpasswd").write_text(f"{SERVE_USER}:{hashed}\n")
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        invocations = f"{url}/invocations"
        nginx = start_nginx(
            directory,
            SERVE_NGINX_CONF,
            invocations,
            team.ca,
            port=port,
            cert=team.directory / "server.pem",
            key=team.directory / "server.key",
            backend=server.url,
        )
        try:
            body = {"inputs": ["abc"]}
            anonymous = requests.post(invocations, json=body, verify=str(team.ca), timeout=30)
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
