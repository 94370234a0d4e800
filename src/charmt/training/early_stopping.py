"""Early stopping: end the run after ``train.early_stopping_patience`` epochs without a better one.

Keras' own EarlyStopping, but by the same criterion as the best epoch (``train.select_by``), and
with its state in the checkpoint, so that a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import keras

from charmt.training.best_epoch import BestEpoch
from charmt.training.history import EpochHistory


class EarlyStopping(keras.callbacks.Callback):
    """Stops training once ``patience`` epochs have passed since the best one (None: never).

    Decided at candidate epochs only: stopping at an epoch that was not scored would give up
    before the last chance to improve, so patience counts as if rounded up to a multiple of
    ``train.select_every``. Runs after ``best``, which it reads.
    """

    def __init__(self, history: EpochHistory, best: BestEpoch, patience: int | None) -> None:
        super().__init__()
        self.stopped = False
        self._history = history
        self._best = best
        self._patience = patience

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: whether the run had stopped (JSON-able)."""
        return {"stopped": self.stopped}

    def restore(self, state: dict[str, Any]) -> None:
        self.stopped = bool(state["stopped"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self._history.last
        if (
            self._patience is not None
            and self._best.is_candidate(row)
            and epoch > 0
            and row["epoch"] - self._best.epoch >= self._patience
        ):
            self.stopped = True
            self.model.stop_training = True
