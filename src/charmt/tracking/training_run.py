"""The MLflow run of one training: resumed after an interrupt, and surviving a lost server.

Epochs are logged as they end; if the store goes away, training carries on without them, and the
run is completed later from the files the train stage wrote (``charmt log-training``,
``charmt.serving.publish.log_saved_training``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow

from charmt.errors import CharmtError
from charmt.tracking.location import tracking_uri
from charmt.tracking.lock import write
from charmt.tracking.logged import log_epoch, log_params, log_summary, ready_models
from charmt.tracking.reach import (
    TRAINING_RETRIES,
    TRAINING_TIMEOUT_S,
    check_reachable,
    http_retries,
    reason,
)
from charmt.tracking.runs import (
    FINISHED,
    abandon_run,
    end_run,
    reopen_interrupted_run,
    start_run,
    status_for,
)
from charmt.tracking.store import configure

log = logging.getLogger(__name__)
# Logs a training's models into the active run, except those named (logged already): built by
# charmt.serving.publish, which knows what a trained translator logs; tracking only calls it.
LogModels = Callable[[Collection[str]], None]


def recovery_command(model_dir: Path, history: Path, summary: Path) -> str:
    """The commands that log a saved training once the store is back, then let DVC record the
    train stage's outputs without training again."""
    return (
        f"charmt log-training --model {model_dir} --history {history} --metrics {summary}"
        " && dvc commit -f train"
    )


class TrainingRun:
    """The MLflow run of one training, opened by :func:`training_run`.

    Epochs are logged as they end; if the store goes away, training carries on without them and
    :meth:`finish` reports it after the model is saved, so no training is lost.
    """

    def __init__(self, run: mlflow.ActiveRun, resumed: bool = False) -> None:
        self.run_id = run.info.run_id
        self.run_name = run.info.run_name
        self.experiment_id = run.info.experiment_id
        # Reopened to continue an interrupted training: its params are logged already.
        self.resumed = resumed
        self.logging_failed: str | None = None

    def log_setup(self, sections: Mapping[str, Any], data_statistics: Mapping[str, Any]) -> None:
        """Log the params.yaml sections and the data statistics (``data.*``) at the start."""
        with http_retries(TRAINING_RETRIES, TRAINING_TIMEOUT_S):
            log_params(sections)
            log_summary(data_statistics, prefix="data.")

    def log_epoch(self, row: Mapping[str, float]) -> None:
        """Log one epoch's history row; after a failure, warn once and stop trying."""
        if self.logging_failed:
            return
        try:
            with http_retries(TRAINING_RETRIES, TRAINING_TIMEOUT_S):
                log_epoch(row)
        except Exception as error:  # the server went away: the training must go on
            self.logging_failed = reason(error)
            log.warning(
                "MLflow logging failed at epoch %s (%s); training continues, the model will be "
                "saved, and the stage will fail at the end",
                row.get("epoch"),
                self.logging_failed,
            )

    def finish(
        self,
        log_models: LogModels,
        model_dir: Path,
        history: Sequence[Mapping[str, float]],
        summary: Mapping[str, Any],
        recovery: str,
    ) -> None:
        """Log what the run still lacks (epochs, summary, the models ``log_models`` logs) and end
        it FINISHED.

        ``model_dir`` is where the trained model is saved and ``recovery`` the command that logs
        the result later, both named in the error raised when the store cannot be reached now.
        """
        try:
            check_reachable()
        except CharmtError as error:
            raise CharmtError(
                f"the trained model is saved in {model_dir}, but it is not logged: {error}. "
                f"Once the store is back, run: {recovery}"
            ) from None
        try:
            complete_run(self.run_id, log_models, history, summary)
        except CharmtError:
            raise
        except Exception as error:
            raise CharmtError(
                f"the trained model is saved in {model_dir}, but logging it to "
                f"{tracking_uri()} failed ({reason(error)}); once the store is back, run: "
                f"{recovery}"
            ) from None


@contextlib.contextmanager
def training_run(
    experiment_name: str,
    resume_run_id: str | None = None,
    params_file: str | os.PathLike[str] | None = None,
    system_metrics: bool = False,
) -> Iterator[TrainingRun]:
    """Open a run for a training (provenance tags included) with bounded retries; with
    ``resume_run_id`` (from an interrupted training's checkpoint) reopen that run instead, when
    the store still has it in this experiment (``TrainingRun.resumed`` says whether it did). A new
    run is named and described as :func:`start_run` does, from ``params_file``. With
    ``system_metrics``, MLflow samples CPU and memory into the run (new or reopened) while open.

    The run stays open after the block: :meth:`TrainingRun.finish` ends it. When the block is
    interrupted (Ctrl-C, SIGTERM) the run ends KILLED, when it fails FAILED; either gives up
    within seconds when the store does not answer (MLflow would otherwise retry for minutes, even
    at exit), and a run left RUNNING by a hard kill is reopened by the next training.
    """
    with http_retries(TRAINING_RETRIES, TRAINING_TIMEOUT_S):
        run = None
        if resume_run_id:
            run = reopen_interrupted_run(experiment_name, resume_run_id, system_metrics)
        resumed = run is not None
        if run is None:
            run = start_run(experiment_name, params_file=params_file, system_metrics=system_metrics)
    try:
        yield TrainingRun(run, resumed)
    except BaseException as error:
        abandon_run(run.info.run_id, status_for(type(error)))
        raise


def complete_run(
    run_id: str,
    log_models: LogModels,
    history: Sequence[Mapping[str, float]],
    summary: Mapping[str, Any],
) -> None:
    """Log what the training run ``run_id`` lacks, then end it FINISHED.

    Safe to repeat: epochs already in the run's ``loss`` history and models already logged
    (READY) are skipped, so it completes a run that lost its server half-way.
    """
    configure()
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    logged_steps = {m.step for m in client.get_metric_history(run_id, "loss")}
    active = mlflow.active_run()
    if active is None or active.info.run_id != run_id:
        write(mlflow.start_run, run_id=run_id)
    for row in history:
        if int(row["epoch"]) not in logged_steps:
            log_epoch(row)
    log_summary(summary)
    log_models({model.name for model in ready_models(run)})
    end_run(run_id, FINISHED)
