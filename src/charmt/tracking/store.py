"""The store's set-up: created once, the experiment created once, and links to the UI."""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from charmt.tracking.location import sqlite_database, tracking_uri
from charmt.tracking.lock import store_lock

# What `mlflow ui` / `mlflow server` listen on by default, for links to a local store.
DEFAULT_UI = "http://127.0.0.1:5000"
# Experiment tag some MLflow UIs read to open on the runs; 3.17 reads the URL (runs_view_url).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def _artifact_location(uri: str) -> str | None:
    """For a local SQLite store, keep artifacts beside the database, not in the working dir."""
    database = sqlite_database(uri)
    return (database.parent / "mlartifacts").as_uri() if database is not None else None


def configure() -> str:
    """Point MLflow at this project's store, creating or upgrading it once; the URI.

    A SQLite store is created under the store lock, so parallel first runs cannot both create
    its tables. MLflow creates them when a client first opens the store.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if sqlite_database(uri) is not None:
        with store_lock(uri):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    return uri


def get_or_create_experiment(name: str) -> str:
    """The id of experiment ``name`` in this project's store, created if new.

    Safe when several processes ask at once: on a SQLite store under the store lock, and
    against a server by taking the winner's experiment when creation reports it exists. Never
    relies on ``mlflow.set_experiment``, which leaves a loser without an active experiment.
    """
    uri = configure()
    client = mlflow.MlflowClient(uri)
    with store_lock(uri):
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(
                    name,
                    artifact_location=_artifact_location(uri),
                    # Read by some MLflow UIs to open on the runs, not on GenAI traces.
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                )
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        elif EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
    return experiment.experiment_id


def runs_view_url(experiment_id: str, ui: str | None = None) -> str:
    """A link that opens the experiment's runs table in the MLflow UI.

    MLflow 3.17's UI picks between its GenAI overview and the runs table from the URL's
    ``workflowType`` query, else the browser's saved choice, else GenAI; so the link names the
    runs tab and ``workflowType=machine_learning``. ``ui`` defaults to the tracking server when
    MLFLOW_TRACKING_URI is one, else to where ``mlflow ui`` listens by default.
    """
    if ui is None:
        uri = tracking_uri()
        ui = uri if uri.startswith(("http://", "https://")) else DEFAULT_UI
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
