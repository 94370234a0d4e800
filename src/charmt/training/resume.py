"""What the fit loop writes into a checkpoint after each epoch, and how a run resumes from one.

A checkpoint (``charmt.training.checkpoint``) holds everything the run knows: the model's weights
with the optimizer's state (``model.weights.h5``), the best epoch's weights (``best.npz``), and in
its state the history, the best epoch and whether early stopping ended the run. A run resumed
from it carries on exactly where the interrupted one stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from charmt.training.best_epoch import BestEpoch
from charmt.training.checkpoint import Checkpoint, Checkpoints
from charmt.training.early_stopping import EarlyStopping
from charmt.training.history import EpochHistory

MODEL_WEIGHTS = "model.weights.h5"  # weights and optimizer state after the epoch
BEST_WEIGHTS = "best.npz"  # the keep-best weights


class CheckpointEachEpoch(keras.callbacks.Callback):
    """Writes a checkpoint into ``checkpoints`` after each epoch whose loss is finite (a diverged
    epoch is not worth resuming from); ``extra`` (JSON-able, e.g. the MLflow run id) goes into it.

    Runs after the callbacks whose state it saves, and before the epoch is reported: a run killed
    in between re-reports this epoch on resume (see ``charmt.tracking.complete_run``) rather than
    training it twice.
    """

    def __init__(
        self,
        checkpoints: Checkpoints,
        extra: Mapping[str, Any],
        history: EpochHistory,
        best: BestEpoch,
        stopping: EarlyStopping,
    ) -> None:
        super().__init__()
        self._checkpoints = checkpoints
        self._extra = dict(extra)
        self._history = history
        self._best = best
        self._stopping = stopping

    def state(self) -> dict[str, Any]:
        return {
            **self._history.state(),
            **self._best.state(),
            **self._stopping.state(),
            "extra": self._extra,
        }

    def resume(self, model: keras.Model) -> None:
        """Restore the latest checkpoint, if there is one, into ``model`` (compiled) and the
        recording callbacks."""
        checkpoint = self._checkpoints.latest()
        if checkpoint is not None:
            self._restore(checkpoint, model)

    def _restore(self, checkpoint: Checkpoint, model: keras.Model) -> None:
        state = checkpoint.state
        self._history.restore(state)
        self._best.restore(state, _read_best_weights(checkpoint.directory / BEST_WEIGHTS))
        self._stopping.restore(state)
        # Optimizer variables exist only once built; load_weights restores them too.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint.directory / MODEL_WEIGHTS)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self._history.last
        if math.isfinite(row["loss"]):
            self._checkpoints.save(row["epoch"], self.state(), self._write_weights)

    def _write_weights(self, directory: Path) -> None:
        self.model.save_weights(directory / MODEL_WEIGHTS)
        if self._best.weights is not None:
            np.savez(
                directory / BEST_WEIGHTS,
                **{f"w{i}": w for i, w in enumerate(self._best.weights)},
            )


def _read_best_weights(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as arrays:
        return [arrays[f"w{i}"] for i in range(len(arrays.files))]
