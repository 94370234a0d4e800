"""MLflow stores for tests: one migrated empty SQLite store per test process, copied for each
test that needs a store of its own (conftest's ``mlflow_store``)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path


@functools.cache
def migrated_store() -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per test process.

    Creating a store runs all of MLflow's alembic migrations (1.5-3 s); a test that needs a
    store of its own gets a copy of this one (``copy_store``) instead.
    """
    import mlflow

    directory = Path(tempfile.mkdtemp(prefix="charmt-store-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    database = directory / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{database}").search_experiments(max_results=1)
    return database


def copy_store(database: Path) -> str:
    """A copy of the migrated empty store at ``database``; its URI.

    As in a store MLflow would create there, the Default experiment keeps its artifacts in
    ``mlruns/0`` beside it rather than beside the template.
    """
    shutil.copyfile(migrated_store(), database)
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(database.parent.resolve() / "mlruns" / "0"),),
        )
    return f"sqlite:///{database}"
