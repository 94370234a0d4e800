"""MLflow tracking for charmt, one concept a module; the stages use the names re-exported here.

- ``location``: where runs go (``MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``);
- ``lock``: one SQLite store, many writers: the store lock and retried writes;
- ``store``: the store created once, the experiment created once, links to the runs view;
- ``reach``: bounded HTTP retries and a reachability check that fails in seconds;
- ``provenance``: git commit, dirty flag, DVC experiment, run names and descriptions;
- ``runs``: a run's lifecycle (start, reopen, evaluation runs, end by id);
- ``logged``: what a run holds (params, epochs, summaries, datasets; its READY models);
- ``training_run``: the training's run, resumed after an interrupt, surviving a lost server;
- ``registry``: a run's logged translator registered as a version of a registered model.

Nothing here knows a translator, a model or the data (import-linter holds it): what a trained
translator logs is ``charmt.serving.publish``'s, the champion policy
``charmt.pipeline.promotion``'s.
"""

from charmt.tracking.flat import flatten
from charmt.tracking.location import DEFAULT_STORE, local_store, tracking_uri
from charmt.tracking.lock import StoreLockTimeout, store_lock, write
from charmt.tracking.logged import (
    KERAS_MODEL,
    TRANSLATOR_MODEL,
    dataset_digest,
    log_artifact,
    log_dataset,
    log_epoch,
    log_params,
    log_summary,
    ready_models,
)
from charmt.tracking.provenance import changed_params, default_run_name, run_description, run_tags
from charmt.tracking.reach import (
    check_reachable,
    check_writable,
    http_retries,
    permission_denied,
)
from charmt.tracking.registry import register_version
from charmt.tracking.runs import (
    EVALUATION_ERROR_TAG,
    EVALUATION_STATUS_TAG,
    RUN_FILE,
    abandon_run,
    end_run,
    evaluation_run,
    read_run_id,
    resume_run,
    start_run,
    write_run_id,
)
from charmt.tracking.store import (
    DEFAULT_UI,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    configure,
    get_or_create_experiment,
    runs_view_url,
)
from charmt.tracking.training_run import (
    LogModels,
    TrainingRun,
    complete_run,
    recovery_command,
    training_run,
)

__all__ = [
    "DEFAULT_STORE",
    "DEFAULT_UI",
    "EVALUATION_ERROR_TAG",
    "EVALUATION_STATUS_TAG",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "KERAS_MODEL",
    "RUN_FILE",
    "TRANSLATOR_MODEL",
    "LogModels",
    "StoreLockTimeout",
    "TrainingRun",
    "abandon_run",
    "changed_params",
    "check_reachable",
    "check_writable",
    "complete_run",
    "configure",
    "dataset_digest",
    "default_run_name",
    "end_run",
    "evaluation_run",
    "flatten",
    "get_or_create_experiment",
    "http_retries",
    "local_store",
    "log_artifact",
    "log_dataset",
    "log_epoch",
    "log_params",
    "log_summary",
    "permission_denied",
    "read_run_id",
    "ready_models",
    "recovery_command",
    "register_version",
    "resume_run",
    "run_description",
    "run_tags",
    "runs_view_url",
    "start_run",
    "store_lock",
    "tracking_uri",
    "training_run",
    "write",
    "write_run_id",
]
