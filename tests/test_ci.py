"""Tests for the CI scripts in .ci/: a failure anywhere in .ci/run's test command fails CI, and
.ci/check_run.py fails a pipeline run whose figures are wrong.

.ci/run is run for real, in a scratch copy where the system-package and pipeline steps are
stand-ins that only leave a mark, so no test here installs packages, runs the pipeline or runs
this suite inside itself.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from commands import subprocess_env
from projects import PROJECT


def readme_test_command() -> str:
    """The command the README gives under "Install and run the tests"."""
    lines = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()
    heading = lines.index("Install and run the tests:")
    return next(line for line in lines[heading + 1 :] if line.strip()).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = readme_test_command()
    assert command.startswith("python3.11 -m venv .venv && ") and command.endswith("&& pytest")
    run_lines = (PROJECT / ".ci/run").read_text(encoding="utf-8").splitlines()
    assert f"{command} || exit" in run_lines
    assert "bash .ci/install-system-packages" in run_lines


def ci_copy(root: Path) -> Path:
    """.ci/run in a scratch repository whose other steps are stand-ins that leave a mark."""
    (root / ".ci").mkdir(parents=True)
    shutil.copy(PROJECT / ".ci/run", root / ".ci/run")
    for step in ("install-system-packages", "pipeline-check"):
        (root / ".ci" / step).write_text(f"touch {step}.ran\n")
    return root


def run_ci(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = subprocess_env(**env)
    environment.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        ["bash", ".ci/run"], cwd=root, env=environment, capture_output=True, text=True, timeout=300
    )


def assert_failed_before_the_pipeline(done: subprocess.CompletedProcess[str], root: Path) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert (root / "install-system-packages.ran").exists(), output
    assert not (root / "pipeline-check.ran").exists(), output
    assert "== tests took" not in output


def test_a_failed_install_fails_ci(tmp_path):
    root = ci_copy(tmp_path / "repo")
    # Not valid TOML: pip fails on reading it, before it would look at any package index.
    (root / "pyproject.toml").write_text('[project\nname = "charmt"\n')
    done = run_ci(root)
    assert_failed_before_the_pipeline(done, root)
    output = done.stdout + done.stderr
    assert "TOMLDecodeError" in output or "pyproject.toml" in output, output  # pip's own error


def test_a_failed_venv_fails_ci(tmp_path):
    root = ci_copy(tmp_path / "repo")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3.11").write_text("#!/bin/sh\necho 'no python3.11 here' >&2\nexit 3\n")
    (fake / "python3.11").chmod(0o755)
    done = run_ci(root, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert_failed_before_the_pipeline(done, root)
    assert done.returncode == 3


@pytest.fixture(autouse=True)
def _no_ci_leaks(monkeypatch):
    # .ci/run decides CI itself; the outer value must not matter.
    monkeypatch.delenv("CI", raising=False)


# --- .ci/check_run.py, which .ci/pipeline-check runs after each pipeline run ----------------------

GOOD_EVAL = {
    "exact_match": 0.0,
    "char_accuracy": 0.25,
    "bleu": 1.2,
    "chrf": 14.0,
    "test_loss": 1.7,
    "test_accuracy": 0.5,
    "sentences_per_second": 900.0,
    "test_sentences": 150,
}


def write_run(root: Path, epochs: int = 9, **eval_changes: object) -> Path:
    """A project directory with the metrics files of a run of ``epochs`` epochs."""
    metrics = root / "metrics"
    metrics.mkdir(parents=True)
    rows = [f"{e},1.0,1.1,0.5,0.5,1.0,0.9" for e in range(1, epochs + 1)]
    header = "epoch,loss,val_loss,accuracy,val_accuracy,seconds,train_seconds"
    (metrics / "history.csv").write_text("\n".join([header, *rows]) + "\n")
    (metrics / "train.json").write_text(json.dumps({"epochs_run": epochs}))
    # json.dumps writes NaN for float("nan"), as Python's json.dump in the stage would.
    (metrics / "eval.json").write_text(json.dumps({**GOOD_EVAL, **eval_changes}))
    return root


def check_run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT / ".ci/check_run.py"), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def params_diff(root: Path, changes: dict) -> str:
    path = root / "params-diff.json"
    path.write_text(json.dumps({"params.yaml": changes}))
    return str(path)


def test_check_run_passes_a_good_run(tmp_path):
    root = write_run(tmp_path)
    diff = params_diff(root, {"train.epochs": {"old": 8, "new": 9, "diff": 1}})
    done = check_run(root, "--epochs", "9", "--params-diff", diff, "--epochs-before", "8")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("epochs_written", "eval_changes", "failure"),
    [
        (8, {}, "history.csv has epochs"),
        (9, {"test_loss": math.nan}, "eval.json test_loss = nan, not a finite number"),
        (9, {"bleu": math.inf}, "eval.json bleu = inf, not a finite number"),
        (9, {"char_accuracy": 1.5}, "eval.json char_accuracy = 1.5 outside"),
        (9, {"chrf": 2.0}, "eval.json chrf = 2.0 below the floor"),
        (9, {"test_loss": 3.9}, "eval.json test_loss = 3.9 above the ceiling"),
        (9, {"test_sentences": 0}, "eval.json test_sentences = 0 outside"),
    ],
)
def test_check_run_fails_a_bad_run(tmp_path, epochs_written, eval_changes, failure):
    root = write_run(tmp_path, epochs_written, **eval_changes)
    done = check_run(root, "--epochs", "9")
    assert done.returncode == 1
    assert f"pipeline-check: FAILED: metrics/{failure}" in done.stdout


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"train.epochs": {"old": 8, "new": 10}},
        {"train.epochs": {"old": 8, "new": 9}, "train.seed": {"old": 42, "new": 1}},
    ],
)
def test_check_run_fails_a_wrong_params_diff(tmp_path, changes):
    root = write_run(tmp_path)
    done = check_run(root, "--epochs", "9", "--params-diff", params_diff(root, changes))
    assert done.returncode == 1
    assert "pipeline-check: FAILED: dvc params diff shows" in done.stdout


def pytest_in(directory: Path, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest, in a child process with ``env`` added, on the tests in ``directory`` alone: none
    of this project's configuration (pyproject's addopts) applies."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *options]
    return subprocess.run(
        [*command, "-c", os.devnull, "--rootdir", str(directory), str(directory)],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=300,
    )


@pytest.mark.e2e
def test_under_ci_a_skipped_test_fails(tmp_path):
    """tests/conftest.py turns any skip into a failure when CI is set, so a tool or server CI
    lacks cannot pass unseen; outside CI the same test is skipped."""
    # conftest.py and the helper modules beside it that it imports.
    for helper in (PROJECT / "tests").glob("*.py"):
        if not helper.name.startswith("test_"):
            shutil.copy(helper, tmp_path / helper.name)
    (tmp_path / "test_needs_a_tool.py").write_text(
        "import pytest\n\n\n"
        "def test_needs_a_tool():\n"
        "    pytest.skip('the tool is not installed')\n"
    )

    under_ci = pytest_in(tmp_path, "-n", "0", CI="true")
    assert under_ci.returncode == 1, under_ci.stdout[-3000:]
    assert "skipped under CI, where every test must run: " in under_ci.stdout
    assert "the tool is not installed" in under_ci.stdout
    outside = pytest_in(tmp_path, "-n", "0", CI="")
    assert outside.returncode == 0 and "1 skipped" in outside.stdout, outside.stdout[-3000:]


# A suite of four modules: each test and each module fixture's build writes a line to a log.
SUITE_MODULE = """import os

