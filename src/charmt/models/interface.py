"""What every architecture provides, so that training, decoding and the model directory never
ask which architecture a model is (``charmt.models.architectures`` is the one place that does).

An architecture module (``keras_example``, ``attention``, ``transformer``) fills in one
``Architecture``: its builder, how to read its params and sizes back from a built or loaded model,
and its two decode steps: the batched ``DecoderStep`` that the compiled greedy and beam loops of
``charmt.inference.decoding`` call, and the ``SentenceStep`` of the Keras example's way (one
sentence, one ``predict`` per character), the reference those loops must match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from charmt.params import ModelParams


class DecoderStep(Protocol):
    """One decoder step of a trained model for a batch of rows, inside ``tf.while_loop``.

    ``state`` is what changes from step to step (an LSTM's (h, c), a Transformer's key/value
    cache); ``memory`` is what the step reads but never changes (what it attends over).
    """

    vocabulary_size: int
    # The most positions the model has (the Transformer's max_length); None: no limit.
    max_length: int | None

    def start(self, encoder_ids: tf.Tensor) -> tuple[tuple, tuple]:
        """(initial state, memory) for right-padded encoder ids."""
        ...

    def state_shapes(self, state: tuple) -> tuple:
        """``tf.while_loop`` shape invariants of ``state``."""
        ...

    def __call__(
        self, token: tf.Tensor, step: tf.Tensor, state: tuple, memory: tuple
    ) -> tuple[tf.Tensor, tuple]:
        """(next-character probabilities (rows, vocabulary), new state) after feeding ``token``
        at position ``step``."""
        ...


class SentenceStep(Protocol):
    """One decoder step the Keras example's way: one sentence, ``predict`` calls, numpy."""

    def start(self, encoder_ids: np.ndarray) -> Any:
        """The state before the first character, for one unpadded sentence's ids."""
        ...

    def __call__(self, token: int, state: Any) -> tuple[np.ndarray, Any]:
        """(next-character probabilities (vocabulary,), new state) after feeding ``token``."""
        ...


@dataclass(frozen=True)
class Architecture:
    """One ``model.architecture``: everything the rest of charmt needs to know about it."""

    name: str
    # (source vocabulary size, target vocabulary size, latent_dim, precision, model params) ->
    # the training model (encoder ids, decoder input ids) -> next-character probabilities.
    build: Callable[[int, int, int, str, ModelParams], keras.Model]
    # Whether a built or loaded model is of this architecture (from its layers).
    recognises: Callable[[keras.Model], bool]
    # The model params a built or loaded model of this architecture has.
    params_of: Callable[[keras.Model], ModelParams]
    # The (source, target) vocabulary sizes the model was built for.
    vocabulary_sizes: Callable[[keras.Model], tuple[int, int]]
    # The longest sequence the model can read or write; None: any.
    max_positions: Callable[[keras.Model], int | None]
    decoder_step: Callable[[keras.Model], DecoderStep]
    sentence_step: Callable[[keras.Model], SentenceStep]
    # Refuses training data the architecture cannot learn (model params, longest source and
    # target), naming the fix.
    check_fits: Callable[[ModelParams, int, int], None]


def fits_any_length(model_params: ModelParams, longest_source: int, longest_target: int) -> None:
    """``check_fits`` of an architecture that reads and writes sequences of any length."""
