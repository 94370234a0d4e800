"""Shared fixtures and hooks: a temporary MLflow store for every test, a tiny trained (and a
logged) model, the sweep, the team's servers; a skip under CI is a failure.

The helpers they use are modules beside this file: tiny_task (the reversal task), commands
(running commands as a user would), projects (copies of this project), stores (MLflow stores),
sweeps (DVC queues), postgres_cluster and team_server (the servers), scheduling (the workers).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from commands import run

# Fixtures and hooks defined beside this file, for every test module.
from postgres_cluster import postgres  # noqa: F401  (a fixture)
from projects import make_project, tiny_zip
from scheduling import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401
from stores import copy_store
from sweeps import SWEEP, SWEEP_PARAMS, Sweep, run_queue, stop_queue
from tiny_task import reversal_pairs

from charmt.data.pairs import Pair, build_vocabularies


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Under CI (env CI set) a skip is a failure: CI runs every test, so a missing tool or
    server is something to install (.ci/install-system-packages), not a reason to pass."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {reason}"
    return report


@pytest.fixture(autouse=True)
def mlflow_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Every test logs to its own SQLite store, never to the project's mlflow.db: a copy of
    the migrated template, or (``@pytest.mark.fresh_store``) a database not yet created.
    Beside the test's ``tmp_path``, which stays empty."""
    database = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    if request.node.get_closest_marker("fresh_store"):
        uri = f"sqlite:///{database}"
    else:
        uri = copy_store(database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return uri


@dataclass
class Trained:
    translator: object  # charmt.inference.translator.Translator; TensorFlow is imported lazily
    result: object  # charmt.training.fit.TrainResult
    model_dir: Path
    train: list[Pair]
    held_out: list[Pair]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small model trained on the reversal task, saved as a models/ directory."""
    from charmt.inference.translator import Translator
    from charmt.training.fit import TrainParams, train_model

    pairs = reversal_pairs(900, seed=1)
    random.Random(2).shuffle(pairs)
    held_out, validation, train = pairs[:60], pairs[60:160], pairs[160:]
    vocabularies = build_vocabularies(train)
    params = TrainParams(latent_dim=64, batch_size=32, epochs=25, learning_rate=0.005, seed=3)
    result = train_model(train, validation, vocabularies, params, verbose=0)
    translator = Translator.from_training(result.model, vocabularies, train)
    model_dir = tmp_path_factory.mktemp("trained") / "models"
    translator.save(model_dir)
    return Trained(translator, result, model_dir, train, held_out)


@dataclass
class Logged:
    run_id: str
    store: str  # the tracking URI of the store it is logged in
    translator_uri: str  # runs:/.../translator, the string-to-string pyfunc


@pytest.fixture(scope="session")
def logged(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """The session's tiny model logged as the train stage logs a run (params, one metric row
    per epoch, the summary, both models), in a store of its own; read only."""
    from charmt import tracking
    from charmt.serving.publish import log_trained_model

    store = copy_store(tmp_path_factory.mktemp("logged") / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.setenv("DVC_EXP_NAME", "tiny-exp")
        params = {"train": {"epochs": 25, "learning_rate": 0.005}, "data": {"num_samples": 900}}
        with tracking.start_run("charmt-test") as run:
            tracking.log_params(params)
            for row in trained.result.history:
                tracking.log_epoch(row)
            tracking.log_summary(trained.result.summary)
            log_trained_model(trained.translator, trained.model_dir)
    run_id = run.info.run_id
    return Logged(run_id, store, f"runs:/{run_id}/translator")


@pytest.fixture(scope="session")
def team(postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:  # noqa: F811
    """The team's server as docs/team.md builds it (tests/team_server.py), once per worker: its
    modules are one work unit with tests/test_server.py (tests/scheduling.py)."""
    from team_server import running_team

    with running_team(postgres, tmp_path_factory.mktemp("team-server")) as running:
        yield running


@pytest.fixture(scope="session")
def promoted(team: Any, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trainer's run on the team's server that a maintainer then promotes
    (``team_server.promote``)."""
    from team_server import promote

    return promote(team, tmp_path_factory.mktemp("trainer"))


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """Four tiny experiments queued as a grid (``-S a=1,2 -S b=3,4``) and run with two workers.

    The workers are stopped as soon as the queue is empty (and again at the end, should the
    queue have failed), so that none runs on after the tests."""
    root = tmp_path_factory.mktemp("sweep")
    project = make_project(root / "project", tiny_zip(), SWEEP_PARAMS, prepared=True)
    assert not (project / "mlflow.db").exists()
    command = ["dvc", "exp", "run", "--queue"]
    for values in SWEEP:
        command += ["-S", values]
    run(command, project)
    try:
        status = run_queue(project, jobs=2)
        stop_queue(project)
        yield Sweep(project, f"sqlite:///{project / 'mlflow.db'}", status)
    finally:
        stop_queue(project)
