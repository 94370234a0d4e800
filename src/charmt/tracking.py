"""MLflow set-up in one place: where runs go, which experiment, which tags.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a server included), else a SQLite store in
the project root, ``sqlite:///<project>/mlflow.db``. The project root, not the working directory:
``dvc exp run --temp`` and queued experiments run in a temporary copy of the project, and a store
written there would be deleted with the copy.

Several processes may write one SQLite store at once (``dvc queue start -j 2``). MLflow 3.17
creates a fresh store's tables without a lock ("duplicate column" when two first runs race), lets
the loser of two experiment creations fail with RESOURCE_ALREADY_EXISTS, and turns SQLite's
"database is locked" into TEMPORARILY_UNAVAILABLE. So, for a SQLite store, every write this module
makes holds a file lock beside the database (``mlflow.db.lock``): the schema is created once, the
experiment once, and writers never contend inside SQLite. Writes are also retried on
TEMPORARILY_UNAVAILABLE, for contention from processes that do not take the lock (a UI, a script).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import filelock
import mlflow
import numpy as np
import yaml
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from charmt.atomic import write_json
from charmt.errors import CharmtError
from charmt.paths import project_root, resolve_local

if TYPE_CHECKING:
    from charmt.data import Pair
    from charmt.translator import Translator

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"
# Beside a trained model: the MLflow run that trained it, so that evaluation logs into that run.
RUN_FILE = "mlflow_run.json"
# What `mlflow ui` / `mlflow server` listen on by default, for links to a local store.
DEFAULT_UI = "http://127.0.0.1:5000"
# Experiment tag some MLflow UIs read to open on the runs; 3.17 reads the URL (runs_view_url).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# How long a writer waits for the store's file lock before giving up with a clear error. Writes
# are short (a training's heaviest is logging its two models, seconds), so this is generous.
LOCK_TIMEOUT_S = 600.0
# A wait for the lock this long is reported on stderr.
LOCK_NOTICE_S = 5.0
# Retries of a write that MLflow reports as TEMPORARILY_UNAVAILABLE ("database is locked").
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15, 30)

T = TypeVar("T")


def tracking_uri() -> str:
    """The tracking URI this project logs to."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / DEFAULT_STORE}"


def _artifact_location(uri: str) -> str | None:
    """For a local SQLite store, keep artifacts beside the database, not in the working dir."""
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "mlartifacts").as_uri()
    return None  # a server decides where its artifacts go


def _sqlite_database(uri: str) -> Path | None:
    """The database file of a local SQLite store; None for any other store."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve()
    return None


_LOCKS: dict[Path, filelock.FileLock] = {}


@contextlib.contextmanager
def store_lock(uri: str | None = None) -> Iterator[None]:
    """Hold the store's write lock: a file lock beside a SQLite database; nothing otherwise.

    Re-entrant within a process. Every process that writes the store through this module takes
    it, so parallel experiments write one at a time instead of failing inside SQLite.
    """
    database = _sqlite_database(uri or tracking_uri())
    if database is None:
        yield
        return
    path = database.with_name(database.name + ".lock")
    lock = _LOCKS.get(path)
    if lock is None:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock = _LOCKS[path] = filelock.FileLock(path, timeout=LOCK_TIMEOUT_S)
    waited = time.monotonic()
    try:
        with lock:
            waited = time.monotonic() - waited
            if waited >= LOCK_NOTICE_S:
                # Another experiment was logging (its models, most likely): say why we paused.
                print(f"waited {waited:.0f} s for the MLflow store's lock {path}", file=sys.stderr)
            yield
    except filelock.Timeout:
        raise CharmtError(
            f"{path}: another process held the MLflow store's lock for {LOCK_TIMEOUT_S:.0f} s; "
            "is a stuck training still running? Stop it, or delete the lock file if none is"
        ) from None


def _is_temporary(error: MlflowException) -> bool:
    return error.error_code == "TEMPORARILY_UNAVAILABLE"


def write(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one MLflow write under the store lock, retried while the store is temporarily busy.

    Use it for single writes that change nothing when they fail (MLflow rolls back the
    database session), so a retry cannot log anything twice.
    """
    for delay in (*RETRY_DELAYS_S, None):
        try:
            with store_lock():
                return action(*args, **kwargs)
        except MlflowException as error:
            if delay is None or not _is_temporary(error):
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def configure() -> str:
    """Point MLflow at this project's store, creating or upgrading it once; the URI.

    A SQLite store is created under the store lock, so parallel first runs cannot both create
    its tables. MLflow creates them when a client first opens the store.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if _sqlite_database(uri) is not None:
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
                experiment_id = client.create_experiment(
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
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND_TAG not in experiment.tags:
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment_id


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


def _git(*args: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd if cwd is not None else os.getcwd(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_tags() -> dict[str, str]:
    """Where a run came from: git commit, whether the tree was dirty, the DVC experiment name.

    Git is asked in the working directory: in a DVC experiment's temporary copy that is the
    copy's own checkout of the experiment's baseline commit.
    """
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


def default_run_name(tags: Mapping[str, str], now: datetime | None = None) -> str:
    """The DVC experiment's name under ``dvc exp run``; else ``repro-<commit>[-dirty]-<time>``."""
    if tags.get("dvc_experiment"):
        return tags["dvc_experiment"]
    stamp = (now or datetime.now(UTC)).strftime("%m%d-%H%M%S")
    commit = tags.get("git_commit")
    if not commit:
        return f"repro-{stamp}"
    dirty = "-dirty" if tags.get("git_dirty") == "true" else ""
    return f"repro-{commit[:7]}{dirty}-{stamp}"


