"""Shared fixtures: a temporary MLflow store for every test, and a tiny trained model.

The tiny task is learnable in seconds: the target is the source written backwards, over a small
alphabet. Held-out sources are words the model never saw, so translating them right means the
model learned the task, not the examples.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

# Fixtures and hooks defined beside this file, for every test module.
from postgres_cluster import postgres  # noqa: F401  (a fixture)
from scheduling import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401

from charmt.data.pairs import Pair, build_vocabularies

PROJECT = Path(__file__).resolve().parents[1]


def reversal_pairs(count: int, seed: int, alphabet: str = "abcdefgh") -> list[Pair]:
    """``count`` distinct words of 2-7 letters, each paired with itself reversed."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))))
    return [Pair(word, word[::-1]) for word in sorted(words)]


def assert_batched_equals_one_sentence_decoding(translator: Any, sources: list[str]) -> None:
    """The batched greedy decoder gives, row for row, what the Keras example's
    one-sentence-at-a-time decoder gives, for ``sources`` of different lengths in one batch (any
    architecture)."""
    import numpy as np

    from charmt.data.batches import pad
    from charmt.inference.decoding import GreedyDecoder, OneSentenceDecoder

    assert len({len(s) for s in sources}) >= 4
    max_length = translator.max_target_length + 11
    encoded = [np.array(translator.vocabularies.source.encode(s), dtype=np.int32) for s in sources]
    batched = GreedyDecoder(translator.model)(pad(encoded), max_length)
    decode_like_seed = OneSentenceDecoder(translator.model)
    target = translator.vocabularies.target
    for row, ids in zip(batched, encoded, strict=True):
        one_at_a_time = decode_like_seed(ids, max_length)
        assert target.decode(row) == target.decode(one_at_a_time)
        assert list(row[: len(one_at_a_time)]) == one_at_a_time


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this interpreter's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def python_json(code: str, *args: str, store: str, timeout: float = 300, **extra_env: str) -> Any:
    """Run ``code`` in a fresh Python (``-c``, with ``args``) logging to the MLflow store
    ``store``; the JSON on the last line of its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(MLFLOW_TRACKING_URI=store, **extra_env),
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(command: list[str], cwd: Path, timeout: float = 600, **extra_env: str) -> str:
    """Run ``command`` as a user would (the project's own default MLflow store); its output.

    Fails the test, with the output's tail, when the command fails.
    """
    env = subprocess_env(**extra_env)
    if "MLFLOW_TRACKING_URI" not in extra_env:
        env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-5000:]}"
    return output


def stdout_lines(
    command: list[str], cwd: Path, timeout: float = 600, **extra_env: str
) -> list[str]:
    """Like ``run``, but only the command's standard output, as lines (no warnings, no logs)."""
    env = subprocess_env(**extra_env)
    if "MLFLOW_TRACKING_URI" not in extra_env:
        env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-5000:]}"
    return done.stdout.splitlines()


def write_tiny_zip(path: Path, count: int = 300, seed: int = 4) -> Path:
    """A fra-eng.zip in the current three-column form: reversal pairs, plus a source with two
    more references (``abc``)."""
    lines = [
        f"{p.source}\t{p.target}\tCC-BY 2.0 (France) test" for p in reversal_pairs(count, seed)
    ]
    lines += ["abc\tCBA\tsecond translation", "abc\tc-b-a\tthird translation"]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fra.txt", "\n".join(lines) + "\n")
        archive.writestr("_about.txt", "test data")
    return path


TINY_PARAMS = {
    "data": {"num_samples": 1000},
    "train": {"latent_dim": 32, "batch_size": 32, "epochs": 3},
    "evaluate": {"batch_size": 64},
}


def make_project(
    directory: Path,
    data_url: str | os.PathLike[str],
    params: Mapping[str, Mapping[str, Any]] = TINY_PARAMS,
    prepared: bool = False,
) -> Path:
    """A git + DVC copy of this project in ``directory`` whose ``data.url`` is ``data_url``,
    with ``params`` merged into params.yaml section by section, committed.

    ``prepared``: download and preprocess have run and are committed (dvc.lock, DVC's cache),
    as after a user's first ``dvc repro``; copied from a project prepared once per test process
    for the same data and data params. For the tests that do not look at those two stages.
    """
    if prepared:
        data_params = {name: params[name] for name in ("data", "preprocess") if name in params}
        template = _prepared_project(str(data_url), yaml.safe_dump(data_params))
        shutil.copytree(template, directory, symlinks=True)
        _write_params(directory, data_url, params)
        if run(["git", "status", "--porcelain"], directory).strip():
            git_commit(directory, "tiny project's params")
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(PROJECT / name, directory / name)
    for name in ("stages", "src", ".dvc"):
        shutil.copytree(PROJECT / name, directory / name, ignore=ignore)
    shutil.rmtree(directory / ".dvc" / "tmp", ignore_errors=True)
    shutil.rmtree(directory / ".dvc" / "cache", ignore_errors=True)
    _write_params(directory, data_url, params)
    git_commit(directory, "tiny project")
    return directory


