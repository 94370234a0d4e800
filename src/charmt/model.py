"""The model: the classic Keras character-level LSTM encoder-decoder.

Read top to bottom: inputs, encoder, decoder, output; then the optimiser; then the two inference
models built from the *same* layer objects, so training and inference cannot drift apart.

The seed fed one-hot arrays. Here the inputs are integer character ids and a frozen identity
embedding turns them into exactly those one-hot vectors, without ever materialising a dense
(pairs x length x vocabulary) array. Id 0 is padding: the embedding masks it, so the encoder's
states come from the last real character, and loss and accuracy count real target characters only.
"""

from __future__ import annotations

import keras
from keras import layers

from charmt.errors import CharmtError
from charmt.params import PRECISIONS


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


def build_model(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
) -> keras.Model:
    """The training model: (encoder ids, decoder input ids) -> next-character probabilities.

    The LSTMs keep Keras' default activations and no recurrent dropout, which lets Keras use the
    fused cuDNN kernel on a GPU.
    """
    if precision not in PRECISIONS:
        raise CharmtError(
            f"train.training_precision must be one of {PRECISIONS}, got {precision!r}"
        )

    # Encoder: reads the English characters and keeps only its final states.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_inputs = one_hot(source_vocabulary_size, "encoder_one_hot", precision)(encoder_ids)
    _, state_h, state_c = layers.LSTM(
        latent_dim, return_state=True, name="encoder_lstm", dtype=precision
    )(encoder_inputs)

    # Decoder: starts from the encoder's states and, fed the French text shifted one step
    # (teacher forcing), predicts each next character.
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    decoder_inputs = one_hot(target_vocabulary_size, "decoder_one_hot", precision)(decoder_ids)
    decoder_outputs, _, _ = layers.LSTM(
        latent_dim, return_sequences=True, return_state=True, name="decoder_lstm", dtype=precision
    )(decoder_inputs, initial_state=[state_h, state_c])
    # Softmax in float32 even under mixed precision, for a numerically sound loss.
    next_char = layers.Dense(
        target_vocabulary_size, activation="softmax", name="next_char", dtype="float32"
    )(decoder_outputs)

    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt")


def build_optimizer(
    learning_rate: float = 0.001,
    decay: float = 0.0,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-07,
    centered: bool = False,
) -> keras.optimizers.RMSprop:
    """RMSprop with the seed's hyperparameters.

    ``decay`` is Keras 2's per-step inverse-time decay, ``lr / (1 + decay * step)``; Keras 3 dropped
    the argument, and ``InverseTimeDecay`` with ``decay_steps=1`` is the same schedule.
    """
    if decay < 0:
        raise CharmtError(f"train.decay must be >= 0, got {decay}")
    schedule: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if decay > 0:
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=learning_rate, decay_steps=1, decay_rate=decay
        )
    return keras.optimizers.RMSprop(
        learning_rate=schedule, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered
    )


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Sparse cross-entropy and accuracy; the output's mask limits both to real characters."""
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def encoder_model(model: keras.Model) -> keras.Model:
    """Encoder ids -> the encoder's final [h, c] states, sharing the trained layers."""
    _, state_h, state_c = model.get_layer("encoder_lstm").output
    return keras.Model(model.get_layer("encoder_ids").output, [state_h, state_c], name="encoder")


def decoder_step_model(model: keras.Model) -> keras.Model:
    """One decoder step, the seed's inference model: (ids, h, c) -> (probabilities, h, c)."""
    decoder_lstm = model.get_layer("decoder_lstm")
    latent_dim = decoder_lstm.units
    ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    state_h = keras.Input(shape=(latent_dim,), name="state_h")
    state_c = keras.Input(shape=(latent_dim,), name="state_c")
    inputs = model.get_layer("decoder_one_hot")(ids)
    outputs, new_h, new_c = decoder_lstm(inputs, initial_state=[state_h, state_c])
    probabilities = model.get_layer("next_char")(outputs)
    return keras.Model([ids, state_h, state_c], [probabilities, new_h, new_c], name="decoder_step")