def _show(value: Any) -> str:
    """A param value as params.yaml writes it (``null``, ``true``, ``0.001``, ``text``)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def changed_params(committed: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``train.latent_dim: 256 -> 128`` for each dotted key whose value differs (or is new/gone)."""
    old, new = flatten(committed), flatten(current)
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            lines.append(f"{key}: (not in params.yaml) -> {_show(new[key])}")
        elif key not in new:
            lines.append(f"{key}: {_show(old[key])} -> (removed)")
        elif old[key] != new[key]:
            lines.append(f"{key}: {_show(old[key])} -> {_show(new[key])}")
    return lines


def run_description(params_file: str | os.PathLike[str], tags: Mapping[str, str]) -> str:
    """The run's note (MLflow's description): which params differ from the committed file.

    Compares ``params_file`` with its version at git HEAD (the experiment's baseline commit).
    """
    path = Path(params_file)
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        return f"Could not read {path} to compare params: {error}"
    relative = _git("ls-files", "--full-name", "--error-unmatch", str(path), cwd=path.parent or ".")
    committed_text = _git("show", f"HEAD:{relative}", cwd=path.parent) if relative else None
    commit = tags.get("git_commit", "")[:7]
    where = f"the committed {path.name} (git {commit})" if commit else f"the committed {path.name}"
    if committed_text is None:
        return f"No committed {path.name} to compare with: every param is as logged."
    committed = yaml.safe_load(committed_text) or {}
    lines = changed_params(committed, current)
    source = f"DVC experiment {tags['dvc_experiment']}" if tags.get("dvc_experiment") else "Run"
    if not lines:
        return f"{source}: no params changed from {where}."
    changes = "\n".join(f"- {line}" for line in lines)
    return f"{source}: params changed from {where}:\n\n{changes}"


class _Run(mlflow.ActiveRun):
    """``mlflow.ActiveRun`` whose end (on leaving ``with``) is a locked, retried write."""

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.info.run_id:
            status = "FINISHED" if exc_type is None else "FAILED"
            write(mlflow.end_run, status)
        return exc_type is None


def start_run(
    experiment_name: str,
    run_name: str | None = None,
    params_file: str | os.PathLike[str] | None = None,
) -> mlflow.ActiveRun:
    """Open a new run in ``experiment_name`` with the provenance tags.

    The run is named ``run_name``, else after its DVC experiment, else ``repro-<commit>...``.
    With ``params_file``, its description lists the params that differ from the committed file.
    Tags: ``git_commit``, ``git_dirty``, ``dvc_experiment`` (when run by ``dvc exp run``).
    """
    experiment_id = get_or_create_experiment(experiment_name)
    tags = run_tags()
    name = run_name or default_run_name(tags)
    all_tags = dict(tags)
    if params_file is not None:
        all_tags["mlflow.note.content"] = run_description(params_file, tags)
    run = write(mlflow.start_run, experiment_id=experiment_id, run_name=name, tags=all_tags)
    return _Run(run)


def resume_run(experiment_name: str, run_id: str) -> mlflow.ActiveRun:
    """Reopen the run ``run_id`` (written by the train stage) to add to it."""
    get_or_create_experiment(experiment_name)
    try:
        return _Run(write(mlflow.start_run, run_id=run_id))
    except mlflow.exceptions.MlflowException as error:
        raise CharmtError(
            f"MLflow run {run_id} not found in {tracking_uri()} ({error}); was the model trained "
            "against another tracking store? Set MLFLOW_TRACKING_URI or re-run the train stage"
        ) from None


def reopen_interrupted_run(experiment_name: str, run_id: str) -> mlflow.ActiveRun | None:
    """Reopen the run of an interrupted training to continue it; None when the store lacks it.

    None also when the run belongs to another experiment: the caller then starts afresh.
    """
    experiment_id = get_or_create_experiment(experiment_name)
    try:
        found = mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if found.info.experiment_id != experiment_id or found.info.lifecycle_stage != "active":
        return None
    return _Run(write(mlflow.start_run, run_id=run_id))


