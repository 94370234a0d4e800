"""End to end: a sweep of queued DVC experiments, two at a time, into one fresh SQLite store.

`dvc exp run --queue -S ... -S ...` queues a 2 x 2 grid on a project with no MLflow store yet and
`dvc queue start -j 2` runs it (the ``sweep`` fixture in conftest.py). Every experiment must
succeed, every MLflow run must be complete and findable from its experiment and back, two of
them must have run at once (so the store really was shared under load), the registry's champion
must be the best of the four, and no queue worker may be left running.
"""

import itertools

import mlflow
import pytest
from sweeps import SWEEP, experiments, project_processes

from charmt.pipeline.promotion import CHAMPION, SCORE_TAG

MODEL_NAME = "charmt-translator"  # params.yaml's registry.model_name, which the sweep keeps

pytestmark = pytest.mark.e2e  # on the sweep's worker (tests/scheduling.py)


def queued_grid() -> list[tuple[str, str]]:
    """The (latent_dim, learning_rate) combinations ``SWEEP`` queued, as MLflow logs them."""
    values = [assignment.split("=", 1)[1].split(",") for assignment in SWEEP]
    assert [a.split("=", 1)[0] for a in SWEEP] == ["train.latent_dim", "train.learning_rate"]
    return sorted(itertools.product(*values))


def charmt_runs(store: str) -> list:
    client = mlflow.MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name("charmt").experiment_id])


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

    grid, shown_grid = [], []
    for name, data in shown.items():
        train_metrics = data["metrics"]["metrics/train.json"]["data"]
        params = data["params"]["params.yaml"]["data"]["train"]
        logged = runs[train_metrics["mlflow_run_id"]]  # from the experiment to its run
        assert logged.info.run_name == train_metrics["mlflow_run_name"] == name
        assert logged.data.tags["dvc_experiment"] == name  # and back
        assert len(logged.data.tags["git_commit"]) == 40
        assert logged.info.status == "FINISHED"

        combination = (
            logged.data.params["train.latent_dim"],
            logged.data.params["train.learning_rate"],
        )
        grid.append(combination)
        shown_grid.append((str(params["latent_dim"]), str(params["learning_rate"])))
        assert {
            "train.epochs",
            "data.num_samples",
            "evaluate.batch_size",
        } <= logged.data.params.keys()

        # The description names exactly what differs from the committed params.yaml
        # (latent_dim 32, learning_rate 0.001): the latent_dim line only where it changed.
        note = logged.data.tags["mlflow.note.content"].splitlines()
        expected_note = [f"- train.learning_rate: 0.001 -> {combination[1]}"]
        if combination[0] != "32":
            expected_note.insert(0, f"- train.latent_dim: 32 -> {combination[0]}")
        assert [line for line in note if line.startswith("- ")] == expected_note, note

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
        assert sorted(m.name for m in models) == ["model", "translator"]  # each once
        contexts = {
            {t.key: t.value for t in d.tags}["mlflow.data.context"]
            for d in logged.inputs.dataset_inputs
        }
        assert contexts == {"training", "validation"}
    # Each queued combination exactly once, in MLflow and in DVC alike.
    assert (
        sorted(grid)
        == queued_grid()
        == [("16", "0.003"), ("16", "0.01"), ("32", "0.003"), ("32", "0.01")]
    )
    assert sorted(shown_grid) == queued_grid()


def test_two_experiments_ran_at_once(sweep):
    runs = charmt_runs(sweep.store)
    assert len(runs) == 4
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert all(end is not None and start < end for start, end in spans), spans
    overlapping = [
        (a, b) for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, f"the four runs ran one after another: {spans}"


def test_the_champion_is_the_best_of_the_four_versions(sweep):
    client = mlflow.MlflowClient(sweep.store)
    runs = {r.info.run_id: r for r in charmt_runs(sweep.store)}
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert sorted(v.run_id for v in versions) == sorted(runs), "not one version per run"
    score_tags = {key for v in versions for key in v.tags if key.startswith(SCORE_TAG)}
    assert len(score_tags) == 1, score_tags  # one test split: every version scored on it
    (tag,) = score_tags

    scores = {}
    for version in versions:
        logged = runs[version.run_id]
        # The score each evaluation computed and logged is the one its version carries.
        assert int(logged.data.tags["promotion.version"]) == int(version.version)
        assert float(version.tags[tag]) == logged.data.metrics["promotion.score"]
        scores[int(version.version)] = float(version.tags[tag])
    best = max(scores, key=lambda number: (scores[number], -number))  # a tie keeps the older
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert int(champion.version) == best, f"champion {champion.version}, scores {scores}"


def test_no_queue_worker_is_left_running(sweep):
    assert project_processes(sweep.project) == []
