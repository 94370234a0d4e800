"""The team's work through its server (tests/team_server.py: docs/team.md's set-up behind nginx
and TLS): a trainer's run that a maintainer promotes later, what each role may and may not do,
no password recorded anywhere, and a sweep through both server processes.

What one pipeline run logs through a server with proxied artifacts (the run, its metrics and
models, its artifacts in the server's destination, the registered champion) is proved here, on
the trainer's run that the maintainer promotes (``promoted``); tests/test_server.py keeps the
plain server's own scenarios. The sweep registers into a model of its own, so the tests pass in
any order.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.server
import pytest
from commands import run, stdout_lines, subprocess_env
from postgres_cluster import PG_BIN
from sweeps import experiments
from team_server import ADMIN_PASSWORD, MODEL_NAME, PASSWORDS, SWEEP_MODEL, WORDS, new_project

pytestmark = pytest.mark.e2e


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
