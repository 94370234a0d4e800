"""The MLflow ``translator`` model: its signature, its pinned requirements, loaded in a fresh
process and by ``charmt translate``. Served over HTTP: tests/serving/test_serving.py."""

import importlib.metadata
import subprocess
from pathlib import Path

import mlflow
import pytest
from commands import predict_in_fresh_process, subprocess_env


@pytest.fixture
def translator_uri(logged):
    """The session's translator pyfunc (conftest.logged); (uri, tracking uri)."""
    return logged.translator_uri, logged.store


def test_signature_is_strings_to_strings(translator_uri, monkeypatch):
    uri, store = translator_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.to_dict() == [{"type": "string", "required": True}]
    assert info.signature.outputs.to_dict() == [{"type": "string", "required": True}]
    assert info.saved_input_example_info is not None


def test_both_models_pin_tensorflow_keras_and_mlflow_at_the_installed_versions(translator_uri):
    """Their requirements are given, not inferred: what a fresh environment must install to load
    them (charmt's own code travels in the model), pinned to what trained them."""
    uri, store = translator_uri
    mlflow.set_tracking_uri(store)
    tensorflow = next(name for name in ("tensorflow", "tensorflow-cpu") if _installed(name))
    expected = {
        f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "keras", tensorflow)
    }
    for model in (uri, uri.replace("/translator", "/model")):
        path = mlflow.artifacts.download_artifacts(f"{model}/requirements.txt")
        requirements = set(Path(path).read_text().split())
        assert expected <= requirements, (model, requirements)
        assert not any(line.startswith("charmt") for line in requirements)


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.e2e
def test_loads_and_predicts_in_a_fresh_process(translator_uri, trained):
    uri, store = translator_uri
    sources = [p.source for p in trained.held_out[:5]]
    from_list, from_frame = predict_in_fresh_process(
        uri,
        store,
        [{"sources": sources, "frame": frame, "params": None} for frame in (False, True)],
    )
    expected = trained.translator.translate(sources)
    assert from_list == expected
    assert from_frame == expected


@pytest.mark.e2e
def test_cli_translates_with_an_mlflow_model_uri(translator_uri, trained):
    uri, store = translator_uri
    sources = [p.source for p in trained.held_out[:5]]
    done = subprocess.run(
        ["charmt", "translate", "--model", uri, "--batch-size", "2"],
        input="\n".join(sources) + "\n",
        capture_output=True,
        text=True,
        env=subprocess_env(MLFLOW_TRACKING_URI=store),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == trained.translator.translate(sources)
