"""MLflow set-up in one place: where runs go, which experiment, which tags.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a server included), else a SQLite store in
the project root, ``sqlite:///<project>/mlflow.db``. The project root, not the working directory:
``dvc exp run --temp`` and queued experiments run in a temporary copy of the project, and a store
written there would be deleted with the copy.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import subprocess
from collections.abc import Collection, Iterator, Mapping, Sequence
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

log = logging.getLogger(__name__)

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


def log_trained_model(translator: Translator, directory: Path, skip: Collection[str] = ()) -> None:
    """Log the Keras model (``model``) and the string-to-string pyfunc (``translator``), except
    those named in ``skip`` (already logged).

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
    if "model" not in skip:
        mlflow.keras.log_model(translator.model, name="model", signature=signature)
    if "translator" in skip:
        return
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


# --- Reaching the store, and a training run that survives the server going away ----------------
#
# MLflow's HTTP client retries a failed request 7 times with exponential backoff and waits up to
# 120 s per attempt: against a stopped server one call takes ~250 s. These settings bound that.

# Checking reachability: one retry, 5 s per attempt, so a stage fails in seconds. A refused
# connection or an unknown host fails at once; the timeout only bounds a server that hangs.
CHECK_RETRIES, CHECK_TIMEOUT_S = 1, 5
# Logging during training: a short hiccup is retried, a dead server costs seconds, not minutes.
TRAINING_RETRIES, TRAINING_TIMEOUT_S = 2, 10


def recovery_command(model_dir: Path, history: Path, summary: Path) -> str:
    """The commands that log a saved training once the store is back, then let DVC record the
    train stage's outputs without training again."""
    return (
        f"charmt log-training --model {model_dir} --history {history} --metrics {summary}"
        " && dvc commit -f train"
    )


