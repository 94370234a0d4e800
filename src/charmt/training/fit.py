"""Training: the train stage's parameters, the fit loop, and what it measured.

The loop is Keras' own ``fit`` over length-grouped batches (``charmt.data.batches``), with small
callbacks for what the seed lacked: per-epoch timing, keeping the best epoch's weights (by
val_loss, or by a translation score of the validation sentences: ``charmt.training.selection``),
early stopping, stopping with a clear error on a NaN loss, an optional hook that reports each epoch
(to MLflow), and an optional checkpoint after each epoch (``charmt.training.checkpoint``) from
which an interrupted run resumes with the same batches, weights, optimizer state and history as a
run that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from charmt.data.batches import EncodedPairs, LengthBatches, to_dataset
from charmt.data.pairs import Pair
from charmt.data.vocabulary import Vocabularies
from charmt.errors import CharmtError
from charmt.models.model import build_model
from charmt.models.optimization import compile_model
from charmt.models.transformer import check_fits
from charmt.params import ModelParams, TrainParams
from charmt.training import selection
from charmt.training.checkpoint import Checkpoint, Checkpoints

__all__ = ["HISTORY_COLUMNS", "TrainParams", "TrainResult", "train_model"]

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


@dataclass
class TrainResult:
    """A trained model and the figures of its training."""

    model: keras.Model
    history: list[dict[str, float]]
    # The best epoch by ``selected_by`` (lowest val_loss, or highest val_chrf / val_char_accuracy
    # among the decoded epochs), and its val_loss.
    best_epoch: int
    best_val_loss: float
    train_seconds: float
    samples_per_second: float
    # Epochs restored from a checkpoint (0: trained from scratch).
    resumed_epochs: int = 0
    selected_by: str = selection.VAL_LOSS
    # Whether the returned model has the best epoch's weights (train.keep_best), else the last's.
    kept_best: bool = True
    # Seconds spent decoding the validation sentences to select by (not in train_seconds).
    decode_seconds: float = 0.0

    @property
    def best_row(self) -> dict[str, float]:
        """The history row of the best epoch."""
        return self.history[self.best_epoch - 1]

    @property
    def summary(self) -> dict[str, float | int | str]:
        """The figures of ``metrics/train.json``.

        ``best_epoch`` is the best epoch by ``selected_by``; ``best_val_loss`` (and, when it was
        decoded, ``best_val_chrf`` and ``best_val_char_accuracy``) are that epoch's figures;
        ``kept_epoch`` is the epoch whose weights the saved model has (``train.keep_best``).
        """
        best = self.best_row
        scores = {
            f"best_{column}": best[column]
            for column in selection.SCORE_COLUMNS.values()
            if column in best
        }
        return {
            "final_val_loss": self.history[-1]["val_loss"],
            "selected_by": self.selected_by,
            "best_val_loss": self.best_val_loss,
            **scores,
            "best_epoch": self.best_epoch,
            "kept_epoch": self.best_epoch if self.kept_best else len(self.history),
            "epochs_run": len(self.history),
            "train_seconds": round(self.train_seconds, 2),
            "samples_per_second": round(self.samples_per_second, 1),
            "validation_decode_seconds": round(self.decode_seconds, 2),
            "parameter_count": self.model.count_params(),
            "trainable_parameter_count": int(
                sum(np.prod(w.shape) for w in self.model.trainable_weights)
            ),
        }


MODEL_WEIGHTS = "model.weights.h5"  # weights and optimizer state after the epoch
BEST_WEIGHTS = "best.npz"  # the keep-best weights


class _EpochRecorder(keras.callbacks.Callback):
    """One history row per epoch, the weights of the best epoch, early stopping, checkpoints.

    The best epoch is the one with the lowest val_loss (``select_by`` val_loss), or with the
    highest translation score among the epochs ``scorer`` decoded (``charmt.training.selection``).
    Everything it knows is in ``state()`` and its two weight files, so a resumed run carries on
    exactly where the interrupted one stopped.
    """

    def __init__(
        self,
        batches: LengthBatches,
        patience: int | None,
        on_epoch: Callable[[dict[str, float]], None] | None,
        checkpoints: Checkpoints | None,
        checkpoint_extra: Mapping[str, Any],
        select_by: str = selection.VAL_LOSS,
        scorer: Callable[[], selection.Scores] | None = None,
        select_every: int = 1,
        last_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []
        # The best epoch's select_by figure (None: no candidate epoch yet) and its number.
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.train_seconds = 0.0
        self.decode_seconds = 0.0
        self.stopped = False
        self._batches = batches
        self._patience = patience
        self._on_epoch = on_epoch
        self._checkpoints = checkpoints
        self._extra = dict(checkpoint_extra)
        self._select_by = select_by
        self._criterion = selection.criterion_column(select_by)
        self._scorer = scorer
        self._select_every = select_every
        self._last_epoch = last_epoch

    def state(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds,
            "decode_seconds": self.decode_seconds,
            "stopped": self.stopped,
            "extra": self._extra,
        }

    def restore(self, checkpoint: Checkpoint) -> None:
        """Take over the state and weights of ``checkpoint`` (the model must be compiled)."""
        state = checkpoint.state
        self.rows = [dict(row) for row in state["rows"]]
        best = state["best_value"]
        self.best_value = None if best is None else float(best)
        self.best_epoch = int(state["best_epoch"])
        self.train_seconds = float(state["train_seconds"])
        self.decode_seconds = float(state["decode_seconds"])
        self.stopped = bool(state["stopped"])
        # Optimizer variables exist only once built; load_weights restores them too.
        self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(checkpoint.directory / MODEL_WEIGHTS)
        best = checkpoint.directory / BEST_WEIGHTS
        if best.is_file():
            with np.load(best) as arrays:
                self.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._batches.epoch = epoch  # the shuffle of epoch k is the same, resumed or not
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
        row.update({k: float(logs[k]) for k in ("loss", "val_loss", "accuracy", "val_accuracy")})
        row["train_seconds"] = round(train_seconds, 3)
        # An epoch is a candidate when its select_by figure exists: always for val_loss, only
        # for the decoded epochs for a score (a diverged epoch is not decoded: TerminateOnNaN
        # ends the run anyway).
        candidate = self._scorer is None
        if (
            self._scorer is not None
            and math.isfinite(row["loss"])
            and selection.is_scored_epoch(row["epoch"], self._select_every, self._last_epoch)
        ):
            scores = self._scorer()
            self.decode_seconds += scores.seconds
            row.update(scores.columns())
            candidate = True
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        self.rows.append(row)
        value = row.get(self._criterion)
        if (
            candidate
            and value is not None
            and math.isfinite(value)
            and selection.is_better(self._select_by, value, self.best_value)
        ):
            self.best_value, self.best_epoch = value, row["epoch"]
            self.best_weights = self.model.get_weights()
        # Keras' EarlyStopping, kept here so that its state is in the checkpoint: stop after
        # `patience` epochs without a better select_by figure. Decided at candidate epochs only:
        # stopping at an epoch that was not scored would give up before the last chance to
        # improve, so patience counts as if rounded up to a multiple of select_every.
        patience = self._patience
        if (
            patience is not None
            and candidate
            and epoch > 0
            and row["epoch"] - self.best_epoch >= patience
        ):
            self.stopped = True
            self.model.stop_training = True
        # Checkpoint before reporting: a run killed in between re-reports this epoch on resume
        # (see charmt.tracking.complete_run) rather than training it twice. A diverged
        # epoch is not worth resuming from.
        if self._checkpoints is not None and math.isfinite(row["loss"]):
            self._checkpoints.save(row["epoch"], self.state(), self._write_weights)
        if self._on_epoch is not None:
            self._on_epoch(row)

    def _write_weights(self, directory: Path) -> None:
        self.model.save_weights(directory / MODEL_WEIGHTS)
        if self.best_weights is not None:
            np.savez(
                directory / BEST_WEIGHTS,
                **{f"w{i}": w for i, w in enumerate(self.best_weights)},
            )


def train_model(
    train_pairs: Sequence[Pair],
    validation_pairs: Sequence[Pair],
    vocabularies: Vocabularies,
    params: TrainParams,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    verbose: int = 2,
    checkpoints: Checkpoints | None = None,
    checkpoint_extra: Mapping[str, Any] | None = None,
    architecture: ModelParams | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Build, compile and fit the model of ``architecture`` (default: the seed's); ``on_epoch``
    receives each epoch's history row.

    With ``params.keep_best`` the returned model has the weights of the best epoch, while the
    history covers every epoch run. The best epoch is the one with the lowest val_loss, or with
    ``params.select_by`` chrf / char_accuracy the one whose greedy translations of the validation
    sentences score highest, among the epochs decoded (every ``params.select_every``-th and the
    last, ``params.epochs``; ``charmt.training.selection``). ``params.early_stopping_patience``
    counts epochs since the best by the same criterion.

    With ``checkpoints``, a checkpoint is written after every epoch (``checkpoint_extra``,
    JSON-able, goes into it, e.g. the MLflow run id), and training starts from the latest one
    when there is one: the result (history, best epoch, weights) is then the same, within float
    tolerance, as that of a run that was never interrupted. ``on_epoch`` is called for new
    epochs only. The caller removes the checkpoints once it has stored the result.

    ``callbacks`` are further Keras callbacks, run after the one that records each epoch (so an
    epoch's history row exists when their ``on_epoch_end`` runs), e.g. to score while training.
    """
    if not validation_pairs:
        raise CharmtError(
            "the validation split is empty; set preprocess.validation_fraction above 0"
        )
    if architecture is not None and architecture.architecture == "transformer":
        check_fits(
            architecture,
            max(len(p.source) for p in (*train_pairs, *validation_pairs)),
            max(len(p.target) for p in (*train_pairs, *validation_pairs)),
        )
    keras.utils.set_random_seed(params.seed)
    model = build_model(
        vocabularies.source.size,
        vocabularies.target.size,
        params.latent_dim,
        params.training_precision,
        architecture,
    )
    compile_model(model, params)
    train_batches = LengthBatches(
        EncodedPairs.encode(train_pairs, vocabularies),
        params.batch_size,
        chunk_batches=params.sort_chunk_batches,
        seed=params.seed,
    )
    validation_batches = LengthBatches(
        EncodedPairs.encode(validation_pairs, vocabularies), params.batch_size, shuffle=False
    )
    scorer = None
    if params.select_by != selection.VAL_LOSS:
        # Built once, before training: its decoding loop is traced at the first scored epoch and
        # reused, and it reads the training model's weights as they are at each call.
        scorer = selection.ValidationScorer(model, vocabularies, train_pairs, validation_pairs)
    recorder = _EpochRecorder(
        train_batches,
        params.early_stopping_patience,
        on_epoch,
        checkpoints,
        checkpoint_extra or {},
        select_by=params.select_by,
        scorer=scorer,
        select_every=params.select_every,
        last_epoch=params.epochs,
    )
    recorder.set_model(model)
    resumed = checkpoints.latest() if checkpoints is not None else None
    if resumed is not None:
        recorder.restore(resumed)
    initial_epoch = len(recorder.rows)
    if initial_epoch < params.epochs and not recorder.stopped:
        model.fit(
            to_dataset(train_batches),
            validation_data=to_dataset(validation_batches),
            epochs=params.epochs,
            initial_epoch=initial_epoch,
            callbacks=[recorder, keras.callbacks.TerminateOnNaN(), *callbacks],
            verbose=verbose,
            shuffle=False,  # LengthBatches shuffles; Keras cannot shuffle a tf.data dataset
        )
    last = recorder.rows[-1] if recorder.rows else None
    if last is None or not all(math.isfinite(last[k]) for k in ("loss", "val_loss")):
        epoch = len(recorder.rows) + (last is None)
        raise CharmtError(
            f"training diverged: the loss became NaN or infinite in epoch {epoch}; "
            f"lower train.learning_rate (now {params.learning_rate}) and run again"
        )
    # No candidate epoch only when another callback stopped training before the first scored
    # epoch: the model then has the last epoch's weights, so that is the epoch named.
    best_epoch = recorder.best_epoch or len(recorder.rows)
    if params.keep_best and recorder.best_weights is not None:
        model.set_weights(recorder.best_weights)
    trained_samples = len(train_pairs) * len(recorder.rows)
    return TrainResult(
        model=model,
        history=recorder.rows,
        best_epoch=best_epoch,
        best_val_loss=recorder.rows[best_epoch - 1]["val_loss"],
        train_seconds=recorder.train_seconds,
        samples_per_second=trained_samples / max(recorder.train_seconds, 1e-9),
        resumed_epochs=initial_epoch,
        selected_by=params.select_by,
        kept_best=params.keep_best,
        decode_seconds=recorder.decode_seconds,
    )
