"""MLflow set-up in one place: where runs go, which experiment, which tags.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a server included), else a SQLite store in
the project root, ``sqlite:///<project>/mlflow.db``. The project root, not the working directory:
``dvc exp run --temp`` and queued experiments run in a temporary copy of the project, and a store
written there would be deleted with the copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.entities import RunStatus
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from charmt.atomic import write_json
from charmt.errors import CharmtError
from charmt.paths import project_root

if TYPE_CHECKING:
    from charmt.translator import Translator

DEFAULT_STORE = "mlflow.db"
# Beside a trained model: the MLflow run that trained it, so that evaluation logs into that run.
RUN_FILE = "mlflow_run.json"


def tracking_uri() -> str:
    """The tracking URI this project logs to."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / DEFAULT_STORE}"


def _artifact_location(uri: str) -> str | None:
    """For a local SQLite store, keep artifacts beside the database, not in the working dir."""
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "mlartifacts").as_uri()
    return None  # a server decides where its artifacts go


def configure() -> str:
    """Point MLflow at this project's store; the URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def use_experiment(name: str) -> str:
    """Point MLflow at this project's store and experiment ``name`` (created if new); its id."""
    uri = configure()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=_artifact_location(uri))


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_tags() -> dict[str, str]:
    """Where a run came from: git commit, whether the tree was dirty, the DVC experiment name."""
    tags: dict[str, str] = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        if status is not None:
            tags["git_dirty"] = str(bool(status)).lower()
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def start_run(experiment_name: str, run_name: str | None = None) -> mlflow.ActiveRun:
    """Open a new run in ``experiment_name`` with the provenance tags."""
    experiment_id = use_experiment(experiment_name)
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags())


def resume_run(experiment_name: str, run_id: str) -> mlflow.ActiveRun:
    """Reopen the run ``run_id`` (written by the train stage) to add to it."""
    use_experiment(experiment_name)
    try:
        return mlflow.start_run(run_id=run_id)
    except mlflow.exceptions.MlflowException as error:
        raise CharmtError(
            f"MLflow run {run_id} not found in {tracking_uri()} ({error}); was the model trained "
            "against another tracking store? Set MLFLOW_TRACKING_URI or re-run the train stage"
        ) from None


def reopen_interrupted_run(experiment_name: str, run_id: str) -> mlflow.ActiveRun | None:
    """Reopen the run of an interrupted training to continue it; None when the store lacks it.

    None also when the run belongs to another experiment: the caller then starts afresh.
    """
    experiment_id = use_experiment(experiment_name)
    try:
        found = mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if found.info.experiment_id != experiment_id or found.info.lifecycle_stage != "active":
        return None
    return mlflow.start_run(run_id=run_id)


@contextlib.contextmanager
def ending_killed_on_interrupt(run: mlflow.ActiveRun) -> Iterator[mlflow.ActiveRun]:
    """Use ``run`` as a context: FINISHED on success, KILLED on Ctrl-C or SIGTERM, else FAILED.

    Without this an interrupted run would end FAILED (MLflow's default for any exception), and a
    killed process leaves it RUNNING until it is resumed.
    """
    with run:
        try:
            yield run
        except KeyboardInterrupt:
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            raise


def log_missing_epochs(run_id: str, rows: Sequence[Mapping[str, float]]) -> None:
    """Log the history rows whose epoch the run has no ``loss`` for (a resumed run's catch-up).

    A checkpoint is written before its epoch is logged; a run killed in between is caught up here,
    so the run ends with every epoch exactly once.
    """
    logged = {m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")}
    for row in rows:
        if int(row["epoch"]) not in logged:
            log_epoch(row)


def evaluation_run(
    experiment_name: str, run_id: str, params: Mapping[str, Any]
) -> mlflow.ActiveRun:
    """The run an evaluation with ``params`` (dotted names) logs into: the training run ``run_id``
    when it holds no other values for them, else a new child run of it.

    MLflow refuses to change a logged param, and re-evaluating a trained model with other
    decoding params (``dvc exp run -S evaluate.beam_width=5``) re-runs only the evaluate stage.
    """
    use_experiment(experiment_name)
    try:
        logged = mlflow.get_run(run_id).data.params
    except mlflow.exceptions.MlflowException as error:
        raise CharmtError(
            f"MLflow run {run_id} not found in {tracking_uri()} ({error}); was the model trained "
            "against another tracking store? Set MLFLOW_TRACKING_URI or re-run the train stage"
        ) from None
    if all(logged.get(k, str(v)) == str(v) for k, v in params.items()):
        return resume_run(experiment_name, run_id)
    parent = mlflow.get_run(run_id)
    return mlflow.start_run(
        experiment_id=parent.info.experiment_id,
        run_name=f"{parent.info.run_name}-evaluation",
        tags={**run_tags(), "mlflow.parentRunId": run_id},
    )


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``: params.yaml's dotted names."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_epoch(row: Mapping[str, float]) -> None:
    """Log one epoch's history row (loss, val_loss, ...) at ``step=epoch``."""
    mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))


def log_trained_model(translator: Translator, directory: Path) -> None:
    """Log the Keras model (``model``) and the string-to-string pyfunc (``translator``).

    ``directory`` is the saved translator (``Translator.save``): the pyfunc is built from it.
    """
    import charmt
    from charmt import pyfunc

    # Any batch size and any length: the model takes right-padded id sequences.
    ids = np.dtype("int32")
    signature = ModelSignature(
        inputs=Schema(
            [TensorSpec(ids, (-1, -1), "encoder_ids"), TensorSpec(ids, (-1, -1), "decoder_ids")]
        ),
        outputs=Schema(
            [TensorSpec(np.dtype("float32"), (-1, -1, translator.vocabularies.target.size))]
        ),
    )
    # No input_example here: MLflow 3.17.2's Keras flavour writes the example before it creates
    # the model directory and fails. The translator pyfunc below carries one.
    mlflow.keras.log_model(translator.model, name="model", signature=signature)
    mlflow.pyfunc.log_model(
        name="translator",
        python_model=Path(pyfunc.__file__),
        artifacts={pyfunc.ARTIFACT: str(directory)},
        code_paths=[str(Path(charmt.__file__).parent)],
        # With params: the signature then accepts beam_width (see charmt.pyfunc).
        input_example=(["Go.", "I'm sorry."], {"beam_width": 1}),
    )


def log_params(sections: Mapping[str, Any]) -> None:
    """Log params.yaml sections once, with their dotted names (``train.learning_rate``)."""
    mlflow.log_params(flatten(sections))


def log_summary(figures: Mapping[str, Any], prefix: str = "") -> None:
    """Log the numeric figures of a summary (nested ones with dotted names) as metrics."""
    mlflow.log_metrics(
        {
            f"{prefix}{name}": float(value)
            for name, value in flatten(figures).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
    )


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
