"""The model: the classic Keras character-level LSTM encoder-decoder, or the same with attention.

Two architectures (``model.architecture`` in params.yaml), one builder each, read top to bottom:
inputs, encoder, decoder, output. ``seed`` is the classic example unchanged. ``attention`` keeps
the same character LSTMs and adds Luong-style attention: at each decoder step the decoder's output
looks over all the encoder's outputs (padding masked), and ``tanh(W [context; output])`` feeds the
softmax. The inference models below are built from the *same* layer objects, so training and
inference cannot drift apart.

The seed fed one-hot arrays. Here the inputs are integer character ids and a frozen identity
embedding turns them into exactly those one-hot vectors, without ever materialising a dense
(pairs x length x vocabulary) array. Id 0 is padding: the embedding masks it, so the encoder's
states come from the last real character, attention never looks at padding, and loss and accuracy
count real target characters only.
"""

from __future__ import annotations

import keras
from keras import layers

from charmt.data.vocabulary import PAD
from charmt.errors import CharmtError
from charmt.models.transformer import (
    build_transformer_model,
    is_transformer,
    transformer_architecture,
)
from charmt.params import PRECISIONS, ModelParams


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
    architecture: ModelParams | None = None,
) -> keras.Model:
    """The training model of ``architecture`` (default: the seed's):
    (encoder ids, decoder input ids) -> next-character probabilities."""
    if precision not in PRECISIONS:
        raise CharmtError(
            f"train.training_precision must be one of {PRECISIONS}, got {precision!r}"
        )
    architecture = architecture or ModelParams()
    if architecture.architecture == "transformer":
        return build_transformer_model(
            source_vocabulary_size, target_vocabulary_size, architecture, precision
        )
    if architecture.architecture == "attention":
        return build_attention_model(
            source_vocabulary_size,
            target_vocabulary_size,
            latent_dim,
            precision,
            architecture.attention,
            architecture.bidirectional,
            architecture.dropout,
        )
    return build_seed_model(
        source_vocabulary_size, target_vocabulary_size, latent_dim, precision, architecture.dropout
    )


def build_seed_model(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
    dropout: float = 0.0,
) -> keras.Model:
    """The seed's model. The LSTMs keep Keras' default activations and no recurrent dropout,
    which lets Keras use the fused cuDNN kernel on a GPU; ``dropout`` drops a share of each
    LSTM's inputs while training (0: the seed's)."""
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


