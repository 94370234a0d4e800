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
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import filelock
import mlflow
import numpy as np
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from charmt.atomic import write_json
from charmt.errors import CharmtError
from charmt.paths import project_root, resolve_local

if TYPE_CHECKING:
    from charmt.data import Pair
    from charmt.translator import Translator

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


# The old name, kept for callers that only need the id.
use_experiment = get_or_create_experiment


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


def file_digest(path: str | os.PathLike[str]) -> str:
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
        frame, source=source, name=Path(split_file).stem, digest=file_digest(split_file)
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
    # Under the store lock but not retried: logging a model is several writes, and a retry after
    # a partial failure would leave a second, half-logged model behind.
    with store_lock():
        # No input_example here: MLflow 3.17.2's Keras flavour writes the example before it
        # creates the model directory and fails. The translator pyfunc below carries one.
        mlflow.keras.log_model(translator.model, name="model", signature=signature)
        mlflow.pyfunc.log_model(
            name="translator",
            python_model=Path(pyfunc.__file__),
            artifacts={pyfunc.ARTIFACT: str(directory)},
            code_paths=[str(Path(charmt.__file__).parent)],
            input_example=["Go.", "I'm sorry."],
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
