"""bench/run.py's driver: what each worker measured is on disk before the next one runs.

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

PEAK = {"matmul_n": 8, "gflops": 1.5, "tensorflow": "9.9.9"}


@pytest.fixture
def bench_run(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(PROJECT))
    from bench import run

    monkeypatch.setattr(run, "WORK", tmp_path / "work")
    monkeypatch.setattr(run, "raw_pairs", lambda data: str(tmp_path / "fra.txt"))
    return run


def _main(run, monkeypatch, results, *args):
    monkeypatch.setattr(sys, "argv", ["run.py", "--results", str(results), *args])
    run.main()


def test_a_failed_worker_leaves_the_results_of_those_before_it(bench_run, monkeypatch, tmp_path):
    results = tmp_path / "results"
    seen_before_seed = []

    def fake_worker(name, **kwargs):
        if name == "peak":
            return PEAK
        # The peak's output is already on disk while the next worker runs.
        seen_before_seed.extend(json.loads(p.read_text()) for p in results.glob("*.json"))
        raise bench_run.WorkerFailed(name, "Traceback ...\nRuntimeError: out of memory")

    monkeypatch.setattr(bench_run, "run_worker", fake_worker)
    with pytest.raises(SystemExit) as exited:
        _main(bench_run, monkeypatch, results, "--growth")
    assert "worker seed failed" in str(exited.value.code)
    assert "out of memory" in str(exited.value.code)
    assert [r["workers"] for r in seen_before_seed] == [{"peak": PEAK}]
    [path] = results.iterdir()  # no temporary file left, no Markdown for a partial run
    written = json.loads(path.read_text())
    assert written["complete"] is False
    assert written["workers"] == {"peak": PEAK}
    assert written["failed"]["worker"] == "seed"
    assert "out of memory" in written["failed"]["stderr"]
    # TensorFlow's version comes from the worker that imported it, whichever build it is.
    assert written["versions"]["tensorflow"] == "9.9.9"
    assert "tensorflow-cpu" not in written["versions"]


def test_a_worker_process_that_fails_raises_with_its_stderr(bench_run):
    with pytest.raises(bench_run.WorkerFailed) as failed:
        bench_run.run_worker("no-such-worker")
    assert "KeyError: 'no-such-worker'" in failed.value.stderr


def test_a_complete_run_writes_the_summary_and_the_markdown(bench_run, monkeypatch, tmp_path):
    prepared = tmp_path / "work" / "prepared-30"
    prepared.mkdir(parents=True)
    (prepared / "train.tsv").write_text("Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n")
    epochs = {"epoch_train_seconds": [3.0, 2.0, 2.5], "final_val_loss": 1.0, "peak_rss_mib": 900}
    quality = {"exact_match": 0.1, "char_accuracy": 0.5}
    outputs = {
        "peak": PEAK,
        "seed": {"train_pairs": 3, "array_mib": 1.0, **epochs, **quality},
        "ours": {"train_pairs": 3, "train_characters": 30, **epochs, **quality},
        "transformer": {
            "train_pairs": 3,
            **epochs,
            "epoch_train_seconds": [6.0, 4.0, 5.0],
            **quality,
        },
        "decode": {
            "sentences": 2,
            "batched_seconds": 0.1,
            "seed_way_seconds": 2.0,
            "same_strings": True,
            "split_sentences": 3,
            "split_batched_seconds": 0.2,
            "transformer_batched_seconds": 0.2,
            "transformer_split_seconds": 0.5,
        },
    }
    monkeypatch.setattr(bench_run, "run_worker", lambda name, **kwargs: outputs[name])
    results = tmp_path / "results"
    _main(bench_run, monkeypatch, results, "--num-samples", "30", "--growth", "30")
    [path] = results.glob("*.json")
    written = json.loads(path.read_text())
    assert written["complete"] is True and "workers" not in written
    assert next(iter(written["versions"])) == "tensorflow"
    assert written["training"]["speedup"] == pytest.approx(1.0)
    assert written["growth"]["30"]["seconds_per_epoch"] == 2.0
    # The Transformer by the same rules: its fastest epoch after the first, training only.
    transformer = written["training"]["transformer"]
    assert transformer["seconds_per_epoch"] == 4.0
    assert transformer["samples_per_second"] == pytest.approx(3 / 4.0)
    assert written["training"]["transformer_vs_ours"] == pytest.approx(0.5)
    assert written["decoding"]["transformer_split_sentences_per_second"] == pytest.approx(6.0)
    assert written["decoding"]["transformer_vs_ours"] == pytest.approx(0.4)
    # The profile it trained, as bench/quality.py's keys, at the run's epochs.
    assert written["setup"]["transformer"]["model.architecture"] == "transformer"
    assert written["setup"]["transformer"]["train.epochs"] == 20
    text = path.with_suffix(".md").read_text()
    assert "tensorflow 9.9.9" in text
    assert "| charmt transformer | transformer / charmt |" in text
    assert "| 4.00 | 0.50x as fast |" in text  # training s/epoch: 2.0 vs 4.0
    assert "| 6 | 0.40x (target >= 0.33x) |" in text  # whole split: 6 vs 15 sentences/s
    assert (results / "latest.md").read_text() == path.with_suffix(".md").read_text()


def test_the_driver_does_not_import_tensorflow():
    # Its workers do, each in its own process; the driver reads the defaults, counts FLOPs and
    # records the Transformer profile it trains.
    code = (
        "import sys; from bench import run, profiles, speed_summary, speed_report; "
        "from charmt.data.pairs import Pair; profiles.pipeline_defaults(); "
        "speed_summary.training_flops([Pair('Go.', 'Va !')]); profiles.transformer_params(2); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    env = subprocess_env(PYTHONPATH=os.pathsep.join([str(PROJECT), str(PROJECT / "src")]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
