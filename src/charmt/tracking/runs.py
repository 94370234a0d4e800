"""A run's lifecycle: opened with its provenance, reopened, ended by id, and found again.

Runs are ended by id (``MlflowClient.set_terminated``) inside the locked, retried write, never by
``mlflow.end_run`` alone: that forgets the active run before it writes the status, so a retry
after a failed write would end nothing and leave the run RUNNING.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus

from charmt.errors import CharmtError
from charmt.io.atomic import write_json
from charmt.tracking.location import tracking_uri
from charmt.tracking.lock import write
from charmt.tracking.provenance import DESCRIPTION_TAG, default_run_name, run_description, run_tags
from charmt.tracking.reach import CHECK_TIMEOUT_S, http_retries
from charmt.tracking.store import get_or_create_experiment

# Beside a trained model: the MLflow run that trained it, so that evaluation logs into that run.
RUN_FILE = "mlflow_run.json"
FINISHED = RunStatus.to_string(RunStatus.FINISHED)
FAILED = RunStatus.to_string(RunStatus.FAILED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
# On a training run that an evaluation logged into: how that evaluation ended, and why.
EVALUATION_STATUS_TAG = "evaluation.status"
EVALUATION_ERROR_TAG = "evaluation.error"


def status_for(exc_type: type[BaseException] | None) -> str:
    """FINISHED without an exception, KILLED for Ctrl-C or SIGTERM, FAILED otherwise."""
    if exc_type is None:
        return FINISHED
    return KILLED if issubclass(exc_type, KeyboardInterrupt) else FAILED


def end_run(run_id: str, status: str = FINISHED) -> None:
    """End run ``run_id`` as ``status`` (a locked, retried write), then let go of it locally."""
    write(mlflow.MlflowClient().set_terminated, run_id, status)
    _let_go(run_id, status)


def _let_go(run_id: str, status: str) -> None:
    """Take ``run_id`` off MLflow's stack of active runs (its status is written already)."""
    _stop_system_metrics(run_id)
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        # end_run writes the status once more (the same one) and stops system metrics; a store
        # that has gone away since costs seconds here, not minutes.
        with http_retries(0, CHECK_TIMEOUT_S), contextlib.suppress(Exception):
            mlflow.end_run(status)


def _stop_system_metrics(run_id: str) -> None:
    """Stop the run's system-metrics sampler, waiting seconds at most.

    ``mlflow.end_run`` would join the sampler's thread without a timeout, and against a server
    that has gone away the sampler's pending ``get_run`` retries for minutes (MLflow's defaults):
    taken off MLflow's table, the sampler is finished (flushed) in a daemon thread instead, which a
    dead server leaves behind until the process exits.
    """
    monitors = getattr(mlflow.tracking.fluent, "run_id_to_system_metrics_monitor", {})
    monitor = monitors.pop(run_id, None)
    if monitor is not None:
        stopping = threading.Thread(target=monitor.finish, daemon=True, name="StopSystemMetrics")
        stopping.start()
        stopping.join(CHECK_TIMEOUT_S)


def abandon_run(run_id: str, status: str = FAILED) -> None:
    """End run ``run_id`` as ``status``, giving up within seconds when the store is unreachable."""
    with http_retries(0, CHECK_TIMEOUT_S), contextlib.suppress(Exception):
        mlflow.MlflowClient().set_terminated(run_id, status)
    _let_go(run_id, status)


class _Run(mlflow.ActiveRun):
    """``mlflow.ActiveRun`` whose end (on leaving ``with``) is :func:`end_run`."""

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        end_run(self.info.run_id, status_for(exc_type))
        return exc_type is None


class _EvaluationInTrainingRun(mlflow.ActiveRun):
    """An evaluation logging into the training run: the run's status stays the training's, and
    the evaluation's own outcome goes into tags (``evaluation.status``, ``evaluation.error``)."""

    def __init__(self, run: mlflow.ActiveRun, training_status: str) -> None:
        super().__init__(run)
        self.training_status = training_status

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        run_id = self.info.run_id
        status = status_for(exc_type)
        client = mlflow.MlflowClient()
        try:
            write(client.set_tag, run_id, EVALUATION_STATUS_TAG, status)
            error = " ".join(str(exc_val).split())[:500] if exc_val is not None else ""
            write(client.set_tag, run_id, EVALUATION_ERROR_TAG, error or "-")
        finally:
            end_run(run_id, self.training_status)
        return exc_type is None


