"""MLflow tracking: where runs go, what a training run records, and the logged models."""

import os
from pathlib import Path

import mlflow
import numpy as np
import pytest

from charmt import tracking
from charmt.errors import CharmtError


def test_uri_defaults_to_the_project_store_even_in_a_dvc_experiment_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_uri_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_flatten_gives_params_yaml_dotted_names():
    assert tracking.flatten({"train": {"epochs": 3, "rho": 0.9}, "data": {"url": "x"}}) == {
        "train.epochs": 3,
        "train.rho": 0.9,
        "data.url": "x",
    }


def test_artifacts_of_a_local_store_live_beside_it(tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    experiment_id = tracking.use_experiment("charmt-test")
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert (
        location == (Path(mlflow_store.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    )


@pytest.fixture
def logged_run(trained, monkeypatch):
    """A training run logged the way the train stage does, from the session's tiny model."""
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    params = {"train": {"epochs": 25, "learning_rate": 0.005}, "data": {"num_samples": 900}}
    with tracking.start_run("charmt-test") as run:
        tracking.log_params(params)
        for row in trained.result.history:
            tracking.log_epoch(row)
        tracking.log_summary(trained.result.summary)
        tracking.log_trained_model(trained.translator, trained.model_dir)
    return run.info.run_id


def test_a_training_run_records_params_metrics_tags_and_models(logged_run, trained):
    run = mlflow.get_run(logged_run)
    assert run.data.params["train.learning_rate"] == "0.005"
    assert run.data.params["data.num_samples"] == "900"
    assert run.data.metrics["best_val_loss"] == pytest.approx(trained.result.best_val_loss)
    assert run.data.tags["dvc_experiment"] == "tiny-exp"
    assert len(run.data.tags["git_commit"]) == 40
    assert run.data.tags["git_dirty"] in ("true", "false")

    history = mlflow.MlflowClient().get_metric_history(logged_run, "val_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, 26))
    by_step = {m.step: m.value for m in history}
    assert by_step[1] == pytest.approx(trained.result.history[0]["val_loss"])

    names = {
        m.name
        for m in mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{logged_run}'",
            output_format="list",
        )
    }
    assert names == {"model", "translator"}


def test_logged_keras_model_predicts_like_the_trained_one(logged_run, trained):
    loaded = mlflow.keras.load_model(f"runs:/{logged_run}/model")
    vocabularies = trained.translator.vocabularies
    encoder_ids = np.array([vocabularies.source.encode("abcd")], dtype=np.int32)
    decoder_ids = np.array([[1, *vocabularies.target.encode("dcb")]], dtype=np.int32)
    np.testing.assert_allclose(
        loaded.predict([encoder_ids, decoder_ids], verbose=0),
        trained.translator.model.predict([encoder_ids, decoder_ids], verbose=0),
        rtol=1e-6,
    )
    signature = mlflow.models.get_model_info(f"runs:/{logged_run}/model").signature
    assert signature.inputs.input_names() == ["encoder_ids", "decoder_ids"]


def test_evaluation_with_other_params_logs_into_a_child_run():
    """Re-evaluating a model with other decoding params cannot change the training run's params
    (MLflow forbids it): it gets a child run; the same params reuse the training run."""
    with tracking.start_run("charmt-test") as run:
        tracking.log_params({"train": {"epochs": 3}})
    greedy = {"evaluate.beam_width": 1, "evaluate.length_alpha": 1.0}
    for _ in range(2):  # the same evaluation twice: the training run both times
        with tracking.evaluation_run("charmt-test", run.info.run_id, greedy) as evaluation:
            mlflow.log_params(greedy)
        assert evaluation.info.run_id == run.info.run_id
    beam = {"evaluate.beam_width": 5, "evaluate.length_alpha": 1.0}
    with tracking.evaluation_run("charmt-test", run.info.run_id, beam) as evaluation:
        mlflow.log_params(beam)
        mlflow.log_metric("exact_match", 0.5)
    child = mlflow.get_run(evaluation.info.run_id)
    assert child.info.run_id != run.info.run_id
    assert child.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert child.data.params["evaluate.beam_width"] == "5"
    assert mlflow.get_run(run.info.run_id).data.params["evaluate.beam_width"] == "1"


def test_an_unreachable_server_fails_at_once_naming_the_uri(monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    with pytest.raises(CharmtError, match="not reachable") as raised:
        tracking.check_reachable()
    message = str(raised.value)
    assert uri in message and "MLFLOW_TRACKING_URI" in message and "\n" not in message
    # The bounded settings apply to that check only: MLflow's own are back afterwards.
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == before


def test_a_wrong_uri_fails_naming_it(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "htp://typo:5000")
    with pytest.raises(CharmtError, match="htp://typo:5000"):
        tracking.check_reachable()


def test_the_local_store_is_reachable(mlflow_store):
    assert tracking.check_reachable() == mlflow_store
