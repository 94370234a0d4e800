"""Where runs go: ``MLFLOW_TRACKING_URI`` when set (a server included), else a SQLite store in the
project root, ``sqlite:///<project>/mlflow.db``.

The project root, not the working directory: ``dvc exp run --temp`` and queued experiments run in
a temporary copy of the project, and a store written there would be deleted with the copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from charmt.io.paths import project_root

DEFAULT_STORE = "mlflow.db"


def tracking_uri() -> str:
    """The tracking URI this project logs to."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store()


def local_store() -> str:
    """The project's own SQLite store, where runs go when MLFLOW_TRACKING_URI is unset."""
    return f"sqlite:///{project_root() / DEFAULT_STORE}"


def sqlite_database(uri: str) -> Path | None:
    """The database file of a local SQLite store; None for any other store."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve()
    return None
