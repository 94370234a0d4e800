"""Tests for the CI scripts in .ci/: a failure anywhere in .ci/run's test command fails CI.

.ci/run is run for real, in a scratch copy where the system-package and pipeline steps are
stand-ins that only leave a mark, so no test here installs packages, runs the pipeline or runs
this suite inside itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT, subprocess_env


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
