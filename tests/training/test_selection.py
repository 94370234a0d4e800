"""train.select_by chrf / char_accuracy: the kept epoch is the one whose greedy translations of the
validation sentences score best, decoded every select_every epochs and at the last.

Real trainings on the tiny reversal task (conftest); the seeds and learning rates are chosen so
that the runs show what is tested (noted where a test depends on it).
"""

from __future__ import annotations

import csv

import pytest
from tiny_task import reversal_pairs

from charmt.data.pairs import build_vocabularies
from charmt.io.atomic import write_table
from charmt.training.selection import ValidationScorer, is_scored_epoch

BASE = dict(latent_dim=16, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def task():
    pairs = reversal_pairs(240, seed=11)
    train, validation = pairs[:200], pairs[200:]
    return train, validation, build_vocabularies(train)


def _train(task, on_epoch=None, **overrides):
    from charmt.training.fit import TrainParams, train_model

    train, validation, vocabularies = task
    params = TrainParams(**{**BASE, **overrides})
    return train_model(train, validation, vocabularies, params, on_epoch=on_epoch, verbose=0)


def _scored(history, column):
    return {row["epoch"]: row[column] for row in history if column in row}


def test_is_scored_epoch_takes_every_nth_and_the_last():
    assert [e for e in range(1, 8) if is_scored_epoch(e, 3, 7)] == [3, 6, 7]
    assert [e for e in range(1, 5) if is_scored_epoch(e, 1, 4)] == [1, 2, 3, 4]


def test_select_by_chrf_keeps_the_epoch_that_translates_best(task):
    result = _train(task, epochs=10, learning_rate=0.05, select_by="chrf")
    chrf = _scored(result.history, "val_chrf")
    assert sorted(chrf) == list(range(1, 11))  # select_every 1: every epoch is decoded
    best = max(chrf, key=chrf.get)  # the first of equal scores, as the recorder keeps
    assert result.best_epoch == best
    # What makes this run a test of the choice (seed 3, learning rate 0.05): the epoch with the
    # lowest val_loss is another one, and the best chrF is not the last epoch's.
    lowest_loss = min(result.history, key=lambda row: row["val_loss"])["epoch"]
    assert best != lowest_loss and best != 10

    # The returned model is that epoch's: decoding the validation set again gives its score.
    train, validation, vocabularies = task
    again = ValidationScorer(result.model, vocabularies, train, validation)()
    assert again.chrf == pytest.approx(chrf[best], abs=1e-3)
    assert again.char_accuracy == pytest.approx(result.best_row["val_char_accuracy"], abs=1e-3)

    summary = result.summary
    assert summary["selected_by"] == "chrf"
    assert summary["best_epoch"] == summary["kept_epoch"] == best
    assert summary["best_val_chrf"] == chrf[best]
    assert summary["best_val_loss"] == result.history[best - 1]["val_loss"]
    assert summary["best_val_loss"] > min(row["val_loss"] for row in result.history)
    assert summary["validation_decode_seconds"] > 0


def test_select_every_decodes_every_nth_epoch_and_the_last_logged_per_epoch(task, tmp_path):
    import mlflow

    from charmt import tracking
    from charmt.training.fit import HISTORY_COLUMNS

    with tracking.training_run("charmt-test") as run:
        result = _train(
            task,
            on_epoch=run.log_epoch,
            epochs=5,
            learning_rate=0.02,
            select_by="char_accuracy",
            select_every=2,
        )
    mlflow.end_run()
    scored = [2, 4, 5]
    accuracy = _scored(result.history, "val_char_accuracy")
    assert sorted(accuracy) == scored
    assert sorted(_scored(result.history, "val_chrf")) == scored
    assert result.best_epoch == max(accuracy, key=accuracy.get)

    # Decoding is timed apart: not in train_seconds (nor so in samples_per_second).
    decode = _scored(result.history, "val_decode_seconds")
    assert result.decode_seconds == pytest.approx(sum(decode.values()), abs=0.01)
    assert result.train_seconds == pytest.approx(
        sum(row["train_seconds"] for row in result.history), abs=0.01
    )
    for row in result.history:
        assert row["seconds"] >= row["train_seconds"] + row.get("val_decode_seconds", 0) - 0.01

    # The epochs not decoded: an empty cell in the CSV, no point in MLflow.
    history = tmp_path / "history.csv"
    write_table(history, result.history, HISTORY_COLUMNS)
    with history.open(newline="") as file:
        cells = {int(row["epoch"]): row["val_chrf"] for row in csv.DictReader(file)}
    assert [epoch for epoch, cell in cells.items() if cell == ""] == [1, 3]
    client = mlflow.MlflowClient()
    for metric, steps in (("val_chrf", scored), ("val_char_accuracy", scored)):
        points = client.get_metric_history(run.run_id, metric)
        assert sorted(m.step for m in points) == steps
    assert sorted(m.step for m in client.get_metric_history(run.run_id, "val_loss")) == [
        1,
        2,
        3,
        4,
        5,
    ]
    logged = {m.step: m.value for m in client.get_metric_history(run.run_id, "val_char_accuracy")}
    assert logged == pytest.approx(accuracy)


def test_early_stopping_counts_from_the_best_score_and_stops_at_a_decoded_epoch(task):
    # Learning rate 0.3 makes chrF wander, so patience triggers (seed 3).
    patience = 1
    result = _train(
        task,
        epochs=12,
        learning_rate=0.3,
        select_by="chrf",
        select_every=2,
        early_stopping_patience=patience,
    )
    chrf = _scored(result.history, "val_chrf")
    stopped_at = len(result.history)
    assert stopped_at < 12, "the test needs a run that stops early"
    assert result.best_epoch == max(chrf, key=chrf.get)
    # It stops only where a score could have improved: at a decoded epoch, the first one at
    # least `patience` epochs after the best that did not beat it, not at the undecoded epoch
    # right after the best.
    assert stopped_at in chrf
    assert stopped_at - result.best_epoch >= patience
    assert chrf[stopped_at] <= chrf[result.best_epoch]
    earlier = [e for e in chrf if result.best_epoch < e < stopped_at]
    assert earlier == []
