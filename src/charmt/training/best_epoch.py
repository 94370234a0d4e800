"""The best epoch so far and its weights, which ``train.keep_best`` gives the returned model.

The best epoch is the one with the lowest val_loss (``train.select_by`` val_loss), or with the
highest translation score among the epochs that were decoded (chrf / char_accuracy,
``charmt.training.selection``); the epochs between are not candidates.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from charmt.training import selection
from charmt.training.history import EpochHistory


class BestEpoch(keras.callbacks.Callback):
    """Keeps the number, the select_by figure and the weights of the best epoch so far.

    Reads each epoch's row from ``history``, so it runs after it.
    """

    def __init__(self, history: EpochHistory, select_by: str = selection.VAL_LOSS) -> None:
        super().__init__()
        # The best epoch's select_by figure (None: no candidate epoch yet) and its number.
        self.value: float | None = None
        self.epoch = 0
        self.weights: list[np.ndarray] | None = None
        self._history = history
        self._select_by = select_by
        self._criterion = selection.criterion_column(select_by)

    def is_candidate(self, row: dict[str, float]) -> bool:
        """Whether the epoch of ``row`` competes: always for val_loss, when decoded for a score."""
        return self._criterion in row

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the best epoch, but its weights (JSON-able)."""
        return {"best_value": self.value, "best_epoch": self.epoch}

    def restore(self, state: dict[str, Any], weights: list[np.ndarray] | None) -> None:
        """Carry on from a checkpoint's ``state`` and the best weights it holds (if any)."""
        best = state["best_value"]
        self.value = None if best is None else float(best)
        self.epoch = int(state["best_epoch"])
        self.weights = weights

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self._history.last
        value = row.get(self._criterion)
        if (
            value is not None
            and math.isfinite(value)
            and selection.is_better(self._select_by, value, self.value)
        ):
            self.value, self.epoch = value, row["epoch"]
            self.weights = self.model.get_weights()
