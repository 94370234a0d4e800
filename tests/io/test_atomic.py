"""Tests for charmt.io.atomic: outputs appear whole or not at all."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from charmt.io.atomic import atomic_dir, atomic_path, write_json, write_table, write_text


class Boom(Exception):
    pass


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_path_writes_on_success(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert not target.exists()
        tmp.write_bytes(b"\x00\x01payload")
    assert target.read_bytes() == b"\x00\x01payload"
    assert names(target.parent) == ["out.bin"]


def test_atomic_path_replaces_existing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with atomic_path(target) as tmp:
        tmp.write_text("new", encoding="utf-8")
        assert target.read_text(encoding="utf-8") == "old"  # untouched until the block ends
    assert target.read_text(encoding="utf-8") == "new"
    assert names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("existing", [True, False])
def test_atomic_path_failure_leaves_target_and_no_temp(tmp_path: Path, existing: bool) -> None:
    target = tmp_path / "out.txt"
    if existing:
        target.write_text("old", encoding="utf-8")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise Boom
    if existing:
        assert target.read_text(encoding="utf-8") == "old"
        assert names(tmp_path) == ["out.txt"]
    else:
        assert names(tmp_path) == []


def test_write_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "note.txt"
    write_text(target, "première ligne\nzweite Zeile\n")
    assert target.read_text(encoding="utf-8") == "première ligne\nzweite Zeile\n"
    write_text(target, "short")
    assert target.read_text(encoding="utf-8") == "short"
    assert names(target.parent) == ["note.txt"]


def test_write_json(tmp_path: Path) -> None:
    data = {"bleu": 12.5, "name": "café", "nested": {"list": [1, 2, None]}}
    target = tmp_path / "metrics.json"
    write_json(target, data)
    assert json.loads(target.read_text(encoding="utf-8")) == data
    assert "café" in target.read_text(encoding="utf-8")


def test_write_json_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text(encoding="utf-8")) == {"ok": True}
    assert names(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_write_table(tmp_path: Path, delimiter: str) -> None:
    rows = [
        {"source": "Hi, you.", "hypothesis": 'Salut, "toi".', "bleu": 1.5},
        {"source": "Go.", "hypothesis": "Va\tvite !", "bleu": 0},
    ]
    target = tmp_path / "table.csv"
    write_table(target, rows, ["source", "hypothesis", "bleu"], delimiter=delimiter)
    with target.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        assert reader.fieldnames == ["source", "hypothesis", "bleu"]
        assert list(reader) == [{k: str(v) for k, v in row.items()} for row in rows]


def test_write_table_header_only(tmp_path: Path) -> None:
    target = tmp_path / "empty.tsv"
    write_table(target, [], ("a", "b"), delimiter="\t")
    assert target.read_text(encoding="utf-8") == "a\tb\n"


def test_write_table_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    write_table(target, [{"a": 1}], ["a"])
    before = target.read_bytes()
    # The second row has a column the table does not declare: csv fails mid-way.
    with pytest.raises(ValueError):
        write_table(target, [{"a": 2}, {"a": 3, "oops": 4}], ["a"])
    assert target.read_bytes() == before
    assert names(tmp_path) == ["table.csv"]


def test_atomic_dir_creates(tmp_path: Path) -> None:
    target = tmp_path / "parent" / "prepared"
    with atomic_dir(target) as tmp:
        assert tmp.is_dir()
        assert list(tmp.iterdir()) == []
        assert not target.exists()
        (tmp / "a.txt").write_text("a", encoding="utf-8")
    assert names(target) == ["a.txt"]
    assert names(target.parent) == ["prepared"]


def test_atomic_dir_replaces_existing_on_success(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    (target / "sub").mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
        assert (target / "old.txt").read_text(encoding="utf-8") == "old"
    assert names(target) == ["new.txt"]
    assert names(tmp_path) == ["prepared"]


def test_atomic_dir_failure_keeps_existing(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
        raise Boom
    assert names(target) == ["old.txt"]
    assert (target / "old.txt").read_text(encoding="utf-8") == "old"
    assert names(tmp_path) == ["prepared"]


def test_atomic_dir_failure_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
        raise Boom
    assert names(tmp_path) == []