def evaluation_run(
    experiment_name: str, run_id: str, params: Mapping[str, Any]
) -> mlflow.ActiveRun:
    """The run an evaluation with ``params`` (dotted names) logs into: the training run ``run_id``
    when it holds no other values for them, else a new child run of it.

    MLflow refuses to change a logged param, and re-evaluating a trained model with other
    decoding params (``dvc exp run -S evaluate.beam_width=5``) re-runs only the evaluate stage.
    """
    get_or_create_experiment(experiment_name)
    try:
        parent = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise CharmtError(
            f"MLflow run {run_id} not found in {tracking_uri()} ({error}); was the model trained "
            "against another tracking store? Set MLFLOW_TRACKING_URI or re-run the train stage"
        ) from None
    logged = parent.data.params
    if all(logged.get(k, str(v)) == str(v) for k, v in params.items()):
        return resume_run(experiment_name, run_id)
    run = write(
        mlflow.start_run,
        experiment_id=parent.info.experiment_id,
        run_name=f"{parent.info.run_name}-evaluation",
        tags={**run_tags(), "mlflow.parentRunId": run_id},
    )
    return _Run(run)


def dataset_digest(path: str | os.PathLike[str]) -> str:
    """The first 8 hex digits of a file's sha256 (MLflow shows dataset digests this short)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:8]


def log_dataset(
    data_url: str, split_file: str | os.PathLike[str], pairs: Sequence[Pair], context: str
) -> None:
    """Log a prepared split as a run input (the run's Datasets in the UI).

    Its source is ``data_url`` (a relative local path made absolute), its digest that of
    ``split_file``, so runs trained on other data, or another cut of it, show another digest.
    """
    import pandas as pd

    is_url = "://" in data_url
    source = data_url if is_url else str(resolve_local(data_url))
    frame = pd.DataFrame({"source": [p.source for p in pairs], "target": [p.target for p in pairs]})
    dataset = mlflow.data.from_pandas(
        frame, source=source, name=Path(split_file).stem, digest=dataset_digest(split_file)
    )
    write(mlflow.log_input, dataset, context=context)


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
    write(
        mlflow.log_metrics,
        {k: v for k, v in row.items() if k != "epoch"},
        step=int(row["epoch"]),
    )


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
    # Under the store lock but not retried: logging a model is several writes, and a retry after
    # a partial failure would leave a second, half-logged model behind.
    with store_lock():
        # No input_example here: MLflow 3.17.2's Keras flavour writes the example before it
        # creates the model directory and fails. The translator pyfunc below carries one.
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
    write(mlflow.log_params, flatten(sections))


def log_summary(figures: Mapping[str, Any], prefix: str = "") -> None:
    """Log the numeric figures of a summary (nested ones with dotted names) as metrics."""
    write(
        mlflow.log_metrics,
        {
            f"{prefix}{name}": float(value)
            for name, value in flatten(figures).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
    )


def log_artifact(path: str | os.PathLike[str]) -> None:
    """Log one file into the active run."""
    write(mlflow.log_artifact, str(path))


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
        # Under the store lock: a first request to a fresh SQLite store creates its tables.
        with http_retries(CHECK_RETRIES, CHECK_TIMEOUT_S), store_lock(uri):
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
    experiment_name: str,
    resume_run_id: str | None = None,
    params_file: str | os.PathLike[str] | None = None,
) -> Iterator[TrainingRun]:
    """Open a run for a training (provenance tags included) with bounded retries; with
    ``resume_run_id`` (from an interrupted training's checkpoint) reopen that run instead, when
    the store still has it in this experiment (``TrainingRun.resumed`` says whether it did). A new
    run is named and described as :func:`start_run` does, from ``params_file``.

    The run stays open after the block: :meth:`TrainingRun.finish` ends it. When the block is
    interrupted (Ctrl-C, SIGTERM) the run ends KILLED, when it fails FAILED; either gives up
    within seconds when the store does not answer (MLflow would otherwise retry for minutes, even
    at exit), and a run left RUNNING by a hard kill is reopened by the next training.
    """
    with http_retries(TRAINING_RETRIES, TRAINING_TIMEOUT_S):
        run = reopen_interrupted_run(experiment_name, resume_run_id) if resume_run_id else None
        resumed = run is not None
        if run is None:
            run = start_run(experiment_name, params_file=params_file)
    try:
        yield TrainingRun(run, resumed)
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
        write(mlflow.start_run, run_id=run_id)
    for row in history:
        if int(row["epoch"]) not in logged_steps:
            log_epoch(row)
    log_summary(summary)
    log_trained_model(translator, model_dir, skip=_logged_models(run))
    write(mlflow.end_run, "FINISHED")


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
