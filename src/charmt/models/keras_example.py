"""``model.architecture: keras_example``, the default: the classic keras-io character-level LSTM
encoder-decoder ("Character-level recurrent sequence-to-sequence model"), unchanged but for its
inputs (character ids through a frozen one-hot embedding, ``charmt.models.lstm_parts``).

The encoder reads the English characters and keeps only its final states; the decoder starts from
them and, fed the French text shifted one step (teacher forcing), predicts each next character.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from charmt.models.interface import Architecture, fits_any_length
from charmt.models.lstm_parts import (
    LSTMSentenceStep,
    LSTMStep,
    decoder_step_wiring,
    input_dropout,
    is_lstm_model,
    lstm_decoder,
    next_char_head,
    no_position_limit,
    one_hot,
    vocabulary_sizes,
)
from charmt.params import ModelParams

NAME = "keras_example"


def build(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
    model_params: ModelParams | None = None,
) -> keras.Model:
    """The Keras example's model. The LSTMs keep Keras' default activations and no recurrent
    dropout, which lets Keras use the fused cuDNN kernel on a GPU; ``model.dropout`` drops a share
    of each LSTM's inputs while training (0: the Keras example's)."""
    dropout = (model_params or ModelParams()).dropout
    # Encoder: reads the English characters and keeps only its final states.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_inputs = one_hot(source_vocabulary_size, "encoder_one_hot", precision)(encoder_ids)
    _, state_h, state_c = layers.LSTM(
        latent_dim, return_state=True, dropout=dropout, name="encoder_lstm", dtype=precision
    )(encoder_inputs)

    # Decoder: starts from the encoder's states and, fed the French text shifted one step
    # (teacher forcing), predicts each next character.
    decoder_ids, decoder_outputs = lstm_decoder(
        target_vocabulary_size, latent_dim, precision, dropout, [state_h, state_c]
    )
    next_char = next_char_head(target_vocabulary_size)(decoder_outputs)

    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt")


def recognises(model: keras.Model) -> bool:
    """An LSTM model without attention."""
    return is_lstm_model(model) and not any(layer.name == "attention" for layer in model.layers)


def params_of(model: keras.Model) -> ModelParams:
    return ModelParams(architecture=NAME, dropout=input_dropout(model))


# --- inference: the trained layers, rewired ---------------------------------------------------


def encoder_model(model: keras.Model) -> keras.Model:
    """Encoder ids -> the encoder's final [h, c] states. Shares the trained layers."""
    _, state_h, state_c = model.get_layer("encoder_lstm").output
    return keras.Model(model.get_layer("encoder_ids").output, [state_h, state_c], name="encoder")


def decoder_step_model(model: keras.Model) -> keras.Model:
    """One decoder step, the Keras example's inference model: (ids, h, c) -> (probabilities, h,
    c). Shares the trained layers."""
    inputs, (outputs, new_h, new_c) = decoder_step_wiring(model)
    probabilities = model.get_layer("next_char")(outputs)
    return keras.Model(inputs, [probabilities, new_h, new_c], name="decoder_step")


class KerasExampleStep(LSTMStep):
    """The batched one-step decoder: the decoder cell, then the softmax; no memory, as the
    decoder sees the encoder only through its states."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model, encoder_model(model))
        self.next_char = model.get_layer("next_char")

    def head(self, output: tf.Tensor, memory: tuple) -> tf.Tensor:
        return self.next_char(output)


def sentence_step(model: keras.Model) -> LSTMSentenceStep:
    return LSTMSentenceStep(encoder_model(model), decoder_step_model(model))


ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    recognises=recognises,
    params_of=params_of,
    vocabulary_sizes=vocabulary_sizes,
    max_positions=no_position_limit,
    decoder_step=KerasExampleStep,
    sentence_step=sentence_step,
    check_fits=fits_any_length,
)
