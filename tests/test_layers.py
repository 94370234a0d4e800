"""src/charmt's layers hold (docs/layout.md): import-linter's contracts in pyproject.toml pass on
the code, and fail on a copy of it where a low layer imports a high one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from commands import subprocess_env
from projects import PROJECT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the charmt package under ``project/src``, with its pyproject.toml."""
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env=subprocess_env(PYTHONPATH=str(project / "src")),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_contract_is_kept():
    done = lint_imports(PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_low_layer_importing_a_high_one_breaks_the_layers(tmp_path):
    shutil.copy(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PROJECT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    pairs = tmp_path / "src/charmt/data/pairs.py"
    pairs.write_text(pairs.read_text() + "\nfrom charmt.training import fit  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Each layer imports only the layers below it BROKEN" in done.stdout
    assert "charmt.data.pairs -> charmt.training.fit" in done.stdout