@contextlib.contextmanager
def http_retries(max_retries: int, timeout_s: int, backoff_factor: int = 1) -> Iterator[None]:
    """MLflow's HTTP retry settings for the calls made inside; the previous ones after."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(backoff_factor),
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # read by MLflow at each request
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reason(error: BaseException) -> str:
    """The gist of a client error, on one line (MLflow's messages run to many lines)."""
    text = " ".join(str(error).split())
    for gist in ("Connection refused", "Name or service not known", "timed out", "Max retries"):
        if gist in text:
            return gist.lower()
    return text[:300]


def check_reachable(uri: str | None = None) -> str:
    """The tracking URI, after one short request to its store; a ``CharmtError`` within seconds
    (one line naming the URI and what to do) when the store cannot be reached or the URI is wrong.
    """
    uri = uri or tracking_uri()
    try:
        with http_retries(CHECK_RETRIES, CHECK_TIMEOUT_S):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # any failure means the stage cannot log; say so, briefly
        raise CharmtError(
            f"MLflow tracking store {uri} is not reachable ({_reason(error)}); start the "
            "tracking server or fix MLFLOW_TRACKING_URI (unset it to log to the local "
            f"sqlite:///{project_root() / DEFAULT_STORE})"
        ) from None
    return uri


class TrainingRun:
    """The MLflow run of one training, opened by :func:`training_run`.

    Epochs are logged as they end; if the store goes away, training carries on without them and
    :meth:`finish` reports it after the model is saved, so no training is lost.
    """

    def __init__(self, run_id: str, resumed: bool = False) -> None:
        self.run_id = run_id
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
            self.logging_failed = _reason(error)
            log.warning(
                "MLflow logging failed at epoch %s (%s); training continues, the model will be "
                "saved, and the stage will fail at the end",
                row.get("epoch"),
                self.logging_failed,
            )

    def finish(
        self,
        translator: Translator,
        model_dir: Path,
        history: Sequence[Mapping[str, float]],
        summary: Mapping[str, Any],
        recovery: str,
    ) -> None:
        """Log what the run still lacks (epochs, summary, both models) and end it FINISHED.

        ``recovery`` is the command that logs the result later, named in the error raised when
        the store cannot be reached now.
        """
        try:
            check_reachable()
        except CharmtError as error:
            raise CharmtError(
                f"the trained model is saved in {model_dir}, but it is not logged: {error}. "
                f"Once the store is back, run: {recovery}"
            ) from None
        try:
            complete_run(self.run_id, translator, model_dir, history, summary)
        except CharmtError:
            raise
        except Exception as error:
            raise CharmtError(
                f"the trained model is saved in {model_dir}, but logging it to "
                f"{tracking_uri()} failed ({_reason(error)}); once the store is back, run: "
                f"{recovery}"
            ) from None


@contextlib.contextmanager
def training_run(
    experiment_name: str, resume_run_id: str | None = None, run_name: str | None = None
) -> Iterator[TrainingRun]:
    """Open a run for a training (provenance tags included) with bounded retries; with
    ``resume_run_id`` (from an interrupted training's checkpoint) reopen that run instead, when
    the store still has it in this experiment (``TrainingRun.resumed`` says whether it did).

    The run stays open after the block: :meth:`TrainingRun.finish` ends it. When the block is
    interrupted (Ctrl-C, SIGTERM) the run ends KILLED, when it fails FAILED; either gives up
    within seconds when the store does not answer (MLflow would otherwise retry for minutes, even
    at exit), and a run left RUNNING by a hard kill is reopened by the next training.
    """
    with http_retries(TRAINING_RETRIES, TRAINING_TIMEOUT_S):
        run = reopen_interrupted_run(experiment_name, resume_run_id) if resume_run_id else None
        resumed = run is not None
        if run is None:
            run = start_run(experiment_name, run_name)
    try:
        yield TrainingRun(run.info.run_id, resumed)
    except KeyboardInterrupt:
        abandon_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        abandon_run()
        raise


def abandon_run(status: str = "FAILED") -> None:
    """End the active run as ``status``, giving up within seconds when the store is unreachable."""
    with http_retries(0, CHECK_TIMEOUT_S), contextlib.suppress(Exception):
        mlflow.end_run(status)  # pops the run locally before it calls the store


def _logged_models(run: mlflow.entities.Run) -> set[str]:
    """Names of the models logged, completely, by ``run``."""
    from mlflow.entities import LoggedModelStatus

    return {
        model.name
        for model in mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
            output_format="list",
        )
        if model.status == LoggedModelStatus.READY
    }


def complete_run(
    run_id: str,
    translator: Translator,
    model_dir: Path,
    history: Sequence[Mapping[str, float]],
    summary: Mapping[str, Any],
) -> None:
    """Log what the training run ``run_id`` lacks, then end it FINISHED.

    Safe to repeat: epochs already in the run's ``loss`` history and models already logged are
    skipped, so it completes a run that lost its server half-way.
    """
    configure()
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    logged_steps = {m.step for m in client.get_metric_history(run_id, "loss")}
    active = mlflow.active_run()
    if active is None or active.info.run_id != run_id:
        mlflow.start_run(run_id=run_id)
    for row in history:
        if int(row["epoch"]) not in logged_steps:
            log_epoch(row)
    log_summary(summary)
    log_trained_model(translator, model_dir, skip=_logged_models(run))
    mlflow.end_run("FINISHED")


def log_saved_training(model_dir: Path, history: Path, summary: Path) -> str:
    """Complete the MLflow run of the training saved in ``model_dir`` from the files the train
    stage wrote (``complete_run``); the run id. For a training whose server went away."""
    from charmt.translator import Translator

    check_reachable()
    run_id = read_run_id(model_dir)
    try:
        with open(history, newline="", encoding="utf-8") as file:
            rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file)]
        figures = json.loads(Path(summary).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CharmtError(f"cannot read the saved training ({error}); re-run train") from None
    complete_run(run_id, Translator.load(model_dir), Path(model_dir), rows, figures)
    return run_id
