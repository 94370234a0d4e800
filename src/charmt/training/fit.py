"""Training: the fit loop over the train stage's parameters, and what it measured.

The loop is Keras' own ``fit`` over length-grouped batches (``charmt.data.batches``), with small
callbacks for what the Keras example lacked, each in its own module: the history rows and their
timing (``history``), keeping the best epoch's weights, by val_loss or by a translation score of
the validation sentences (``best_epoch``, ``selection``), early stopping (``early_stopping``),
stopping with a clear error on a NaN loss, an optional hook that reports each epoch (to MLflow),
and an optional checkpoint after each epoch (``resume``, ``checkpoint``) from which an interrupted
run resumes with the same batches, weights, optimizer state and history as a run that never
stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from charmt.data.batches import EncodedPairs, LengthBatches, to_dataset
from charmt.data.pairs import Pair
from charmt.data.vocabulary import Vocabularies
from charmt.errors import CharmtError
from charmt.models.architectures import build_model, check_fits
from charmt.models.optimization import compile_model
from charmt.params import ModelParams, TrainParams
from charmt.training import selection
from charmt.training.best_epoch import BestEpoch
from charmt.training.checkpoint import Checkpoints
from charmt.training.early_stopping import EarlyStopping
from charmt.training.history import HISTORY_COLUMNS, EpochHistory
from charmt.training.resume import CheckpointEachEpoch

__all__ = ["HISTORY_COLUMNS", "TrainParams", "TrainResult", "train_model"]


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


class _ShuffleByEpoch(keras.callbacks.Callback):
    """Tells the training batches which epoch starts: the shuffle of epoch k is then the same
    whether the run resumed or not."""

    def __init__(self, batches: LengthBatches) -> None:
        super().__init__()
        self._batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._batches.epoch = epoch


@dataclass
class _Recording:
    """The callbacks that record a run: each reads what the ones before it found of the epoch
    (the history row, the best epoch), and the checkpoint saves what they all know."""

    history: EpochHistory
    best: BestEpoch
    stopping: EarlyStopping
    checkpointing: CheckpointEachEpoch | None

    @classmethod
    def of(
        cls,
        params: TrainParams,
        scorer: selection.ValidationScorer | None,
        checkpoints: Checkpoints | None,
        checkpoint_extra: Mapping[str, Any] | None,
    ) -> _Recording:
        history = EpochHistory(scorer, params.select_every, last_epoch=params.epochs)
        best = BestEpoch(history, params.select_by)
        stopping = EarlyStopping(history, best, params.early_stopping_patience)
        checkpointing = None
        if checkpoints is not None:
            extra = checkpoint_extra or {}
            checkpointing = CheckpointEachEpoch(checkpoints, extra, history, best, stopping)
        return cls(history, best, stopping, checkpointing)

    def resume(self, model: keras.Model) -> None:
        """Take over the latest checkpoint, if there is one (``model`` must be compiled)."""
        if self.checkpointing is not None:
            self.checkpointing.resume(model)

    def callbacks(
        self, on_epoch: Callable[[dict[str, float]], None] | None
    ) -> list[keras.callbacks.Callback]:
        """In the order Keras must call them; ``on_epoch`` gets each row once it is saved."""
        recorders: list[keras.callbacks.Callback] = [self.history, self.best, self.stopping]
        if self.checkpointing is not None:
            recorders.append(self.checkpointing)
        if on_epoch is not None:
            report = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(self.history.last)
            )
            recorders.append(report)
        return recorders


def train_model(
    train_pairs: Sequence[Pair],
    validation_pairs: Sequence[Pair],
    vocabularies: Vocabularies,
    params: TrainParams,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    verbose: int = 2,
    checkpoints: Checkpoints | None = None,
    checkpoint_extra: Mapping[str, Any] | None = None,
    model_params: ModelParams | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Build, compile and fit the model of ``model_params`` (default: the Keras example's);
    ``on_epoch`` receives each new epoch's history row.

    With ``params.keep_best`` the returned model has the weights of the best epoch (by val_loss,
    or by ``params.select_by`` among the decoded epochs: ``charmt.training.best_epoch``); the
    history covers every epoch run. ``params.early_stopping_patience`` counts epochs since it.

    With ``checkpoints``, a checkpoint (with ``checkpoint_extra``, JSON-able, e.g. the MLflow run
    id) is written after every epoch, and training starts from the latest one: the result is then
    the same, within float tolerance, as that of a run never interrupted. The caller removes the
    checkpoints once it has stored the result.

    ``callbacks`` run after the ones that record each epoch (so an epoch's history row exists
    when their ``on_epoch_end`` runs), e.g. to score while training.
    """
    if not validation_pairs:
        raise CharmtError(
            "the validation split is empty; set preprocess.validation_fraction above 0"
        )
    check_fits(
        model_params or ModelParams(),
        max(len(p.source) for p in (*train_pairs, *validation_pairs)),
        max(len(p.target) for p in (*train_pairs, *validation_pairs)),
    )
    model = _compiled_model(vocabularies, params, model_params)
    scorer = None
    if params.select_by != selection.VAL_LOSS:
        # Built once, before training: its decoding loop is traced at the first scored epoch and
        # reused, and it reads the training model's weights as they are at each call.
        scorer = selection.ValidationScorer(model, vocabularies, train_pairs, validation_pairs)
    recording = _Recording.of(params, scorer, checkpoints, checkpoint_extra)
    recording.resume(model)
    resumed_epochs = len(recording.history.rows)
    if resumed_epochs < params.epochs and not recording.stopping.stopped:
        _fit(
            model,
            _length_batches(train_pairs, validation_pairs, vocabularies, params),
            epochs=range(resumed_epochs, params.epochs),
            recorders=recording.callbacks(on_epoch),
            callbacks=callbacks,
            verbose=verbose,
        )
    return _result(model, params, recording, len(train_pairs), resumed_epochs)


