"""Records that stay right when something fails half-way: a run end that is retried, an evaluation
that fails inside the training run, a store lock held by someone else."""

import subprocess
import sys
import textwrap
import time

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from charmt import tracking
from charmt.errors import CharmtError

EXPERIMENT = "charmt-test"


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr("charmt.tracking.lock.RETRY_DELAYS_S", (0.01, 0.01, 0.01))


def refuse_first(monkeypatch, method: str) -> list[str]:
    """The SQLite store refuses the first call of ``method`` as a locked database does (MLflow's
    TEMPORARILY_UNAVAILABLE), then works; the calls seen, for the test to check."""
    original = getattr(SqlAlchemyStore, method)
    calls: list[str] = []

    def flaky(self, *args, **kwargs):
        calls.append(method)
        if len(calls) == 1:
            raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, method, flaky)
    return calls


def test_a_run_end_refused_once_is_retried_and_the_run_ends(monkeypatch, fast_retries):
    with tracking.start_run(EXPERIMENT) as run:
        calls = refuse_first(monkeypatch, "update_run_info")
    assert len(calls) >= 2, "the refused end was not retried"
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"
    assert mlflow.active_run() is None


def test_a_failed_run_end_refused_once_still_ends_failed(monkeypatch, fast_retries):
    with pytest.raises(RuntimeError), tracking.start_run(EXPERIMENT) as run:
        refuse_first(monkeypatch, "update_run_info")
        raise RuntimeError("training broke")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def _finished_training_run() -> str:
    with tracking.start_run(EXPERIMENT) as run:
        tracking.log_params({"train": {"epochs": 3}})
    return run.info.run_id


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt(), "KILLED"), (RuntimeError("no disk"), "FAILED")]
)
def test_a_failed_evaluation_leaves_the_training_run_finished_and_says_so(error, status):
    run_id = _finished_training_run()
    params = {"evaluate.beam_width": 1}
    with pytest.raises(type(error)), tracking.evaluation_run(EXPERIMENT, run_id, params):
        mlflow.log_metric("char_accuracy", 0.5)
        raise error
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED", "training finished; the evaluation did not"
    assert run.data.tags[tracking.EVALUATION_STATUS_TAG] == status
    if status == "FAILED":
        assert run.data.tags[tracking.EVALUATION_ERROR_TAG] == "no disk"
    assert mlflow.active_run() is None

    # Evaluating again completes it, and says so.
    with tracking.evaluation_run(EXPERIMENT, run_id, params):
        mlflow.log_metric("char_accuracy", 0.6)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.EVALUATION_STATUS_TAG] == "FINISHED"
    assert run.data.tags[tracking.EVALUATION_ERROR_TAG] == "-"
    assert run.data.metrics["char_accuracy"] == 0.6


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time, filelock
    with filelock.FileLock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_lock_held_too_long_is_reported_as_a_lock_not_as_an_unreachable_store(
    mlflow_store, monkeypatch
):
    tracking.configure()  # the store exists; now another process holds its lock
    lock_file = mlflow_store.removeprefix("sqlite:///") + ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, lock_file], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr("charmt.tracking.lock.LOCK_TIMEOUT_S", 0.5)
        started = time.monotonic()
        with pytest.raises(CharmtError) as raised:
            tracking.check_reachable()
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    message = str(raised.value)
    assert "not reachable" not in message
    assert lock_file in message and "still holds it" in message
    assert "Do not delete the lock file" in message and "\n" not in message
    tracking.check_reachable()  # the holder is gone: the lock is free again
