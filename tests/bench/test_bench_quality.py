"""bench/quality.py's driver: each configuration's row on disk (JSON and Markdown) as it finishes,
rows joining an earlier table only if it was set up alike, one test split for all rows.

The workers themselves (minutes of training) are not run here; a fake ``run_worker`` stands in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from commands import subprocess_env
from projects import PROJECT

SHA = "ab" * 32


def _row(test_split_sha256: str = SHA, curve: list | None = None) -> dict:
    scores = {"exact_match": 0.25, "char_accuracy": 0.5, "bleu": 3.0, "chrf": 20.0}
    evaluation = {**scores, "sentences_per_second": 100.0, "test_sentences": 5}
    return {
        "train_pairs": 30,
        "test_split_sha256": test_split_sha256,
        "train": {},
        "stopped_by": "budget",
        "train_seconds": 120.0,
        "epochs_run": 3,
        "best_epoch": 2,
        "history": [],
        "curve": curve or [],
        "evaluations": {"1": evaluation, "5": evaluation},
        "peak_rss_mib": 800.0,
    }


@pytest.fixture
def quality(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT))
    from bench import quality

    monkeypatch.setattr(quality, "raw_pairs", lambda data: "fra.txt")
    return quality


def _main(quality, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["quality.py", *args])
    quality.main()


def test_each_row_is_written_with_its_table_and_the_worker_gets_its_profile(
    quality, monkeypatch, tmp_path
):
    calls = []
    point = {"epoch": 1, "train_seconds": 60.0, "val_loss": 1.2, "exact_match": 0.0}
    point.update(char_accuracy=0.3, bleu=1.0, chrf=10.0)

    def fake_worker(configuration, **kwargs):
        calls.append((configuration, kwargs))
        return _row(curve=[point] if configuration == "transformer" else None)

    monkeypatch.setattr(quality, "run_worker", fake_worker)
    out = tmp_path / "out"
    _main(
        quality,
        monkeypatch,
        "--out",
        str(out),
        "--budget-minutes",
        "7",
        "--label",
        "quiet",
        "--configs",
        "seed",
        "transformer",
    )
    [path] = out.glob("quality-*.json")
    written = json.loads(path.read_text())
    assert list(written["configurations"]) == ["seed", "transformer"]
    assert written["setup"]["test_split_sha256"] == SHA
    # The default profile runs all its epochs: no budget; the others stop at it.
    assert written["configurations"]["seed"]["budget_minutes"] is None
    assert written["configurations"]["transformer"]["budget_minutes"] == 7
    [(_, seed), (_, transformer)] = calls
    assert seed["model"] == {"architecture": "keras_example"}
    assert seed["budget_seconds"] is None and transformer["budget_seconds"] == 7 * 60
    assert transformer["model"]["architecture"] == "transformer"
    assert transformer["train"]["select_by"] == "char_accuracy"
    assert seed["beam_widths"] == [1, 5]
    text = path.with_suffix(".md").read_text()
    assert "| transformer | 30 | beam 5 | 0.250 | 0.500 |" in text
    assert "| budget (7 min) |" in text
    assert "## Quality against training time" in text
    assert sorted(p.name for p in out.iterdir()) == [path.name, path.with_suffix(".md").name]


def test_rows_scored_on_another_test_split_stop_the_run(quality, monkeypatch, tmp_path):
    rows = iter([_row(), _row(test_split_sha256="cd" * 32)])
    monkeypatch.setattr(quality, "run_worker", lambda configuration, **kwargs: next(rows))
    with pytest.raises(SystemExit) as exited:
        _main(quality, monkeypatch, "--out", str(tmp_path), "--configs", "seed", "attention")
    assert "different test splits" in str(exited.value.code)


def test_added_rows_join_a_table_set_up_alike_and_no_other(quality, monkeypatch, tmp_path):
    monkeypatch.setattr(quality, "run_worker", lambda configuration, **kwargs: _row())
    _main(quality, monkeypatch, "--out", str(tmp_path), "--configs", "seed", "--label", "first")
    [path] = tmp_path.glob("quality-*.json")
    _main(quality, monkeypatch, "--add-to", str(path), "--configs", "attention", "--label", "2nd")
    joined = json.loads(path.read_text())
    assert list(joined["configurations"]) == ["seed", "attention"]
    assert joined["label"].startswith("first; then attention on ")
    assert joined["label"].endswith(": 2nd")
    with pytest.raises(SystemExit) as exited:
        _main(quality, monkeypatch, "--add-to", str(path), "--beam-width", "3", "--configs", "seed")
    assert "was set up otherwise" in str(exited.value.code)


def test_a_failed_worker_names_its_configuration(quality, monkeypatch):
    from bench import harness

    def failing(script, args, name, show_progress=False):
        # Its progress goes to the terminal, so the failure is read there ("see above").
        assert show_progress and args[0] == "--worker"
        raise harness.WorkerFailed(name, "")

    monkeypatch.setattr(quality, "run_script", failing)
    with pytest.raises(SystemExit) as exited:
        quality.run_worker("attention", model={"architecture": "attention"})
    assert str(exited.value.code) == "worker attention failed; see above"


def test_the_driver_does_not_import_tensorflow():
    # Its worker does, in its own process; the driver reads the profiles and writes the table.
    code = (
        "import sys; from bench import quality, quality_report; "
        "quality.sections(quality.PROFILES['quick']); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    env = subprocess_env(PYTHONPATH=os.pathsep.join([str(PROJECT), str(PROJECT / "src")]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
