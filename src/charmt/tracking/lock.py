"""Many writers, one SQLite store: a file lock around every write, and retries.

Several processes may write one SQLite store at once (``dvc queue start -j 2``). MLflow 3.17
creates a fresh store's tables without a lock ("duplicate column" when two first runs race), lets
the loser of two experiment creations fail with RESOURCE_ALREADY_EXISTS, and turns SQLite's
"database is locked" into TEMPORARILY_UNAVAILABLE. So, for a SQLite store, every write this
package makes holds a file lock beside the database (``mlflow.db.lock``): the schema is created
once, the experiment once, and writers never contend inside SQLite. Writes are also retried on
TEMPORARILY_UNAVAILABLE, for contention from processes that do not take the lock (a UI, a script)
and from a tracking server (HTTP 503), which no file lock reaches.

The lock is an OS lock (``flock``) on that file: it is released when its holder ends, however it
ends, so a lock file left behind is harmless, and deleting it while a writer holds it would let a
second writer in.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import filelock
from mlflow.exceptions import MlflowException

from charmt.errors import CharmtError
from charmt.tracking.location import sqlite_database, tracking_uri

# How long a writer waits for the store's file lock before giving up with a clear error. Writes
# are short (a training's heaviest is logging its two models, seconds), so this is generous.
LOCK_TIMEOUT_S = 600.0
# A wait for the lock this long is reported on stderr.
LOCK_NOTICE_S = 5.0
# Retries of a write that MLflow reports as TEMPORARILY_UNAVAILABLE ("database is locked").
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15, 30)

T = TypeVar("T")


class StoreLockTimeout(CharmtError):
    """Another process held the store's lock for longer than ``LOCK_TIMEOUT_S``."""


_LOCKS: dict[Path, filelock.FileLock] = {}


@contextlib.contextmanager
def store_lock(uri: str | None = None) -> Iterator[None]:
    """Hold the store's write lock: a file lock beside a SQLite database; nothing otherwise.

    Re-entrant within a process. Every process that writes the store through this package takes
    it, so parallel experiments write one at a time instead of failing inside SQLite.
    """
    database = sqlite_database(uri or tracking_uri())
    if database is None:
        yield
        return
    path = database.with_name(database.name + ".lock")
    lock = _LOCKS.get(path)
    if lock is None:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock = _LOCKS[path] = filelock.FileLock(path)
    waited = time.monotonic()
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except filelock.Timeout:
        raise StoreLockTimeout(
            f"waited {LOCK_TIMEOUT_S:.0f} s for the MLflow store's lock {path}: another process "
            "writing to the same store (a training or evaluation, most likely) still holds it. "
            "The lock is released as soon as that process finishes its write or ends; wait for "
            "it, or stop it. Do not delete the lock file: it is harmless when no one holds it, "
            "and deleting it while someone does lets two writers in"
        ) from None
    try:
        waited = time.monotonic() - waited
        if waited >= LOCK_NOTICE_S:
            # Another experiment was logging (its models, most likely): say why we paused.
            print(f"waited {waited:.0f} s for the MLflow store's lock {path}", file=sys.stderr)
        yield
    finally:
        lock.release()


def is_temporary(error: MlflowException) -> bool:
    """Whether MLflow reports ``error`` as a busy store, worth retrying."""
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
            if delay is None or not is_temporary(error):
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")
