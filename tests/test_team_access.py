"""Who gets into the team's server (tests/team_server.py: docs/team.md's set-up behind nginx and
TLS): refused without the right password or the CA, each with one line that says what is
missing, before any training; and no usage telemetry leaves the machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from commands import subprocess_env
from team_server import EXPERIMENT, PASSWORDS, new_project

pytestmark = pytest.mark.e2e


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
