"""The train stage in the library (``charmt.pipeline.train.train``): checkpoints outlive every
interrupt until the outputs and the MLflow run are complete."""

import mlflow
import pytest
import yaml
from projects import PROJECT, TINY_PARAMS
from tiny_task import reversal_pairs

from charmt import tracking
from charmt.params import read
from charmt.pipeline.preprocess import prepare
from charmt.pipeline.train import SECTIONS, Outputs, train


@pytest.fixture
def stage(tmp_path):
    """Prepared tiny data, params for 3 quick epochs, and where the stage writes."""
    raw, prepared = tmp_path / "fra.txt", tmp_path / "prepared"
    raw.write_text("".join(f"{p.source}\t{p.target}\n" for p in reversal_pairs(300, seed=4)))
    prepare(raw, prepared, None, 0.1, 0.1, 42)
    values = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for name, section in TINY_PARAMS.items():
        values[name].update(section)
    values["train"].update(latent_dim=16, epochs=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    params = read(tmp_path / "params.yaml", *SECTIONS)
    outputs = Outputs(
        tmp_path / "models",
        tmp_path / "history.csv",
        tmp_path / "train.json",
        tmp_path / "checkpoints",
    )
    return params, prepared, outputs


def test_an_interrupt_while_the_models_are_logged_keeps_the_checkpoint(stage, monkeypatch, capsys):
    params, prepared, outputs = stage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while logging the models, or waiting for the lock

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(tracking.TrainingRun, "finish", interrupted)
        train(params, prepared, outputs)
    kept = sorted(p.name for p in outputs.checkpoints.rglob("epoch-*"))
    assert kept == ["epoch-0003"], "the finished training must survive until it is logged"
    assert "checkpoint after epoch 3 is kept" in capsys.readouterr().err
    killed = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    assert [r.info.status for r in killed] == ["KILLED"]

    # Run again: nothing is trained again, the same run is completed, then the checkpoint goes.
    completed = train(params, prepared, outputs)
    assert "resuming MLflow run" in capsys.readouterr().out
    assert completed.run_id == killed[0].info.run_id
    finished = mlflow.get_run(completed.run_id)
    assert finished.info.status == "FINISHED"
    steps = mlflow.MlflowClient().get_metric_history(completed.run_id, "loss")
    assert sorted(m.step for m in steps) == [1, 2, 3]
    assert not outputs.checkpoints.exists()


def test_the_stage_selecting_by_chrf_writes_and_logs_the_scores_of_decoded_epochs(stage):
    import csv
    import json

    params, prepared, outputs = stage
    params["train"] = params["train"].model_copy(update={"select_by": "chrf", "select_every": 2})
    completed = train(params, prepared, outputs)

    with outputs.history.open(newline="") as file:
        rows = list(csv.DictReader(file))
    # Epoch 2 (select_every) and 3 (the last) were decoded; epoch 1's cells are empty.
    assert [bool(row["val_chrf"]) for row in rows] == [False, True, True]
    assert [bool(row["val_char_accuracy"]) for row in rows] == [False, True, True]
    summary = json.loads(outputs.metrics.read_text())
    assert summary["selected_by"] == "chrf"
    best = rows[summary["best_epoch"] - 1]
    assert summary["best_epoch"] in (2, 3) and summary["kept_epoch"] == summary["best_epoch"]
    assert summary["best_val_chrf"] == float(best["val_chrf"])
    assert summary["best_val_chrf"] == max(float(row["val_chrf"]) for row in rows[1:])
    assert summary["best_val_loss"] == float(best["val_loss"])

    client = mlflow.MlflowClient()
    steps = client.get_metric_history(completed.run_id, "val_chrf")
    assert sorted(m.step for m in steps) == [2, 3]
    logged = mlflow.get_run(completed.run_id).data.metrics
    assert logged["best_val_chrf"] == summary["best_val_chrf"]


CPU = "system/cpu_utilization_percentage"


def _system_steps(run_id: str) -> list[int]:
    return sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run_id, CPU))


@pytest.mark.parametrize("enabled", [True, False])
def test_system_metrics_are_sampled_into_the_training_run_when_asked(stage, monkeypatch, enabled):
    params, prepared, outputs = stage
    # MLflow's 10 s default would see nothing of a training this short.
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tracking_params = params["tracking"].model_copy(update={"system_metrics": enabled})
    params = {**params, "tracking": tracking_params}
    done = train(params, prepared, outputs)
    metrics = mlflow.get_run(done.run_id).data.metrics
    if enabled:
        assert _system_steps(done.run_id)
        assert "system/system_memory_usage_megabytes" in metrics
    else:
        assert not [name for name in metrics if name.startswith("system/")]


def test_a_reopened_training_run_samples_system_metrics_on(stage, monkeypatch):
    params, prepared, outputs = stage
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(tracking.TrainingRun, "finish", interrupted)
        train(params, prepared, outputs)
    (killed,) = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    before = _system_steps(killed.info.run_id)
    assert before, "the interrupted training sampled nothing"
    completed = train(params, prepared, outputs)  # reopens the run and logs the models
    assert completed.run_id == killed.info.run_id
    after = _system_steps(completed.run_id)
    # The reopened run's samples follow the first ones, step numbers carrying on.
    assert after[: len(before)] == before and len(after) > len(before)
    assert after == list(range(len(after)))
