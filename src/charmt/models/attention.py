"""``model.architecture: attention``: the Keras example's character LSTMs plus Luong-style
attention (Luong et al. 2015, without input feeding, so one decoder step is still the plain LSTM
cell plus the layers after it).

At each decoder step the decoder's output looks over all the encoder's outputs (padding masked),
and ``tanh(W [context; output])`` feeds the softmax. ``model.attention`` picks Luong's dot score
or Bahdanau's additive one; ``model.bidirectional`` reads the English both ways.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from charmt.data.vocabulary import PAD
from charmt.errors import CharmtError
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

NAME = "attention"


def build(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
    model_params: ModelParams | None = None,
) -> keras.Model:
    """The Keras example's LSTMs with attention over the encoder's outputs. ``model.dropout``:
    on each LSTM's inputs while training, as in the Keras example's model."""
    model_params = model_params or ModelParams(architecture=NAME)
    if model_params.bidirectional and latent_dim % 2:
        raise CharmtError(
            f"model.bidirectional needs an even train.latent_dim (half each way), got {latent_dim}"
        )
    dropout = model_params.dropout
    # Encoder: reads the English characters and keeps every output, plus its final states.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_inputs = one_hot(source_vocabulary_size, "encoder_one_hot", precision)(encoder_ids)
    encode = _bidirectional_encoder if model_params.bidirectional else _encoder
    encoder_outputs, state_h, state_c = encode(encoder_inputs, latent_dim, precision, dropout)

    # Decoder: the Keras example's, started from the encoder's states, fed the shifted French.
    decoder_ids, decoder_outputs = lstm_decoder(
        target_vocabulary_size, latent_dim, precision, dropout, [state_h, state_c]
    )

    # Attention: each decoder output weighs the encoder's outputs. Keras passes both masks on, so
    # encoder padding gets no weight and the output keeps the decoder's mask for the loss.
    context = attention_layer(model_params.attention, precision)([decoder_outputs, encoder_outputs])
    combined = layers.Concatenate(name="attention_concat", dtype=precision)(
        [context, decoder_outputs]
    )
    attentional = layers.Dense(
        latent_dim, activation="tanh", name="attention_hidden", dtype=precision
    )(combined)
    next_char = next_char_head(target_vocabulary_size)(attentional)

    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt_attention")


def _encoder(encoder_inputs, latent_dim: int, precision: str, dropout: float) -> list:
    """One LSTM: [its output at every step, final h, final c]."""
    return layers.LSTM(
        latent_dim,
        return_sequences=True,
        return_state=True,
        dropout=dropout,
        name="encoder_lstm",
        dtype=precision,
    )(encoder_inputs)


def _bidirectional_encoder(encoder_inputs, latent_dim: int, precision: str, dropout: float) -> list:
    """Half the units each way: [the concatenated outputs, h and c of both ways concatenated], so
    the states still fit the decoder's ``latent_dim``."""
    encoder_outputs, forward_h, forward_c, backward_h, backward_c = layers.Bidirectional(
        layers.LSTM(
            latent_dim // 2,
            return_sequences=True,
            return_state=True,
            dropout=dropout,
            dtype=precision,
        ),
        name="encoder_lstm",
        dtype=precision,
    )(encoder_inputs)
    state_h = layers.Concatenate(name="encoder_h", dtype=precision)([forward_h, backward_h])
    state_c = layers.Concatenate(name="encoder_c", dtype=precision)([forward_c, backward_c])
    return [encoder_outputs, state_h, state_c]


def attention_layer(score: str, precision: str) -> layers.Layer:
    """Luong's dot-product score or Bahdanau's additive one."""
    if score == "additive":
        return layers.AdditiveAttention(name="attention", dtype=precision)
    return layers.Attention(name="attention", dtype=precision)


def recognises(model: keras.Model) -> bool:
    """An LSTM model with an attention layer."""
    return is_lstm_model(model) and any(layer.name == "attention" for layer in model.layers)


def params_of(model: keras.Model) -> ModelParams:
    additive = isinstance(model.get_layer("attention"), layers.AdditiveAttention)
    return ModelParams(
        architecture=NAME,
        attention="additive" if additive else "dot",
        bidirectional=isinstance(model.get_layer("encoder_lstm"), layers.Bidirectional),
        dropout=input_dropout(model),
    )


# --- inference: the trained layers, rewired ---------------------------------------------------


def encoder_model(model: keras.Model) -> keras.Model:
    """Encoder ids -> [h, c, encoder outputs]: the encoder's final states and every output.
    Shares the trained layers."""
    encoder_outputs = model.get_layer("encoder_lstm").output[0]
    if params_of(model).bidirectional:
        state_h, state_c = model.get_layer("encoder_h").output, model.get_layer("encoder_c").output
    else:
        _, state_h, state_c = model.get_layer("encoder_lstm").output
    return keras.Model(
        model.get_layer("encoder_ids").output, [state_h, state_c, encoder_outputs], name="encoder"
    )


def output_head(model: keras.Model, decoder_outputs, encoder_outputs, encoder_mask):
    """Next-character probabilities from decoder outputs (batch, steps, latent) with the trained
    layers after the decoder LSTM, attending over ``encoder_outputs`` where ``encoder_mask``
    (batch, source steps) is true. Works on symbolic and on concrete tensors."""
    context = model.get_layer("attention")(
        [decoder_outputs, encoder_outputs], mask=[None, encoder_mask]
    )
    combined = model.get_layer("attention_concat")([context, decoder_outputs])
    return model.get_layer("next_char")(model.get_layer("attention_hidden")(combined))


def decoder_step_model(model: keras.Model) -> keras.Model:
    """One decoder step: (ids, h, c, encoder outputs, encoder ids) -> (probabilities, h, c).
    Shares the trained layers."""
    inputs, (outputs, new_h, new_c) = decoder_step_wiring(model)
    memory_dim = model.get_layer("encoder_lstm").output[0].shape[-1]
    encoder_outputs = keras.Input(shape=(None, memory_dim), name="encoder_outputs")
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_mask = keras.ops.not_equal(encoder_ids, PAD)
    probabilities = output_head(model, outputs, encoder_outputs, encoder_mask)
    return keras.Model(
        [*inputs, encoder_outputs, encoder_ids], [probabilities, new_h, new_c], name="decoder_step"
    )


class AttentionStep(LSTMStep):
    """The batched one-step decoder: the decoder cell, then attention over the memory (the
    encoder's outputs and mask) and the softmax."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model, encoder_model(model))

    def memory(self, encoder_ids: tf.Tensor, encoder_outputs: list) -> tuple:
        return (*encoder_outputs, tf.not_equal(encoder_ids, PAD))

    def head(self, output: tf.Tensor, memory: tuple) -> tf.Tensor:
        # The head takes (rows, steps, latent): one step here.
        return output_head(self.model, output[:, None, :], *memory)[:, 0, :]


def sentence_step(model: keras.Model) -> LSTMSentenceStep:
    return LSTMSentenceStep(encoder_model(model), decoder_step_model(model))


ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    recognises=recognises,
    params_of=params_of,
    vocabulary_sizes=vocabulary_sizes,
    max_positions=no_position_limit,
    decoder_step=AttentionStep,
    sentence_step=sentence_step,
    check_fits=fits_any_length,
)
