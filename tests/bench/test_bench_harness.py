"""bench/harness.py: the results file and the worker's answer, which bench/run.py, bench/quality.py
and bench/load.py all write through it."""

from __future__ import annotations

import json

import pytest
from projects import PROJECT


@pytest.fixture
def harness(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT))
    from bench import harness

    return harness


def test_results_are_written_as_json_and_markdown_beside_it(harness, tmp_path):
    path = tmp_path / "results" / "2026-12-07.json"
    assert harness.write_results(path, {"figure": "é"}, "# Table\n") == path
    assert json.loads(path.read_text(encoding="utf-8")) == {"figure": "é"}
    assert path.with_suffix(".md").read_text(encoding="utf-8") == "# Table\n"
    harness.write_results(path, {"figure": 2})  # a run in progress: no Markdown yet
    assert json.loads(path.read_text()) == {"figure": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["2026-12-07.json", "2026-12-07.md"]


def test_a_worker_answers_with_one_json_line(harness, capsys):
    harness.answer_as_worker(lambda n, word: {"words": [word] * n}, '{"n": 2, "word": "Va"}')
    assert capsys.readouterr().out.splitlines() == ['{"words": ["Va", "Va"]}']


def test_the_machine_header_names_the_cpus_and_the_packages(harness):
    assert set(harness.machine()) == {"cpu_count", "platform"}
    assert harness.cpu_name()
    # TensorFlow's is the peak worker's to report (the driver does not import it).
    assert set(harness.versions()) == {"keras", "numpy", "mlflow", "dvc"}
    assert harness.peak_rss_mib() > 0