import pytest


def log(line):
    with open(os.environ["SUITE_LOG"], "a") as file:
        file.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{line}}\\n")


@pytest.fixture(scope="module")
def built():
    log("built {module}")


@pytest.mark.parametrize("case", range(4))
def test_case(built, case):
    log("ran {module}")
"""


def test_each_module_runs_on_one_worker_and_the_shared_ones_together(tmp_path):
    """tests/scheduling.py under two workers: a module's fixtures are built once, the modules
    that share a session fixture run on one worker, the heaviest unit starts first, and both
    workers get work."""
    suite = tmp_path / "suite"
    suite.mkdir()
    modules = ("test_alpha", "test_server", "test_beta", "test_team_server")
    for module in modules:
        (suite / f"{module}.py").write_text(SUITE_MODULE.format(module=module))
    log = tmp_path / "suite.log"
    done = pytest_in(
        suite,
        *("-p", "scheduling", "-n", "2", "--dist", "loadscope", "--no-loadscope-reorder"),
        SUITE_LOG=str(log),
        PYTHONPATH=str(PROJECT / "tests"),
    )
    assert done.returncode == 0, done.stdout[-3000:]
    lines = [line.split() for line in log.read_text().splitlines()]
    workers = {module: {w for w, _, m in lines if m == module} for module in modules}
    assert all(len(ran_on) == 1 for ran_on in workers.values()), workers
    assert workers["test_server"] == workers["test_team_server"]
    assert len(set().union(*workers.values())) == 2, workers
    for module in modules:
        assert [w for w, what, m in lines if (what, m) == ("built", module)] == [*workers[module]]
        assert sum((what, m) == ("ran", module) for _, what, m in lines) == 4
    # The heaviest unit ("postgres", collected second and fourth) is a worker's first.
    first_of = {w: next(m for w2, _, m in lines if w2 == w) for w in ("gw0", "gw1")}
    assert "test_server" in first_of.values(), first_of
