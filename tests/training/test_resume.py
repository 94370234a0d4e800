"""Interrupt and resume: a run stopped after any epoch ends as if it had never stopped.

Library level (fast): ``train_model`` with checkpoints, interrupted by a KeyboardInterrupt raised
from the per-epoch hook (what Ctrl-C does between two steps), then called again. End to end: a real
`dvc repro` interrupted with SIGINT mid-training, then run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from commands import run, subprocess_env
from projects import make_project, tiny_zip
from tiny_task import reversal_pairs

from charmt.data.pairs import build_vocabularies
from charmt.training.checkpoint import Checkpoints

PARAMS = dict(latent_dim=16, batch_size=16, epochs=5, learning_rate=0.02, seed=3)


@pytest.fixture(scope="module")
def task():
    pairs = reversal_pairs(240, seed=11)
    train, validation = pairs[:200], pairs[200:]
    return train, validation, build_vocabularies(train)


def _train(task, tmp_path, interrupt_after=None, checkpoints=True, **overrides):
    from charmt.training.fit import TrainParams, train_model

    train, validation, vocabularies = task
    seen: list[int] = []

    def on_epoch(row):
        seen.append(row["epoch"])
        if row["epoch"] == interrupt_after:
            raise KeyboardInterrupt

    store = Checkpoints(tmp_path / "ckpt", "key") if checkpoints else None
    result = train_model(
        train,
        validation,
        vocabularies,
        TrainParams(**{**PARAMS, **overrides}),
        on_epoch=on_epoch,
        verbose=0,
        checkpoints=store,
        checkpoint_extra={"run_id": "abc"},
    )
    return result, seen


@pytest.fixture(scope="module")
def uninterrupted(task, tmp_path_factory):
    return _train(task, tmp_path_factory.mktemp("plain"), checkpoints=False)[0]


@pytest.mark.parametrize("interrupt_after", [1, 3])
def test_resumed_run_matches_an_uninterrupted_one(task, uninterrupted, tmp_path, interrupt_after):
    with pytest.raises(KeyboardInterrupt):
        _train(task, tmp_path, interrupt_after=interrupt_after)
    latest = Checkpoints(tmp_path / "ckpt", "key").latest()
    assert latest is not None and latest.epoch == interrupt_after
    assert latest.state["extra"] == {"run_id": "abc"}

    resumed, seen = _train(task, tmp_path)
    # Only the epochs not yet reported are reported again: none twice, none missing.
    assert seen == list(range(interrupt_after + 1, PARAMS["epochs"] + 1))
    assert resumed.resumed_epochs == interrupt_after
    assert [r["epoch"] for r in resumed.history] == [r["epoch"] for r in uninterrupted.history]
    for mine, theirs in zip(resumed.history, uninterrupted.history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)
    assert resumed.best_epoch == uninterrupted.best_epoch
    for mine, theirs in zip(
        resumed.model.get_weights(), uninterrupted.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


SCORED = dict(select_by="chrf", select_every=2)


@pytest.fixture(scope="module")
def uninterrupted_by_chrf(task, tmp_path_factory):
    return _train(task, tmp_path_factory.mktemp("chrf"), checkpoints=False, **SCORED)[0]


# After 3: resumed before a decoded epoch (4) with a best epoch already chosen by score (2).
@pytest.mark.parametrize("interrupt_after", [1, 3])
def test_a_run_selected_by_chrf_resumes_as_if_never_interrupted(
    task, uninterrupted_by_chrf, tmp_path, interrupt_after
):
    with pytest.raises(KeyboardInterrupt):
        _train(task, tmp_path, interrupt_after=interrupt_after, **SCORED)
    resumed, seen = _train(task, tmp_path, **SCORED)
    assert seen == list(range(interrupt_after + 1, PARAMS["epochs"] + 1))
    plain = uninterrupted_by_chrf
    assert [sorted(r) for r in resumed.history] == [sorted(r) for r in plain.history]
    for mine, theirs in zip(resumed.history, plain.history, strict=True):
        for key in ("loss", "val_loss", "val_chrf", "val_char_accuracy"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4), (mine, theirs)
    assert [r["epoch"] for r in plain.history if "val_chrf" in r] == [2, 4, 5]
    assert resumed.best_epoch == plain.best_epoch
    assert resumed.summary["best_val_chrf"] == plain.summary["best_val_chrf"]
    assert resumed.decode_seconds > 0
    for mine, theirs in zip(resumed.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


def test_early_stopping_state_survives_an_interrupt(task, tmp_path):
    # A learning rate this high makes val_loss stop improving early, so patience triggers.
    overrides = dict(epochs=12, learning_rate=0.3, early_stopping_patience=2)
    plain, _ = _train(task, tmp_path / "a", checkpoints=False, **overrides)
    assert len(plain.history) < 12, "the test needs a run that stops early"
    stop_at = len(plain.history)
    with pytest.raises(KeyboardInterrupt):
        _train(task, tmp_path / "b", interrupt_after=stop_at - 1, **overrides)
    resumed, seen = _train(task, tmp_path / "b", **overrides)
    assert seen == [stop_at]
    assert len(resumed.history) == stop_at
    assert resumed.best_epoch == plain.best_epoch


def test_a_resumed_learning_rate_schedule_continues_where_it_stopped(task, tmp_path):
    # 13 steps an epoch: the warm-up ends in epoch 2. A resume that restarted the optimizer's
    # step count would warm up again and train differently.
    overrides = dict(optimizer="adam", schedule="inverse_sqrt", warmup_steps=20, epochs=3)
    plain, _ = _train(task, tmp_path / "a", checkpoints=False, **overrides)
    with pytest.raises(KeyboardInterrupt):
        _train(task, tmp_path / "b", interrupt_after=1, **overrides)
    resumed, _ = _train(task, tmp_path / "b", **overrides)
    steps = int(plain.model.optimizer.iterations)
    assert steps == 3 * 13
    assert int(resumed.model.optimizer.iterations) == steps
    assert float(resumed.model.optimizer.learning_rate) == pytest.approx(
        float(plain.model.optimizer.learning_rate)
    )
    for mine, theirs in zip(resumed.history, plain.history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)


def test_a_finished_checkpoint_is_not_trained_again(task, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(task, tmp_path, interrupt_after=PARAMS["epochs"])
    resumed, seen = _train(task, tmp_path)
    assert seen == []
    assert len(resumed.history) == PARAMS["epochs"]


# --- end to end: a real `dvc repro`, interrupted with SIGINT and run again ---------------------


EPOCHS = 20


def _checkpointed_epoch(root):
    kept = sorted(root.glob("*/epoch-*"))
    return int(kept[-1].name.removeprefix("epoch-")) if kept else 0


def _repro_until_checkpoint(project, checkpoints, after_epoch, signum, log_path):
    """Start `dvc repro`, wait for a checkpoint past ``after_epoch``, send ``signum`` to its
    process group as a terminal would; the exit status, the seconds it took to stop, the log."""
    env = subprocess_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "w") as log:
        # A background child of a non-interactive shell ignores SIGINT; restore it, or this tests
        # nothing. Its own session makes it a process group, as a terminal's foreground job is.
        process = subprocess.Popen(
            ["dvc", "repro"],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 300
            while _checkpointed_epoch(checkpoints) <= after_epoch:
                assert process.poll() is None, "dvc repro ended before the checkpoint"
                assert time.monotonic() < deadline, "no new checkpoint in 300 s"
                time.sleep(0.05)
            sent = time.monotonic()
            os.killpg(process.pid, signum)
            process.wait(timeout=60)
            return process.returncode, time.monotonic() - sent, open(log_path).read()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.e2e
def test_interrupted_and_killed_repro_resumes_the_same_mlflow_run(tmp_path):
    import mlflow

    params = {
        "data": {"num_samples": 1000},
        # Enough epochs that the interrupts land mid-training, however fast the machine.
        "train": {"latent_dim": 32, "batch_size": 32, "epochs": EPOCHS},
        "evaluate": {"batch_size": 64},
    }
    project = make_project(tmp_path / "project", tiny_zip(), params, prepared=True)
    checkpoints = project / "checkpoints" / "train"
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")

    # 1. Ctrl-C after the first checkpoint: the stage stops, the run ends KILLED, no model.
    status, stopped_in, output = _repro_until_checkpoint(
        project, checkpoints, 0, signal.SIGINT, tmp_path / "repro-1.log"
    )
    assert status != 0, output[-3000:]
    assert stopped_in < 30, f"the stage took {stopped_in:.0f} s to stop"
    assert not (project / "models").exists(), "a half-written model was left behind"
    first = _checkpointed_epoch(checkpoints)
    assert 1 <= first < EPOCHS, output[-3000:]
    [interrupted] = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    assert interrupted.info.status == "KILLED"

    # 2. Resumed, then killed hard (SIGKILL: no clean-up at all) after a later checkpoint.
    status, _, output = _repro_until_checkpoint(
        project, checkpoints, first, signal.SIGKILL, tmp_path / "repro-2.log"
    )
    assert f"after epoch {first}" in output
    second = _checkpointed_epoch(checkpoints)
    assert first < second < EPOCHS, output[-3000:]
    assert len(mlflow.search_runs(experiment_names=["charmt"], output_format="list")) == 1

    # 3. Runs to the end: the same MLflow run, every epoch exactly once, no checkpoint left.
    output = run(["dvc", "repro"], project)
    assert f"after epoch {second}" in output
    [finished] = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    assert finished.info.run_id == interrupted.info.run_id
    assert finished.info.status == "FINISHED"
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    assert run_id == finished.info.run_id
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "val_loss")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))  # every epoch once
    history = (project / "metrics/history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == list(range(1, EPOCHS + 1))
    assert not checkpoints.exists(), "the checkpoint outlived the stage"


def test_an_interrupted_run_ends_killed_and_a_failed_one_failed(mlflow_store):
    import mlflow

    from charmt import tracking

    with pytest.raises(KeyboardInterrupt), tracking.training_run("charmt-test") as run:
        assert not run.resumed
        raise KeyboardInterrupt
    assert mlflow.get_run(run.run_id).info.status == "KILLED"

    with pytest.raises(RuntimeError), tracking.training_run("charmt-test", run.run_id) as again:
        assert again.resumed and again.run_id == run.run_id
        raise RuntimeError("boom")
    assert mlflow.get_run(run.run_id).info.status == "FAILED"

    # A run of another experiment, or one the store does not have: a new run, not a resume.
    for experiment, run_id in (("another-experiment", run.run_id), ("charmt-test", "0" * 32)):
        with tracking.training_run(experiment, run_id) as fresh:
            assert not fresh.resumed and fresh.run_id != run.run_id
        mlflow.end_run()


def test_sigterm_unwinds_like_ctrl_c(tmp_path):
    # exit_on_error turns SIGTERM into KeyboardInterrupt: `finally` blocks run (temporary files
    # are removed, the MLflow run is ended) and the exit status says "interrupted".
    marker = tmp_path / "cleaned-up"
    code = (
        "import time, sys\n"
        "from charmt.errors import exit_on_error\n"
        "def main():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "exit_on_error(main)\n"
    )
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted" in stderr
    assert marker.exists()


def test_epochs_checkpointed_but_not_logged_are_logged_once_on_resume(mlflow_store, trained):
    import mlflow

    from charmt import tracking
    from charmt.serving.publish import finish_training

    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 2.0 / e} for e in (1, 2, 3)]
    with pytest.raises(KeyboardInterrupt), tracking.training_run("charmt-test") as run:
        run.log_epoch(rows[0])  # killed after checkpointing epoch 2, before logging it
        raise KeyboardInterrupt
    with tracking.training_run("charmt-test", run.run_id) as resumed:
        resumed.log_epoch(rows[2])  # resumed after epoch 2, epoch 3 ran
        finish_training(resumed, trained.translator, trained.model_dir, rows, {}, recovery="-")
    history = mlflow.MlflowClient().get_metric_history(run.run_id, "val_loss")
    assert sorted((m.step, m.value) for m in history) == [(e, 2.0 / e) for e in (1, 2, 3)]
    assert mlflow.get_run(run.run_id).info.status == "FINISHED"