def lstm_decoder(
    target_vocabulary_size: int,
    latent_dim: int,
    precision: str,
    dropout: float,
    initial_state: list,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The seed's decoder: the French ids shifted one step, one-hot, through an LSTM started
    from ``initial_state``; its input and its output at every step."""
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


def build_attention_model(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
    score: str = "dot",
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> keras.Model:
    """The seed's LSTMs with attention over the encoder's outputs (Luong et al. 2015, without
    input feeding, so one decoder step is still the plain LSTM cell plus the layers after it).
    ``dropout``: on each LSTM's inputs while training, as in the seed's model."""
    if bidirectional and latent_dim % 2:
        raise CharmtError(
            f"model.bidirectional needs an even train.latent_dim (half each way), got {latent_dim}"
        )
    # Encoder: reads the English characters and keeps every output, plus its final states.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_inputs = one_hot(source_vocabulary_size, "encoder_one_hot", precision)(encoder_ids)
    if bidirectional:
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
    else:
        encoder_outputs, state_h, state_c = layers.LSTM(
            latent_dim,
            return_sequences=True,
            return_state=True,
            dropout=dropout,
            name="encoder_lstm",
            dtype=precision,
        )(encoder_inputs)

    # Decoder: the seed's, started from the encoder's states, fed the shifted French text.
    decoder_ids, decoder_outputs = lstm_decoder(
        target_vocabulary_size, latent_dim, precision, dropout, [state_h, state_c]
    )

    # Attention: each decoder output weighs the encoder's outputs. Keras passes both masks on, so
    # encoder padding gets no weight and the output keeps the decoder's mask for the loss.
    context = attention_layer(score, precision)([decoder_outputs, encoder_outputs])
    combined = layers.Concatenate(name="attention_concat", dtype=precision)(
        [context, decoder_outputs]
    )
    attentional = layers.Dense(
        latent_dim, activation="tanh", name="attention_hidden", dtype=precision
    )(combined)
    next_char = next_char_head(target_vocabulary_size)(attentional)

    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt_attention")


def attention_layer(score: str, precision: str) -> layers.Layer:
    """Luong's dot-product score or Bahdanau's additive one."""
    if score == "additive":
        return layers.AdditiveAttention(name="attention", dtype=precision)
    return layers.Attention(name="attention", dtype=precision)


def architecture_of(model: keras.Model) -> ModelParams:
    """The architecture a built (or loaded) model has, read from its layers."""
    if is_transformer(model):
        return transformer_architecture(model)
    names = {layer.name for layer in model.layers}
    # Every LSTM gets the same input dropout; the decoder's is always a plain LSTM.
    dropout = float(model.get_layer("decoder_lstm").dropout)
    if "attention" not in names:
        return ModelParams(dropout=dropout)
    score = (
        "additive" if isinstance(model.get_layer("attention"), layers.AdditiveAttention) else "dot"
    )
    bidirectional = isinstance(model.get_layer("encoder_lstm"), layers.Bidirectional)
    return ModelParams(
        architecture="attention", attention=score, bidirectional=bidirectional, dropout=dropout
    )


def vocabulary_sizes(model: keras.Model) -> tuple[int, int]:
    """The (source, target) vocabulary sizes ``model`` was built for."""
    if is_transformer(model):
        names = ("encoder_embedding", "decoder_embedding")
        source, target = (model.get_layer(name).vocabulary_size for name in names)
        return source, target
    source, target = (model.get_layer(f"{side}_one_hot") for side in ("encoder", "decoder"))
    return source.input_dim, target.input_dim


def max_positions(model: keras.Model) -> int | None:
    """The longest sequence ``model`` can read or write (its learned positions); None: any."""
    return transformer_architecture(model).max_length if is_transformer(model) else None


# --- inference: the trained layers, rewired ---------------------------------------------------


def encoder_model(model: keras.Model) -> keras.Model:
    """Encoder ids -> the encoder's final [h, c] states, and for attention its outputs too:
    [h, c, encoder outputs]. Shares the trained layers."""
    encoder_ids = model.get_layer("encoder_ids").output
    if architecture_of(model).architecture == "seed":
        _, state_h, state_c = model.get_layer("encoder_lstm").output
        return keras.Model(encoder_ids, [state_h, state_c], name="encoder")
    encoder_outputs = model.get_layer("encoder_lstm").output[0]
    if architecture_of(model).bidirectional:
        state_h, state_c = model.get_layer("encoder_h").output, model.get_layer("encoder_c").output
    else:
        _, state_h, state_c = model.get_layer("encoder_lstm").output
    return keras.Model(encoder_ids, [state_h, state_c, encoder_outputs], name="encoder")


def output_head(model: keras.Model, decoder_outputs, encoder_outputs=None, encoder_mask=None):
    """Next-character probabilities from decoder outputs (batch, steps, latent), with the trained
    layers after the decoder LSTM; for attention, over ``encoder_outputs`` where ``encoder_mask``
    (batch, source steps) is true. Works on symbolic and on concrete tensors."""
    if architecture_of(model).architecture == "seed":
        return model.get_layer("next_char")(decoder_outputs)
    context = model.get_layer("attention")(
        [decoder_outputs, encoder_outputs], mask=[None, encoder_mask]
    )
    combined = model.get_layer("attention_concat")([context, decoder_outputs])
    return model.get_layer("next_char")(model.get_layer("attention_hidden")(combined))


def decoder_step_model(model: keras.Model) -> keras.Model:
    """One decoder step, the seed's inference model: (ids, h, c) -> (probabilities, h, c); for
    attention (ids, h, c, encoder outputs, encoder ids) -> (probabilities, h, c)."""
    decoder_lstm = model.get_layer("decoder_lstm")
    latent_dim = decoder_lstm.units
    ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    state_h = keras.Input(shape=(latent_dim,), name="state_h")
    state_c = keras.Input(shape=(latent_dim,), name="state_c")
    inputs = model.get_layer("decoder_one_hot")(ids)
    outputs, new_h, new_c = decoder_lstm(inputs, initial_state=[state_h, state_c])
    if architecture_of(model).architecture == "seed":
        probabilities = output_head(model, outputs)
        return keras.Model(
            [ids, state_h, state_c], [probabilities, new_h, new_c], name="decoder_step"
        )
    memory_dim = model.get_layer("encoder_lstm").output[0].shape[-1]
    encoder_outputs = keras.Input(shape=(None, memory_dim), name="encoder_outputs")
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    encoder_mask = keras.ops.not_equal(encoder_ids, PAD)
    probabilities = output_head(model, outputs, encoder_outputs, encoder_mask)
    return keras.Model(
        [ids, state_h, state_c, encoder_outputs, encoder_ids],
        [probabilities, new_h, new_c],
        name="decoder_step",
    )
