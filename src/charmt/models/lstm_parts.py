"""What the two LSTM architectures (``keras_example``, ``attention``) share: the one-hot input,
the decoder LSTM, the softmax head, and the decoder's one-step wiring for inference.

The Keras example fed one-hot arrays. Here the inputs are integer character ids and a frozen
identity embedding turns them into exactly those one-hot vectors, without ever materialising a
dense (pairs x length x vocabulary) array. Id 0 is padding: the embedding masks it, so the
encoder's states come from the last real character, attention never looks at padding, and loss
and accuracy count real target characters only.

Inference reuses the *same* layer objects as training (looked up by name in the trained model),
so training and inference cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def one_hot(vocabulary_size: int, name: str, dtype: str) -> layers.Embedding:
    """A frozen identity embedding: id ``i`` becomes the one-hot vector ``e_i``; id 0 is masked."""
    return layers.Embedding(
        vocabulary_size,
        vocabulary_size,
        embeddings_initializer="identity",
        trainable=False,
        mask_zero=True,
        name=name,
        dtype=dtype,
    )


def lstm_decoder(
    target_vocabulary_size: int,
    latent_dim: int,
    precision: str,
    dropout: float,
    initial_state: list,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The Keras example's decoder: the French ids shifted one step, one-hot, through an LSTM
    started from ``initial_state``; its input and its output at every step."""
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    decoder_inputs = one_hot(target_vocabulary_size, "decoder_one_hot", precision)(decoder_ids)
    decoder_outputs, _, _ = layers.LSTM(
        latent_dim,
        return_sequences=True,
        return_state=True,
        dropout=dropout,
        name="decoder_lstm",
        dtype=precision,
    )(decoder_inputs, initial_state=initial_state)
    return decoder_ids, decoder_outputs


def next_char_head(target_vocabulary_size: int) -> layers.Dense:
    """The next character's probabilities: a softmax in float32 even under mixed precision, for
    a numerically sound loss."""
    return layers.Dense(
        target_vocabulary_size, activation="softmax", name="next_char", dtype="float32"
    )


def is_lstm_model(model: keras.Model) -> bool:
    """Whether ``model`` has the LSTM decoder (``keras_example`` or ``attention``)."""
    return any(layer.name == "decoder_lstm" for layer in model.layers)


def input_dropout(model: keras.Model) -> float:
    """The dropout on the LSTMs' inputs: every LSTM gets the same; the decoder's is plain."""
    return float(model.get_layer("decoder_lstm").dropout)


def vocabulary_sizes(model: keras.Model) -> tuple[int, int]:
    """The (source, target) vocabulary sizes an LSTM model was built for."""
    source, target = (model.get_layer(f"{side}_one_hot") for side in ("encoder", "decoder"))
    return source.input_dim, target.input_dim


def no_position_limit(model: keras.Model) -> None:
    """An LSTM reads and writes sequences of any length."""
    return None


def decoder_step_wiring(model: keras.Model) -> tuple[list, list]:
    """The trained decoder LSTM on symbolic (ids, h, c): its [ids, h, c] inputs and its
    [outputs, new h, new c]; the architecture adds the layers after it."""
    decoder_lstm = model.get_layer("decoder_lstm")
    latent_dim = decoder_lstm.units
    ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    state_h = keras.Input(shape=(latent_dim,), name="state_h")
    state_c = keras.Input(shape=(latent_dim,), name="state_c")
    inputs = model.get_layer("decoder_one_hot")(ids)
    outputs, new_h, new_c = decoder_lstm(inputs, initial_state=[state_h, state_c])
    return [ids, state_h, state_c], [outputs, new_h, new_c]


class LSTMStep:
    """One decoder step for a batch of rows, with the trained layers of an LSTM architecture.

    ``state`` is the decoder cell's (h, c). ``memory`` is what the architecture's head reads
    besides the cell's output (``head``); ``encoder`` gives the initial state and the memory.
    """

    max_length: int | None = None  # an LSTM has no limit of positions

    def __init__(self, model: keras.Model, encoder: keras.Model) -> None:
        self.model = model
        self.encoder = encoder
        self.cell = model.get_layer("decoder_lstm").cell
        self.vocabulary_size = model.get_layer("decoder_one_hot").input_dim

    def start(self, encoder_ids: tf.Tensor) -> tuple[tuple, tuple]:
        """The decoder's initial state and the memory, for right-padded encoder ids."""
        state_h, state_c, *outputs = self.encoder(encoder_ids, training=False)
        return (state_h, state_c), self.memory(encoder_ids, outputs)

    def memory(self, encoder_ids: tf.Tensor, encoder_outputs: list) -> tuple:
        """What the head reads besides the cell's output; none by default."""
        return ()

    def head(self, output: tf.Tensor, memory: tuple) -> tf.Tensor:
        """Next-character probabilities (rows, vocabulary) from the cell's output (rows, units)."""
        raise NotImplementedError

    def state_shapes(self, state: tuple) -> tuple:
        """``tf.while_loop`` shape invariants of the state: (rows, units), rows open."""
        return tuple(tf.TensorShape([None, tensor.shape[-1]]) for tensor in state)

    def __call__(
        self, token: tf.Tensor, step: tf.Tensor, state: tuple, memory: tuple
    ) -> tuple[tf.Tensor, tuple]:
        """(next-character probabilities (rows, vocabulary), new state) after feeding ``token``
        (``step``, its position, does not matter to an LSTM)."""
        # tf.one_hot is the frozen identity embedding, without the mask it would attach.
        inputs = tf.one_hot(token, self.vocabulary_size, dtype=self.cell.compute_dtype)
        output, state = self.cell(inputs, list(state), training=False)
        return self.head(output, memory), tuple(state)


class LSTMSentenceStep:
    """The Keras example's inference: an encoder model and a one-step decoder model, each called
    with ``predict`` once per sentence or per character. The step model takes
    (ids, h, c, *extra) where ``extra`` is what the encoder returns after (h, c), and for
    attention the encoder ids too."""

    def __init__(self, encoder: keras.Model, step: keras.Model) -> None:
        self.encoder, self.step = encoder, step

    def start(self, encoder_ids: np.ndarray) -> tuple[Any, Any, list]:
        state_h, state_c, *memory = self.encoder.predict(encoder_ids[None, :], verbose=0)
        if memory:
            memory.append(encoder_ids[None, :])
        return state_h, state_c, memory

    def __call__(self, token: int, state: tuple[Any, Any, list]) -> tuple[np.ndarray, tuple]:
        state_h, state_c, memory = state
        probabilities, state_h, state_c = self.step.predict(
            [np.array([[token]], dtype=np.int32), state_h, state_c, *memory], verbose=0
        )
        return probabilities[0, -1], (state_h, state_c, memory)
