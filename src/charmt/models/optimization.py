"""How the model is optimised: the optimizer of the ``train`` params, its schedule, the loss.

The defaults are the Keras example's: RMSprop at a constant 0.001 and plain sparse
cross-entropy. The schedule and the loss are registered Keras objects, because ``model.keras`` is
saved with its compiled optimizer and loss and is read back in safe mode
(``charmt.models.modeldir``), which only rebuilds classes it knows by name: import this module
before loading a model.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from charmt.errors import CharmtError
from charmt.params import TrainParams

__all__ = [
    "InverseSqrtSchedule",
    "SmoothedSparseCrossentropy",
    "build_optimizer",
    "compile_model",
    "learning_rate_for",
    "loss_for",
]


@keras.saving.register_keras_serializable(package="charmt")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate`` over ``warmup_steps``, then decay with the inverse
    square root of the step (Vaswani et al. 2017):
    ``learning_rate * min(step / warmup_steps, sqrt(warmup_steps / step))``, step counted from 1.

    Keras calls the schedule with the optimizer's ``iterations`` *before* the update it applies
    (0 for the first), hence the +1: the first update uses ``learning_rate / warmup_steps``, not 0.
    The iterations are saved with the optimizer's variables, so a resumed training continues the
    schedule where it stopped.
    """

    def __init__(self, learning_rate: float, warmup_steps: int) -> None:
        if warmup_steps < 1:
            raise CharmtError(f"train.warmup_steps must be >= 1, got {warmup_steps}")
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32") + 1.0
        warmup = ops.cast(self.warmup_steps, "float32")
        factor = ops.minimum(step / warmup, ops.sqrt(warmup / step))
        return self.learning_rate * factor

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def learning_rate_for(
    params: TrainParams,
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``params.learning_rate`` as ``params.schedule`` varies it; a plain float when constant.

    ``decay`` (constant schedule only) is Keras 2's per-step inverse-time decay,
    ``lr / (1 + decay * step)``; Keras 3 dropped the argument, and ``InverseTimeDecay`` with
    ``decay_steps=1`` is the same schedule.
    """
    if params.schedule == "inverse_sqrt":
        return InverseSqrtSchedule(params.learning_rate, params.warmup_steps)
    if params.decay > 0:
        return keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=params.learning_rate, decay_steps=1, decay_rate=params.decay
        )
    return params.learning_rate


def build_optimizer(params: TrainParams | None = None) -> keras.optimizers.Optimizer:
    """The optimizer of ``params`` (default: the Keras example's RMSprop) with its learning-rate
    schedule."""
    params = params or TrainParams()
    learning_rate = learning_rate_for(params)
    if params.optimizer in ("adam", "adamw"):
        moments = {"beta_1": params.beta_1, "beta_2": params.beta_2, "epsilon": params.epsilon}
        if params.optimizer == "adamw":
            return keras.optimizers.AdamW(
                learning_rate=learning_rate, weight_decay=params.weight_decay, **moments
            )
        return keras.optimizers.Adam(learning_rate=learning_rate, **moments)
    return keras.optimizers.RMSprop(
        learning_rate=learning_rate,
        rho=params.rho,
        momentum=params.momentum,
        epsilon=params.epsilon,
        centered=params.centered,
    )


@keras.saving.register_keras_serializable(package="charmt")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy against ``(1 - s) * one_hot(target) + s / V`` from integer targets.

    Keras 3's ``SparseCategoricalCrossentropy`` has no ``label_smoothing`` (only the one-hot
    ``CategoricalCrossentropy`` does, which would need dense targets). Expanded, the smoothed
    cross-entropy is ``(1 - s) * -log p[target] + s * mean_k(-log p[k])``, so no one-hot tensor
    is built. Being a ``Loss``, it is reduced by ``Loss.__call__``, which applies the mask on the
    model output: padding positions do not count, as with the Keras example's loss.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        name: str = "smoothed_sparse_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        # Clipped as Keras' own cross-entropies clip probabilities, so log(0) cannot occur.
        epsilon = keras.config.epsilon()
        log_p = ops.log(ops.clip(y_pred, epsilon, 1.0 - epsilon))
        targets = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_p, targets, axis=-1), -1)
        uniform = -ops.mean(log_p, axis=-1)
        s = self.label_smoothing
        return (1.0 - s) * nll + s * uniform

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def loss_for(label_smoothing: float = 0.0) -> str | keras.losses.Loss:
    """The training loss: the Keras example's sparse cross-entropy, or its label-smoothed form."""
    if label_smoothing == 0:
        return "sparse_categorical_crossentropy"
    return SmoothedSparseCrossentropy(label_smoothing)


def compile_model(model: keras.Model, params: TrainParams | None = None) -> None:
    """Compile with the optimizer and loss of ``params`` (default: the Keras example's) and
    accuracy; the output's mask limits loss and accuracy to real characters."""
    params = params or TrainParams()
    model.compile(
        optimizer=build_optimizer(params),
        loss=loss_for(params.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
