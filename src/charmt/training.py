"""Training: the train stage's parameters, the fit loop, and what it measured.

The loop is Keras' own ``fit`` over length-grouped batches (``charmt.batches``), with small
callbacks for what the seed lacked: per-epoch timing, keeping the best epoch's weights, stopping
with a clear error on a NaN loss, and an optional hook that reports each epoch (to MLflow).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from charmt.batches import EncodedPairs, LengthBatches
from charmt.data import Pair
from charmt.errors import CharmtError
from charmt.model import ModelParams, build_model, build_optimizer, compile_model
from charmt.vocab import Vocabularies

# seconds: the whole epoch; train_seconds: its training part, without validation.
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "seconds",
    "train_seconds",
)


@dataclass(frozen=True)
class TrainParams:
    """The ``train`` section of params.yaml; the defaults reproduce the seed."""

    latent_dim: int = 256
    batch_size: int = 64
    epochs: int = 100
    learning_rate: float = 0.001
    decay: float = 0.0
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-07
    centered: bool = False
    training_precision: str = "float32"
    keep_best: bool = True
    early_stopping_patience: int | None = None
    sort_chunk_batches: int = 32
    seed: int = 42

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainParams:
        """Params from a params.yaml section; unknown keys are an error, missing ones default."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CharmtError(
                f"params.yaml: unknown train params {unknown}; known: {sorted(known)}"
            )
        params = cls(**values)
        for name in ("latent_dim", "batch_size", "epochs"):
            if not isinstance(getattr(params, name), int) or getattr(params, name) < 1:
                raise CharmtError(
                    f"train.{name} must be a positive integer, got {getattr(params, name)!r}"
                )
        return params


@dataclass
class TrainResult:
    """A trained model and the figures of its training."""

    model: keras.Model
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    train_seconds: float
    samples_per_second: float

    @property
    def summary(self) -> dict[str, float | int]:
        """The figures of ``metrics/train.json``."""
        return {
            "final_val_loss": self.history[-1]["val_loss"],
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "train_seconds": round(self.train_seconds, 2),
            "samples_per_second": round(self.samples_per_second, 1),
            "parameter_count": self.model.count_params(),
            "trainable_parameter_count": int(
                sum(np.prod(w.shape) for w in self.model.trainable_weights)
            ),
        }


def to_dataset(batches: LengthBatches) -> tf.data.Dataset:
    """A tf.data view of ``batches``; every pass over it (every epoch) reshuffles."""
    ids = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=({"encoder_ids": ids, "decoder_ids": ids}, ids),
    )
    # A generator has no known length; without it Keras warns that the input "ran out of data".
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


class _EpochRecorder(keras.callbacks.Callback):
    """Collects one history row per epoch and keeps the weights of the lowest val_loss."""

    def __init__(self, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.train_seconds = 0.0
        self._on_epoch = on_epoch

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
        row.update({k: float(logs[k]) for k in ("loss", "val_loss", "accuracy", "val_accuracy")})
        row["seconds"] = round(now - self._epoch_start, 3)
        row["train_seconds"] = round(train_seconds, 3)
        self.rows.append(row)
        if row["val_loss"] < self.best_val_loss:
            self.best_val_loss, self.best_epoch = row["val_loss"], row["epoch"]
            self.best_weights = self.model.get_weights()
        if self._on_epoch is not None:
            self._on_epoch(row)


def train_model(
    train_pairs: Sequence[Pair],
    validation_pairs: Sequence[Pair],
    vocabularies: Vocabularies,
    params: TrainParams,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    verbose: int = 2,
    architecture: ModelParams | None = None,
) -> TrainResult:
    """Build, compile and fit the model of ``architecture`` (default: the seed's); ``on_epoch``
    receives each epoch's history row.

    With ``params.keep_best`` the returned model has the weights of the epoch with the lowest
    val_loss, while the history covers every epoch run.
    """
    if not validation_pairs:
        raise CharmtError(
            "the validation split is empty; set preprocess.validation_fraction above 0"
        )
    keras.utils.set_random_seed(params.seed)
    model = build_model(
        vocabularies.source.size,
        vocabularies.target.size,
        params.latent_dim,
        params.training_precision,
        architecture,
    )
    compile_model(
        model,
        build_optimizer(
            params.learning_rate,
            params.decay,
            params.rho,
            params.momentum,
            params.epsilon,
            params.centered,
        ),
    )
    train_batches = LengthBatches(
        EncodedPairs.encode(train_pairs, vocabularies),
        params.batch_size,
        chunk_batches=params.sort_chunk_batches,
        seed=params.seed,
    )
    validation_batches = LengthBatches(
        EncodedPairs.encode(validation_pairs, vocabularies), params.batch_size, shuffle=False
    )
    recorder = _EpochRecorder(on_epoch)
    callbacks: list[keras.callbacks.Callback] = [recorder, keras.callbacks.TerminateOnNaN()]
    if params.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=params.early_stopping_patience
            )
        )
    model.fit(
        to_dataset(train_batches),
        validation_data=to_dataset(validation_batches),
        epochs=params.epochs,
        callbacks=callbacks,
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
    if params.keep_best and recorder.best_weights is not None:
        model.set_weights(recorder.best_weights)
    trained_samples = len(train_pairs) * len(recorder.rows)
    return TrainResult(
        model=model,
        history=recorder.rows,
        best_epoch=recorder.best_epoch,
        best_val_loss=recorder.best_val_loss,
        train_seconds=recorder.train_seconds,
        samples_per_second=trained_samples / max(recorder.train_seconds, 1e-9),
    )