def _write_params(
    directory: Path, data_url: str | os.PathLike[str], params: Mapping[str, Mapping[str, Any]]
) -> None:
    """This project's params.yaml with ``data.url`` and ``params`` merged in, section by section."""
    values = yaml.safe_load((PROJECT / "params.yaml").read_text())
    values["data"]["url"] = str(data_url)
    for name, section in params.items():
        values.setdefault(name, {}).update(section)
    (directory / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


@functools.cache
def _prepared_project(data_url: str, data_params: str) -> Path:
    """A project on ``data_url`` with ``data_params`` (YAML) whose download and preprocess stages
    have run and are committed; made once per test process, copied by ``make_project``."""
    root = Path(tempfile.mkdtemp(prefix="charmt-prepared-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    project = make_project(root / "project", data_url, yaml.safe_load(data_params))
    run(["dvc", "repro", "preprocess"], project)
    git_commit(project, "download and preprocess")
    # DVC's state and locks hold this directory's paths: each copy builds its own.
    shutil.rmtree(project / ".dvc" / "tmp", ignore_errors=True)
    return project


@functools.cache
def tiny_zip() -> Path:
    """One tiny fra-eng.zip (``write_tiny_zip``) for the whole test process: projects made
    ``prepared`` on it share one prepared template."""
    root = Path(tempfile.mkdtemp(prefix="charmt-zip-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return write_tiny_zip(root / "fra-eng.zip")


def git_commit(directory: Path, message: str) -> None:
    """``git add -A`` and commit everything in ``directory`` (initialising the repo if new)."""
    if not (directory / ".git").exists():
        run(["git", "init", "-q"], directory)
    run(["git", "add", "-A"], directory)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], directory)


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


@functools.cache
def migrated_store() -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per test process.

    Creating a store runs all of MLflow's alembic migrations (1.5-3 s); a test that needs a
    store of its own gets a copy of this one (``copy_store``) instead.
    """
    import mlflow

    directory = Path(tempfile.mkdtemp(prefix="charmt-store-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    database = directory / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{database}").search_experiments(max_results=1)
    return database


def copy_store(database: Path) -> str:
    """A copy of the migrated empty store at ``database``; its URI.

    As in a store MLflow would create there, the Default experiment keeps its artifacts in
    ``mlruns/0`` beside it rather than beside the template.
    """
    shutil.copyfile(migrated_store(), database)
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(database.parent.resolve() / "mlruns" / "0"),),
        )
    return f"sqlite:///{database}"


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


# The sweep both tests/test_sweeps.py and tests/test_ui.py look at: a 2 x 2 grid of tiny
# experiments queued on a project with no MLflow store yet, run by two DVC queue workers.
SWEEP = ("train.latent_dim=16,32", "train.learning_rate=0.003,0.01")
SWEEP_PARAMS = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 2}}


def run_queue(project: Path, jobs: int, timeout: float = 900) -> str:
    """``dvc queue start -j jobs``, then wait until nothing is queued or running; the final
    ``dvc queue status``. The workers run in the background; ``dvc queue status`` is how a user
    sees them finish."""
    import time

    # Not through run(): the workers it starts inherit its stdout, and reading that pipe to its
    # end would wait for the whole queue.
    started = subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        cwd=project,
        env={k: v for k, v in subprocess_env().items() if k != "MLFLOW_TRACKING_URI"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    assert started.returncode == 0, "dvc queue start failed"
    deadline = time.monotonic() + timeout
    while True:
        status = run(["dvc", "queue", "status"], project)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout} s:\n{status}"
        time.sleep(5)


def project_processes(project: Path) -> list[str]:
    """Processes whose working directory or command line is under ``project`` (DVC queue
    workers and the experiments they run): ``pid cmdline`` for each."""
    import psutil

    root = str(project.resolve())
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if process.info["pid"] == os.getpid():
            continue
        cwd, cmdline = process.info["cwd"] or "", " ".join(process.info["cmdline"] or ())
        if cwd == root or cwd.startswith(root + os.sep) or root in cmdline:
            found.append(f"{process.info['pid']} {cmdline}")
    return found


def stop_queue(project: Path, grace: float = 30) -> None:
    """Stop the DVC queue's workers of ``project`` and everything they started: ``dvc queue
    stop``, then SIGTERM and at last SIGKILL for whatever still runs under the project.

    The workers are daemons in sessions of their own (dvc_task spawns them with a double fork),
    so they outlive ``dvc queue start`` and the test session unless stopped."""
    import signal
    import time

    import psutil

    subprocess.run(
        ["dvc", "queue", "stop"],
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        timeout=120,
    )
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace
        while project_processes(project) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = project_processes(project)
        if not left:
            return
        if sig is not None:
            for line in left:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(int(line.split()[0])).send_signal(sig)


@dataclass
class Sweep:
    project: Path
    store: str  # the project's own default MLflow store
    status: str  # `dvc queue status` once the queue is empty


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
