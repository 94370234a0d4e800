"""End to end: a sweep of queued DVC experiments, two at a time, into one fresh SQLite store.

`dvc exp run --queue -S ... -S ...` queues a 2 x 2 grid on a project with no MLflow store yet and
`dvc queue start -j 2` runs it (the ``sweep`` fixture in conftest.py). Every experiment must
succeed, and every MLflow run must be complete and findable from its experiment and back.
"""

import json

import mlflow
import pytest
from conftest import run

pytestmark = pytest.mark.e2e


def experiments(project) -> dict[str, dict]:
    """``dvc exp show --json``: experiment name -> its data (params, metrics)."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project))
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                found[revision["name"]] = revision["data"]
    return found


def test_every_queued_experiment_succeeds(sweep):
    lines = [line for line in sweep.status.splitlines() if "Success" in line or "Failed" in line]
    assert len(lines) == 4, sweep.status
    assert all("Success" in line for line in lines), sweep.status


def test_every_run_is_complete_and_linked_to_its_experiment(sweep):
    shown = experiments(sweep.project)
    assert len(shown) == 4, shown.keys()

    mlflow.set_tracking_uri(sweep.store)
    client = mlflow.MlflowClient(sweep.store)
    charmt = client.get_experiment_by_name("charmt")
    runs = {r.info.run_id: r for r in client.search_runs([charmt.experiment_id])}
    every_run = [
        r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
    ]
    assert len(every_run) == len(runs) == 4, "runs outside the charmt experiment, or missing"

    grid = set()
    for name, data in shown.items():
        train_metrics = data["metrics"]["metrics/train.json"]["data"]
        params = data["params"]["params.yaml"]["data"]["train"]
        logged = runs[train_metrics["mlflow_run_id"]]  # from the experiment to its run
        assert logged.info.run_name == train_metrics["mlflow_run_name"] == name
        assert logged.data.tags["dvc_experiment"] == name  # and back
        assert len(logged.data.tags["git_commit"]) == 40
        assert logged.info.status == "FINISHED"

        assert logged.data.params["train.latent_dim"] == str(params["latent_dim"])
        assert logged.data.params["train.learning_rate"] == str(params["learning_rate"])
        assert {
            "train.epochs",
            "data.num_samples",
            "evaluate.batch_size",
        } <= logged.data.params.keys()
        grid.add((params["latent_dim"], params["learning_rate"]))

        note = logged.data.tags["mlflow.note.content"]
        assert (
            f"train.latent_dim: 32 -> {params['latent_dim']}" in note or params["latent_dim"] == 32
        )
        assert f"-> {params['learning_rate']}" in note

        history = client.get_metric_history(logged.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == [1, 2]
        evaluation = data["metrics"]["metrics/eval.json"]["data"]
        for metric in ("exact_match", "char_accuracy", "bleu", "best_val_loss"):
            assert metric in logged.data.metrics
        assert logged.data.metrics["char_accuracy"] == pytest.approx(evaluation["char_accuracy"])

        models = mlflow.search_logged_models(
            experiment_ids=[charmt.experiment_id],
            filter_string=f"source_run_id = '{logged.info.run_id}'",
            output_format="list",
        )
        assert sorted(m.name for m in models) == ["model", "translator"]
        contexts = {
            {t.key: t.value for t in d.tags}["mlflow.data.context"]
            for d in logged.inputs.dataset_inputs
        }
        assert contexts == {"training", "validation"}
    assert grid == {(16, 0.003), (16, 0.01), (32, 0.003), (32, 0.01)}
