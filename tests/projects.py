"""Copies of this project for end-to-end tests: git + DVC projects on a tiny fra-eng.zip (or the
shared data) with params merged in, prepared once per test process when the test does not look
at the download and preprocess stages."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from commands import run
from tiny_task import reversal_pairs

PROJECT = Path(__file__).resolve().parents[1]


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
