"""Reaching the store: bounded HTTP retries, and a check that fails in seconds with one line.

MLflow's HTTP client retries a failed request 7 times with exponential backoff and waits up to
120 s per attempt: against a stopped server one call takes ~250 s. These settings bound that.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import requests
from mlflow.exceptions import MlflowException

from charmt.errors import CharmtError
from charmt.tracking.location import local_store, tracking_uri
from charmt.tracking.lock import store_lock

# Checking reachability: one retry, 5 s per attempt, so a stage fails in seconds. A refused
# connection or an unknown host fails at once; the timeout only bounds a server that hangs.
CHECK_RETRIES, CHECK_TIMEOUT_S = 1, 5
# Logging during training: a short hiccup is retried, a dead server costs seconds, not minutes.
TRAINING_RETRIES, TRAINING_TIMEOUT_S = 2, 10
# Where MLflow's client reads credentials when MLFLOW_TRACKING_USERNAME is not set.
CREDENTIALS_FILE = Path("~/.mlflow/credentials")
# An experiment tag that is never set: deleting it probes the permission to write.
PROBE_TAG = "charmt.write_probe"


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


def _has_credentials() -> bool:
    """Whether the client has credentials to send, where MLflow reads them."""
    return (
        bool(os.environ.get("MLFLOW_TRACKING_USERNAME")) or CREDENTIALS_FILE.expanduser().is_file()
    )


def _status(error: BaseException) -> int | None:
    """The HTTP status a client error reports, if any (MLflow puts it in the message)."""
    match = re.search(r"error code (\d{3})", str(error))
    return int(match.group(1)) if match else None


def permission_denied(error: BaseException) -> bool:
    """Whether a tracking server refused ``error``'s request for want of permission (HTTP 403;
    MLflow's own stores say ``PERMISSION_DENIED``)."""
    code = getattr(error, "error_code", None)
    return _status(error) == 403 or code == "PERMISSION_DENIED"


def _is_certificate_error(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, requests.exceptions.SSLError) or any(
        gist in text for gist in ("SSLError", "CERTIFICATE_VERIFY_FAILED", "certificate verify")
    )


def explain(error: BaseException, uri: str) -> str | None:
    """One line for the failures a user fixes on their side (credentials, the server's
    certificate), or None."""
    if _status(error) == 401:
        if _has_credentials():
            return (
                f"MLflow tracking server {uri} refused the credentials (HTTP 401): check "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"
            )
        return (
            f"MLflow tracking server {uri} needs credentials (HTTP 401): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"
        )
    if _is_certificate_error(error):
        return (
            f"the TLS certificate of MLflow tracking server {uri} could not be verified; set "
            "MLFLOW_TRACKING_SERVER_CERT_PATH to the team's CA certificate (PEM)"
        )
    return None


def check_reachable(uri: str | None = None) -> str:
    """The tracking URI, after one short request to its store; a ``CharmtError`` within seconds
    (one line naming the URI and what to do) when the store cannot be reached, the URI is wrong,
    the server wants credentials it was not given (or refuses them), or its TLS certificate
    does not verify.

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
            explain(error, uri)
            or f"MLflow tracking store {uri} is not reachable ({reason(error)}); start the "
            "tracking server or fix MLFLOW_TRACKING_URI (unset it to log to the local "
            f"{local_store()})"
        ) from None
    return uri


def check_writable(experiment: str, uri: str | None = None) -> None:
    """A ``CharmtError`` within seconds (one line naming the experiment) when this user may not
    read or write experiment ``experiment`` on the store; nothing when they may, or when it does
    not exist yet (the run creates it, and its creator may write to it).

    The write probe deletes an experiment tag that does not exist: the server checks the
    permission to update the experiment first (403 when not given), then finds no such tag, so
    the probe changes nothing either way.
    """
    uri = uri or tracking_uri()
    client = mlflow.MlflowClient(uri)
    what = f"experiment {experiment!r} on MLflow tracking server {uri}"
    try:
        with http_retries(CHECK_RETRIES, CHECK_TIMEOUT_S), store_lock(uri):
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return
            client.delete_experiment_tag(found.experiment_id, PROBE_TAG)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return  # allowed to write; the tag was not there, as intended
        if permission_denied(error):
            user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user"
            raise CharmtError(
                f"{user} has no permission to write to {what} (HTTP 403): ask an admin of the "
                "server to grant EDIT on it (docs/team.md)"
            ) from None
        raise CharmtError(explain(error, uri) or f"cannot check {what} ({reason(error)})") from None