def system_metrics_logging(wanted: bool | None) -> bool | None:
    """What to pass as ``mlflow.start_run(log_system_metrics=...)``: ``wanted`` (None: MLflow's
    default, the environment), but False without psutil, which MLflow samples with: a missing
    optional package skips the figures instead of logging an error with every run.

    MLflow samples every 10 s (``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``) and logs each sample
    as a step of ``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes``
    and the like; ``mlflow.end_run`` stops it.
    """
    if wanted and importlib.util.find_spec("psutil") is None:
        return False
    return wanted


def start_run(
    experiment_name: str,
    run_name: str | None = None,
    params_file: str | os.PathLike[str] | None = None,
    system_metrics: bool | None = None,
) -> mlflow.ActiveRun:
    """Open a new run in ``experiment_name`` with the provenance tags.

    The run is named ``run_name``, else after its DVC experiment, else ``repro-<commit>...``.
    With ``params_file``, its description lists the params that differ from the committed file.
    Tags: ``git_commit``, ``git_dirty``, ``dvc_experiment`` (when run by ``dvc exp run``).
    ``system_metrics``: sample CPU, memory (and GPU) into the run while it is open
    (:func:`system_metrics_logging`).
    """
    experiment_id = get_or_create_experiment(experiment_name)
    tags = run_tags()
    name = run_name or default_run_name(tags)
    all_tags = dict(tags)
    if params_file is not None:
        all_tags[DESCRIPTION_TAG] = run_description(params_file, tags)
    run = write(
        mlflow.start_run,
        experiment_id=experiment_id,
        run_name=name,
        tags=all_tags,
        log_system_metrics=system_metrics_logging(system_metrics),
    )
    return _Run(run)


def _get_run(run_id: str) -> mlflow.entities.Run:
    try:
        return mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise CharmtError(
            f"MLflow run {run_id} not found in {tracking_uri()} ({error}); was the model trained "
            "against another tracking store? Set MLFLOW_TRACKING_URI or re-run the train stage"
        ) from None


def resume_run(experiment_name: str, run_id: str) -> mlflow.ActiveRun:
    """Reopen the run ``run_id`` (written by the train stage) to add to it."""
    get_or_create_experiment(experiment_name)
    _get_run(run_id)
    return _Run(write(mlflow.start_run, run_id=run_id))


def reopen_interrupted_run(
    experiment_name: str, run_id: str, system_metrics: bool | None = None
) -> mlflow.ActiveRun | None:
    """Reopen the run of an interrupted training to continue it; None when the store lacks it.

    None also when the run belongs to another experiment: the caller then starts afresh.
    ``system_metrics`` as for :func:`start_run`; their steps carry on after the logged ones.
    """
    experiment_id = get_or_create_experiment(experiment_name)
    try:
        found = mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if found.info.experiment_id != experiment_id or found.info.lifecycle_stage != "active":
        return None
    logging = system_metrics_logging(system_metrics)
    return _Run(write(mlflow.start_run, run_id=run_id, log_system_metrics=logging))


def evaluation_run(
    experiment_name: str, run_id: str, params: Mapping[str, Any]
) -> mlflow.ActiveRun:
    """The run an evaluation with ``params`` (dotted names) logs into: the training run ``run_id``
    when it holds no other values for them, else a new child run of it.

    MLflow refuses to change a logged param, and re-evaluating a trained model with other
    decoding params (``dvc exp run -S evaluate.beam_width=5``) re-runs only the evaluate stage.

    In the training run, the evaluation never changes the run's status, which says how training
    ended: a failed or interrupted evaluation is recorded in the tags ``evaluation.status``
    (FINISHED, FAILED or KILLED) and ``evaluation.error``, and the next evaluation overwrites
    them. A child run ends with the evaluation's own status.
    """
    get_or_create_experiment(experiment_name)
    parent = _get_run(run_id)
    logged = parent.data.params
    if all(logged.get(k, str(v)) == str(v) for k, v in params.items()):
        run = write(mlflow.start_run, run_id=run_id)
        return _EvaluationInTrainingRun(run, parent.info.status)
    run = write(
        mlflow.start_run,
        experiment_id=parent.info.experiment_id,
        run_name=f"{parent.info.run_name}-evaluation",
        tags={**run_tags(), "mlflow.parentRunId": run_id},
    )
    return _Run(run)


def write_run_id(model_dir: Path, run_id: str) -> None:
    """Record the run that trained the model in ``model_dir``."""
    write_json(Path(model_dir) / RUN_FILE, {"run_id": run_id})


def read_run_id(model_dir: str | os.PathLike[str]) -> str:
    """The run that trained the model in ``model_dir``."""
    path = Path(model_dir) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))["run_id"]
    except (OSError, ValueError, KeyError) as error:
        raise CharmtError(f"{path}: no MLflow run id ({error}); re-run the train stage") from None
