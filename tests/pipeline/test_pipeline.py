"""End to end: the real DVC pipeline on a tiny zip, in a throwaway copy of the project.

Runs `dvc repro` (all four stages), checks what each stage wrote and the MLflow run, that a second
`dvc repro` runs nothing, and that `dvc exp run --temp -S train.epochs=...` re-runs only train and
evaluate and logs a second MLflow run into the project's own store, not the temporary copy.
"""

import csv
import json
import math
from pathlib import Path

import mlflow
import pytest
from commands import run
from projects import git_commit, make_project, write_tiny_zip

from charmt.data.prepared import load_split
from charmt.data.references import group_references
from charmt.evaluation.metrics import SCORE_RANGES

pytestmark = pytest.mark.e2e

STAGES = ("download", "preprocess", "train", "evaluate")


# Each score of metrics/eval.json and the range it must lie in.


def ran(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def check_evaluation(project: Path) -> dict:
    """metrics/eval.json and samples.tsv cover exactly the test split's distinct sources, with
    finite scores in range; the figures."""
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert set(evaluation) == {*SCORE_RANGES, "test_sentences", "decoding", "beam_width"}
    # The default params decode as the seed did: greedily.
    assert (evaluation["decoding"], evaluation["beam_width"]) == ("greedy", 1)
    for name, (low, high) in SCORE_RANGES.items():
        value = evaluation[name]
        assert math.isfinite(value) and low <= value <= high, f"{name} = {value}"
    # The test split, not another: its distinct English sentences, each once.
    test_sources = list(group_references(load_split(project / "data/prepared", "test")))
    assert evaluation["test_sentences"] == len(test_sources) > 0
    with (project / "metrics/samples.tsv").open(encoding="utf-8", newline="") as file:
        samples = list(csv.DictReader(file, delimiter="\t"))
    assert [row["source"] for row in samples] == test_sources
    for row in samples:
        assert row["exact"] in {"yes", "no"}
        assert 0.0 <= float(row["char_accuracy"]) <= 1.0
    return evaluation


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> tuple[Path, str]:
    """A git + DVC copy of the project whose data.url is a tiny zip with tiny params, after its
    first ``dvc repro``; the project and that command's output. Each test below reads it, or
    runs what a user would run next, so that each passes alone and in any order."""
    root = tmp_path_factory.mktemp("pipeline")
    project = make_project(root / "project", write_tiny_zip(root / "fra-eng.zip"))
    return project, run(["dvc", "repro"], project)


@pytest.fixture
def project(reproduced) -> Path:
    return reproduced[0]


def test_repro_runs_every_stage_and_writes_every_output(reproduced):
    project, output = reproduced
    assert ran(output) == set(STAGES)

    data = json.loads((project / "metrics/data.json").read_text())
    assert data["pairs_read"] == 302
    assert sum(data[s]["pairs"] for s in ("train", "validation", "test")) == 302

    history = (project / "metrics/history.csv").read_text().splitlines()
    assert history[0] == (
        "epoch,loss,val_loss,accuracy,val_accuracy,seconds,train_seconds,"
        "val_chrf,val_char_accuracy,val_decode_seconds"
    )
    assert len(history) == 1 + 3
    # select_by val_loss (the default) decodes nothing: the translation columns stay empty.
    assert all(row.endswith(",,,") for row in history[1:])

    evaluation = check_evaluation(project)
    samples = (project / "metrics/samples.tsv").read_text().splitlines()
    assert samples[0].split("\t") == ["source", "output", "references", "exact", "char_accuracy"]
    # The promotion scores the evaluation's own translations: the test split is decoded once.
    promotion = json.loads((project / "metrics/promotion.json").read_text())
    assert promotion["score"] == evaluation["char_accuracy"]

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    logged = mlflow.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == "3"
    assert logged.data.params["train.rho"] == "0.9"
    assert logged.data.metrics["exact_match"] == pytest.approx(evaluation["exact_match"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert "samples.tsv" in artifacts
    assert (project / "mlartifacts").is_dir()


def test_second_repro_runs_nothing(project):
    assert ran(run(["dvc", "repro"], project)) == set()


def test_exp_run_reruns_train_and_evaluate_and_logs_to_the_project_store(project):
    git_commit(project, "baseline")
    output = run(["dvc", "exp", "run", "--temp", "-S", "train.epochs=2"], project)
    assert ran(output) == {"train", "evaluate"}

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    assert sorted(r.data.params["train.epochs"] for r in runs) == ["2", "3"]
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags.get("dvc_experiment")
    assert "exact_match" in newest.data.metrics
