"""Registering a training run's logged translator as a version of a registered model.

Only the string-to-string translator (``charmt.serving.pyfunc``, logged as ``TRANSLATOR_MODEL``)
is registered; the champion policy over the versions is ``charmt.pipeline.promotion``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion

from charmt.errors import CharmtError
from charmt.tracking.lock import write
from charmt.tracking.logged import TRANSLATOR_MODEL, ready_models

# The logged model that is registered: strings in, strings out (charmt.serving.pyfunc).
LOGGED_MODEL = TRANSLATOR_MODEL
# Provenance copied from the training run's tags onto the version.
PROVENANCE_TAGS = ("git_commit", "git_dirty", "dvc_experiment")


def _logged_translator_uri(run: mlflow.entities.Run) -> str:
    """The run's completely logged translator (newest first); never a half-logged one."""
    models = ready_models(run, LOGGED_MODEL)
    if not models:
        raise CharmtError(
            f"MLflow run {run.info.run_id} has no completely logged {LOGGED_MODEL!r} model (none "
            "is READY); if its training lost the tracking server or was interrupted while "
            "logging, run `charmt log-training` first"
        )
    return f"models:/{models[0].model_id}"


def register_version(run_id: str, name: str, evaluation: Mapping[str, Any]) -> ModelVersion:
    """The version of ``name`` holding run ``run_id``'s translator, registered if it is new.

    Tagged with the evaluation metrics and the training's git commit and DVC experiment. A run
    evaluated again (say, with another evaluate.batch_size) keeps its one version.
    """
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    tags = {key: str(value) for key, value in evaluation.items()}
    tags.update({key: run.data.tags[key] for key in PROVENANCE_TAGS if key in run.data.tags})
    existing = client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'")
    if existing:
        version = existing[0]
        for key, value in tags.items():
            write(client.set_model_version_tag, name, version.version, key, value)
        return client.get_model_version(name, version.version)
    return write(mlflow.register_model, _logged_translator_uri(run), name, tags=tags)
