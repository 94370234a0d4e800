"""MLflow tracking: where runs go, what a training run records, and the logged models."""

import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests

from charmt import tracking
from charmt.errors import CharmtError
from charmt.tracking import reach


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
    experiment_id = tracking.get_or_create_experiment("charmt-test")
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert (
        location == (Path(mlflow_store.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    )


@pytest.fixture
def logged_run(logged, monkeypatch):
    """The session's tiny model logged the way the train stage logs a run (conftest.logged),
    with its store as this test's: the run id."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged.store)
    mlflow.set_tracking_uri(logged.store)
    return logged.run_id


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


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(reach, "CREDENTIALS_FILE", tmp_path / "no-credentials")


def refused(status: int) -> mlflow.exceptions.MlflowException:
    """What MLflow's client raises for an HTTP error answer."""
    return mlflow.exceptions.MlflowException(
        f"API request to endpoint /api/2.0/mlflow/experiments/search failed with error code "
        f"{status} != 200. Response body: ''"
    )


def test_a_401_names_the_credentials_missing_or_refused(no_credentials, monkeypatch):
    uri = "https://mlflow.example.org"
    missing = reach.explain(refused(401), uri)
    assert "needs credentials" in missing and "MLFLOW_TRACKING_USERNAME" in missing
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bo")
    wrong = reach.explain(refused(401), uri)
    assert "refused the credentials" in wrong and "MLFLOW_TRACKING_PASSWORD" in wrong
    assert reach.explain(refused(500), uri) is None


def test_an_unverified_certificate_names_the_ca_variable():
    error = requests.exceptions.SSLError("certificate verify failed: unable to get local issuer")
    message = reach.explain(error, "https://mlflow.example.org")
    assert "certificate" in message and "MLFLOW_TRACKING_SERVER_CERT_PATH" in message


def test_a_writable_experiment_passes_the_probe_and_keeps_no_tag(mlflow_store):
    experiment_id = mlflow.MlflowClient().create_experiment("charmt")
    tracking.check_writable("charmt")
    tracking.check_writable("not-created-yet")  # the run creates it
    assert reach.PROBE_TAG not in mlflow.MlflowClient().get_experiment(experiment_id).tags


def test_changed_params_lists_each_dotted_key_old_to_new():
    committed = {"train": {"latent_dim": 256, "seed": 42}, "data": {"sha256": None}}
    current = {"train": {"latent_dim": 128, "seed": 42, "extra": True}, "data": {}}
    assert tracking.changed_params(committed, current) == [
        "data.sha256: null -> (removed)",
        "train.extra: (not in params.yaml) -> true",
        "train.latent_dim: 256 -> 128",
    ]
    assert tracking.changed_params(committed, committed) == []


def test_run_is_named_after_its_dvc_experiment_else_after_the_commit():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 29, 9, 41, 5, tzinfo=UTC)
    assert tracking.default_run_name({"dvc_experiment": "bally-shed", "git_commit": "a" * 40}) == (
        "bally-shed"
    )
    clean = {"git_commit": "75d9e13" + "0" * 33, "git_dirty": "false"}
    assert tracking.default_run_name(clean, now) == "repro-75d9e13-1129-094105"
    assert tracking.default_run_name({**clean, "git_dirty": "true"}, now) == (
        "repro-75d9e13-dirty-1129-094105"
    )
    assert tracking.default_run_name({}, now) == "repro-1129-094105"


def _git_repo_with_params(directory: Path, text: str) -> Path:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True)

    git("init", "-q")
    (directory / "params.yaml").write_text(text)
    git("add", "params.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "params")
    return directory / "params.yaml"


def test_description_says_which_params_differ_from_the_committed_file(tmp_path, monkeypatch):
    params = _git_repo_with_params(tmp_path, "train:\n  latent_dim: 256\n  epochs: 3\n")
    monkeypatch.chdir(tmp_path)
    tags = tracking.run_tags()
    assert tags["git_dirty"] == "false"
    assert "no params changed from the committed params.yaml" in tracking.run_description(
        params, tags
    )

    params.write_text("train:\n  latent_dim: 128\n  epochs: 3\n")
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    tags = tracking.run_tags()
    assert tags["git_dirty"] == "true"
    description = tracking.run_description(params, tags)
    assert description.startswith("DVC experiment tiny-exp: params changed from the committed")
    assert "- train.latent_dim: 256 -> 128" in description
    assert "epochs" not in description


def test_a_run_carries_its_name_description_and_tags(tmp_path, monkeypatch):
    params = _git_repo_with_params(tmp_path, "train:\n  latent_dim: 256\n")
    params.write_text("train:\n  latent_dim: 64\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "noble-yaks")
    with tracking.start_run("charmt-test", params_file=params) as run:
        pass
    logged = mlflow.get_run(run.info.run_id)
    assert logged.info.run_name == "noble-yaks"
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["dvc_experiment"] == "noble-yaks"
    assert "train.latent_dim: 256 -> 64" in logged.data.tags["mlflow.note.content"]
    experiment = mlflow.get_experiment(logged.info.experiment_id)
    assert experiment.name == "charmt-test"
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND


def test_runs_view_link_opens_the_runs_table(monkeypatch):
    assert tracking.runs_view_url("7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.0.0.5:8080/")
    assert tracking.runs_view_url("7").startswith("http://10.0.0.5:8080/#/experiments/7/runs?")


def test_datasets_show_the_data_url_and_a_digest_of_the_split(tmp_path):
    from charmt.data.pairs import Pair
    from charmt.data.prepared import write_pairs

    split = tmp_path / "train.tsv"
    other = tmp_path / "other" / "train.tsv"
    other.parent.mkdir()
    write_pairs(split, [Pair("go", "og"), Pair("hi", "ih")])
    write_pairs(other, [Pair("go", "og")])
    url = "https://example.org/fra-eng.zip"
    digests = []
    for path, pairs in ((split, [Pair("go", "og"), Pair("hi", "ih")]), (other, [Pair("go", "og")])):
        with tracking.start_run("charmt-test") as run:
            tracking.log_dataset(url, path, pairs, "training")
        (dataset_input,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        assert dataset_input.dataset.name == "train"
        assert url in dataset_input.dataset.source
        assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
        digests.append(dataset_input.dataset.digest)
    assert digests[0] == tracking.dataset_digest(split)
    assert digests[0] != digests[1]


PARALLEL_WRITER = """
import sys, time
from charmt import tracking
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
with tracking.start_run("charmt", run_name=sys.argv[2]):
    tracking.log_params({"train": {"n": sys.argv[2]}})
    for epoch in range(1, 6):
        tracking.log_epoch({"epoch": epoch, "val_loss": 1.0 / epoch})
"""


@pytest.mark.fresh_store
@pytest.mark.e2e
def test_parallel_first_runs_on_a_fresh_store_all_land_in_one_experiment(tmp_path, mlflow_store):
    """Four processes start together on a store that does not exist yet: the schema race and
    the experiment-creation race must both be harmless."""
    import subprocess
    import sys
    import time

    from commands import subprocess_env

    start = str(time.time() + 10)  # after every process has imported MLflow
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", PARALLEL_WRITER, start, f"w{i}"],
            env=subprocess_env(MLFLOW_TRACKING_URI=mlflow_store),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(4)
    ]
    for writer in writers:
        output, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0, output[-3000:]

    client = mlflow.MlflowClient(mlflow_store)
    experiments = client.search_experiments()
    assert sorted(e.name for e in experiments) == ["Default", "charmt"]
    charmt = client.get_experiment_by_name("charmt")
    runs = client.search_runs([charmt.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["w0", "w1", "w2", "w3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 5
