"""Tests for charmt.io.paths: the project root, also from inside a DVC experiment copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from charmt.io.paths import project_root, resolve_local


def test_project_root_is_cwd_normally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert project_root() == project.resolve()
    assert project_root(project) == project.resolve()


def test_project_root_inside_experiment_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    copy = project / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (copy / "stages").mkdir(parents=True)
    assert project_root(copy) == project.resolve()
    assert project_root(copy / "stages") == project.resolve()
    monkeypatch.chdir(copy)
    assert project_root() == project.resolve()


def test_similar_names_are_not_experiment_copies(tmp_path: Path) -> None:
    for lookalike in (
        tmp_path / "p" / ".dvc" / "tmp" / "other",
        tmp_path / "p" / "dvc" / "tmp" / "exps" / "x",
        tmp_path / "p" / ".dvc" / "tmp" / "exps-old" / "x",
    ):
        lookalike.mkdir(parents=True)
        assert project_root(lookalike) == lookalike.resolve()


def test_resolve_local_keeps_absolute(tmp_path: Path) -> None:
    absolute = tmp_path / "data" / "fra.txt"
    copy = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmp1"
    copy.mkdir(parents=True)
    assert resolve_local(absolute, cwd=copy) == absolute
    assert resolve_local(str(absolute)) == absolute


def test_resolve_local_relative_to_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    copy = project / ".dvc" / "tmp" / "exps" / "tmp1"
    copy.mkdir(parents=True)
    assert resolve_local("mlruns", cwd=copy) == project.resolve() / "mlruns"
    assert resolve_local(Path("data/fra.txt"), cwd=project) == project.resolve() / "data/fra.txt"
    monkeypatch.chdir(copy)
    assert resolve_local("data/fra.txt") == project.resolve() / "data" / "fra.txt"
    assert resolve_local("data/fra.txt").is_absolute()


def test_resolve_local_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_local("~/fra.txt", cwd=tmp_path / "elsewhere") == tmp_path / "fra.txt"