def _compiled_model(
    vocabularies: Vocabularies, params: TrainParams, model_params: ModelParams | None
) -> keras.Model:
    """The untrained model, its weights drawn from ``params.seed``, compiled for training."""
    keras.utils.set_random_seed(params.seed)
    model = build_model(
        vocabularies.source.size,
        vocabularies.target.size,
        params.latent_dim,
        params.training_precision,
        model_params,
    )
    compile_model(model, params)
    return model


def _fit(
    model: keras.Model,
    batches: tuple[LengthBatches, LengthBatches],
    *,
    epochs: range,
    recorders: Sequence[keras.callbacks.Callback],
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int,
) -> None:
    """Keras' fit over the (training, validation) ``batches``, for the (0-based) ``epochs``;
    the caller's ``callbacks`` run after the ``recorders``, so they see each epoch recorded."""
    train_batches, validation_batches = batches
    model.fit(
        to_dataset(train_batches),
        validation_data=to_dataset(validation_batches),
        epochs=epochs.stop,
        initial_epoch=epochs.start,
        callbacks=[
            _ShuffleByEpoch(train_batches),
            *recorders,
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
        ],
        verbose=verbose,
        shuffle=False,  # LengthBatches shuffles; Keras cannot shuffle a tf.data dataset
    )


def _length_batches(
    train_pairs: Sequence[Pair],
    validation_pairs: Sequence[Pair],
    vocabularies: Vocabularies,
    params: TrainParams,
) -> tuple[LengthBatches, LengthBatches]:
    """The training batches (shuffled by seed and epoch) and the validation ones (in order)."""
    train_batches = LengthBatches(
        EncodedPairs.encode(train_pairs, vocabularies),
        params.batch_size,
        chunk_batches=params.sort_chunk_batches,
        seed=params.seed,
    )
    validation_batches = LengthBatches(
        EncodedPairs.encode(validation_pairs, vocabularies), params.batch_size, shuffle=False
    )
    return train_batches, validation_batches


def _result(
    model: keras.Model,
    params: TrainParams,
    recording: _Recording,
    train_pair_count: int,
    resumed_epochs: int,
) -> TrainResult:
    """The model, with the best epoch's weights under ``params.keep_best``, and its figures;
    a clear error if the last epoch diverged."""
    rows = recording.history.rows
    last = rows[-1] if rows else None
    if last is None or not all(math.isfinite(last[k]) for k in ("loss", "val_loss")):
        epoch = len(rows) + (last is None)
        raise CharmtError(
            f"training diverged: the loss became NaN or infinite in epoch {epoch}; "
            f"lower train.learning_rate (now {params.learning_rate}) and run again"
        )
    # No candidate epoch only when another callback stopped training before the first scored
    # epoch: the model then has the last epoch's weights, so that is the epoch named.
    best_epoch = recording.best.epoch or len(rows)
    if params.keep_best and recording.best.weights is not None:
        model.set_weights(recording.best.weights)
    train_seconds = recording.history.train_seconds
    return TrainResult(
        model=model,
        history=rows,
        best_epoch=best_epoch,
        best_val_loss=rows[best_epoch - 1]["val_loss"],
        train_seconds=train_seconds,
        samples_per_second=train_pair_count * len(rows) / max(train_seconds, 1e-9),
        resumed_epochs=resumed_epochs,
        selected_by=params.select_by,
        kept_best=params.keep_best,
        decode_seconds=recording.history.decode_seconds,
    )
