"""The history of a training run: one row per epoch, its figures and its seconds.

A row has the epoch's losses and accuracies, how long it took, and, with ``train.select_by`` chrf
or char_accuracy, the validation sentences' translation scores of the epochs that were decoded
(``charmt.training.selection``). The train stage writes the rows as ``metrics/history.csv`` and
logs each to MLflow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras

from charmt.training import selection

# seconds: the whole epoch, validation and its decoding included; train_seconds: its training
# part alone. val_chrf, val_char_accuracy and val_decode_seconds (charmt.training.selection) are in
# the rows of the epochs that were decoded only (train.select_by chrf / char_accuracy): an empty
# cell in the CSV, no point in MLflow, for the others.
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "seconds",
    "train_seconds",
    *selection.SCORE_COLUMNS.values(),
    selection.SECONDS_COLUMN,
)

_KERAS_COLUMNS = ("loss", "val_loss", "accuracy", "val_accuracy")


class EpochHistory(keras.callbacks.Callback):
    """Appends each epoch's row to ``rows`` and adds up its training and decoding seconds.

    With a ``scorer``, the epochs ``selection.is_scored_epoch`` names (every ``select_every``-th
    and ``last_epoch``) are decoded and scored, unless their loss diverged; the others have no
    score. Runs before the callbacks that read the row (keeping the best epoch, early stopping,
    checkpoints), so each sees the epoch's row complete.
    """

    def __init__(
        self,
        scorer: Callable[[], selection.Scores] | None = None,
        select_every: int = 1,
        last_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.decode_seconds = 0.0
        self._scorer = scorer
        self._select_every = select_every
        self._last_epoch = last_epoch

    @property
    def last(self) -> dict[str, float]:
        """The row of the epoch that just ended."""
        return self.rows[-1]

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the history (JSON-able)."""
        return {
            "rows": self.rows,
            "train_seconds": self.train_seconds,
            "decode_seconds": self.decode_seconds,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Carry on from a checkpoint's ``state``."""
        self.rows = [dict(row) for row in state["rows"]]
        self.train_seconds = float(state["train_seconds"])
        self.decode_seconds = float(state["decode_seconds"])

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()
        self._validation_start: float | None = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._validation_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        train_seconds = (self._validation_start or now) - self._epoch_start
        self.train_seconds += train_seconds
        logs = logs or {}
        row = {"epoch": epoch + 1}
        row.update({k: float(logs[k]) for k in _KERAS_COLUMNS})
        row["train_seconds"] = round(train_seconds, 3)
        # A diverged epoch is not decoded: TerminateOnNaN ends the run anyway.
        if (
            self._scorer is not None
            and math.isfinite(row["loss"])
            and selection.is_scored_epoch(row["epoch"], self._select_every, self._last_epoch)
        ):
            scores = self._scorer()
            self.decode_seconds += scores.seconds
            row.update(scores.columns())
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        self.rows.append(row)
