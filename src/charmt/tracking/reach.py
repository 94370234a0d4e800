"""Reaching the store: bounded HTTP retries, and a check that fails in seconds with one line.

MLflow's HTTP client retries a failed request 7 times with exponential backoff and waits up to
120 s per attempt: against a stopped server one call takes ~250 s. These settings bound that.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import mlflow

from charmt.errors import CharmtError
from charmt.tracking.location import local_store, tracking_uri
from charmt.tracking.lock import store_lock

# Checking reachability: one retry, 5 s per attempt, so a stage fails in seconds. A refused
# connection or an unknown host fails at once; the timeout only bounds a server that hangs.
CHECK_RETRIES, CHECK_TIMEOUT_S = 1, 5
# Logging during training: a short hiccup is retried, a dead server costs seconds, not minutes.
TRAINING_RETRIES, TRAINING_TIMEOUT_S = 2, 10


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


def reason(error: BaseException) -> str:
    """The gist of a client error, on one line (MLflow's messages run to many lines)."""
    text = " ".join(str(error).split())
    for gist in ("Connection refused", "Name or service not known", "timed out", "Max retries"):
        if gist in text:
            return gist.lower()
    return text[:300]


def check_reachable(uri: str | None = None) -> str:
    """The tracking URI, after one short request to its store; a ``CharmtError`` within seconds
    (one line naming the URI and what to do) when the store cannot be reached or the URI is wrong.

    A store whose lock another writer holds too long is not unreachable: that error says so.
    """
    uri = uri or tracking_uri()
    try:
        # Under the store lock: a first request to a fresh SQLite store creates its tables.
        with http_retries(CHECK_RETRIES, CHECK_TIMEOUT_S), store_lock(uri):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except CharmtError:
        raise
    except Exception as error:  # any other failure means the stage cannot log; say so, briefly
        raise CharmtError(
            f"MLflow tracking store {uri} is not reachable ({reason(error)}); start the "
            "tracking server or fix MLFLOW_TRACKING_URI (unset it to log to the local "
            f"{local_store()})"
        ) from None
    return uri
