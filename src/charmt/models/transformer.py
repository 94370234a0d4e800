"""The character Transformer: a pre-layer-norm encoder-decoder (Vaswani et al. 2017).

``model.architecture: transformer``. The encoder reads the English characters with
self-attention; the decoder, fed the French text shifted one step (teacher forcing, as the LSTMs),
attends causally to its own prefix and to every encoder output. Each block normalises its input
before attention or feed-forward and adds the result back (pre-LN: stable without a long warm-up
search), and a last layer norm precedes the softmax. Positions are learned embeddings, so the
model has ``max_length`` of them: no training sentence and no translation may be longer.

Its layers are in ``charmt.models.transformer_layers``. Id 0 is padding: attention never looks
at it, and the output keeps the decoder's mask, so loss and accuracy count real target characters
only, as for the LSTMs.

Decoding one character at a time (``TransformerStep``) keeps each decoder layer's keys and values
of the prefix (a KV cache) and the encoder's cross-attention keys and values, so a step projects
only the new character instead of recomputing the whole prefix.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from charmt.data.vocabulary import PAD
from charmt.errors import CharmtError
from charmt.models.interface import Architecture
from charmt.models.transformer_layers import CharacterEmbedding, DecoderBlock, EncoderBlock
from charmt.params import ModelParams

NAME = "transformer"


def build(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int,
    precision: str,
    model_params: ModelParams,
) -> keras.Model:
    """(encoder ids, decoder input ids) -> next-character probabilities, as the LSTM models.
    ``latent_dim`` is the LSTMs' (train.latent_dim): the Transformer's width is model.width."""
    width, heads = model_params.width, model_params.heads
    feed_forward, dropout = model_params.feed_forward, model_params.dropout
    blocks = {"width": width, "heads": heads, "feed_forward": feed_forward, "dropout": dropout}

    def embedding(vocabulary_size: int, name: str) -> CharacterEmbedding:
        return CharacterEmbedding(
            vocabulary_size, width, model_params.max_length, dropout, name=name, dtype=precision
        )

    # Encoder: characters and positions, then self-attention blocks; its outputs are the memory.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    x = embedding(source_vocabulary_size, "encoder_embedding")(encoder_ids)
    for i in range(1, model_params.layers + 1):
        x = EncoderBlock(**blocks, name=f"encoder_block_{i}", dtype=precision)(x, encoder_ids)
    memory = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm", dtype=precision)(x)

    # Decoder: the shifted French text, attending to its prefix and to the memory.
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    y = embedding(target_vocabulary_size, "decoder_embedding")(decoder_ids)
    for i in range(1, model_params.layers + 1):
        y = DecoderBlock(**blocks, name=f"decoder_block_{i}", dtype=precision)(
            y, decoder_ids, memory, encoder_ids
        )
    y = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm", dtype=precision)(y)
    # Softmax in float32 even under mixed precision, for a numerically sound loss.
    next_char = layers.Dense(
        target_vocabulary_size, activation="softmax", name="next_char", dtype="float32"
    )(y)
    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt_transformer")


def check_fits(model_params: ModelParams, longest_source: int, longest_target: int) -> None:
    """Refuse training data longer than the Transformer's positions, naming the fix."""
    # The decoder reads <start> + target (and predicts target + <end>).
    longest = max(longest_source, longest_target + 1)
    if longest > model_params.max_length:
        raise CharmtError(
            f"model.max_length = {model_params.max_length} is shorter than the longest training "
            f"sequence ({longest_source} source, {longest_target} + 1 target characters); set "
            f"model.max_length to at least {longest + 10} or train on shorter sentences"
        )


def recognises(model: keras.Model) -> bool:
    return any(isinstance(layer, EncoderBlock) for layer in model.layers)


def params_of(model: keras.Model) -> ModelParams:
    """The ``model`` params a built (or loaded) Transformer has, read from its layers."""
    embedding = model.get_layer("encoder_embedding")
    block = model.get_layer("encoder_block_1")
    return ModelParams(
        architecture=NAME,
        dropout=block.dropout_rate,
        layers=sum(isinstance(layer, EncoderBlock) for layer in model.layers),
        width=embedding.width,
        heads=block.heads,
        feed_forward=block.feed_forward,
        max_length=embedding.max_length,
    )


def vocabulary_sizes(model: keras.Model) -> tuple[int, int]:
    """The (source, target) vocabulary sizes the Transformer was built for."""
    names = ("encoder_embedding", "decoder_embedding")
    source, target = (model.get_layer(name).vocabulary_size for name in names)
    return source, target


def max_positions(model: keras.Model) -> int:
    """The Transformer has ``model.max_length`` learned positions and no more."""
    return params_of(model).max_length


# --- decoding one character at a time, with cached keys and values ---------------------------


def _attend(attention: layers.MultiHeadAttention, query, keys, values, keep=None):
    """``attention`` for projected ``query`` (rows, 1, heads, dim) over projected ``keys`` and
    ``values`` (rows, steps, heads, dim), where ``keep`` (rows, steps) is true; the same sums as
    ``MultiHeadAttention.call``, without projecting the keys and values again."""
    query = query * tf.cast(1.0 / math.sqrt(query.shape[-1]), query.dtype)
    scores = tf.einsum("aecd,abcd->acbe", keys, query)  # (rows, heads, 1, steps)
    if keep is not None:
        scores = tf.where(keep[:, None, None, :], scores, tf.cast(-1e9, scores.dtype))
    weights = tf.nn.softmax(scores, axis=-1)
    context = tf.einsum("acbe,aecd->abcd", weights, values)
    return attention.output_dense(context)


class TransformerStep:
    """One decoder step of a trained Transformer for a batch of rows: its ``DecoderStep``
    (``charmt.models.interface``).

    ``state`` is each decoder layer's self-attention keys and values of the prefix so far (the
    cache, rows x steps x heads x dim, growing by one step per call); ``memory`` is each layer's
    cross-attention keys and values of the encoder's outputs and the source mask, computed once.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        model_params = params_of(model)
        self.layers = model_params.layers
        self.max_length = model_params.max_length
        self.embedding = model.get_layer("decoder_embedding")
        self.vocabulary_size = self.embedding.vocabulary_size
        self.blocks = [model.get_layer(f"decoder_block_{i}") for i in range(1, self.layers + 1)]
        self.encoder = keras.Model(
            model.get_layer("encoder_ids").output,
            model.get_layer("encoder_norm").output,
            name="transformer_encoder",
        )
        self.norm, self.head = model.get_layer("decoder_norm"), model.get_layer("next_char")
        self._heads = model_params.heads
        self._dim = model_params.width // model_params.heads

    def start(self, encoder_ids: tf.Tensor) -> tuple[tuple, tuple]:
        """The empty caches and the memory, for right-padded encoder ids."""
        # tf.identity drops the mask the encoder attaches, which the projections would warn about.
        outputs = tf.identity(self.encoder(encoder_ids, training=False))
        memory = []
        for block in self.blocks:
            memory += [
                block.cross_attention.key_dense(outputs),
                block.cross_attention.value_dense(outputs),
            ]
        rows = tf.shape(encoder_ids)[0]
        empty = tf.zeros([rows, 0, self._heads, self._dim], dtype=self.embedding.compute_dtype)
        state = tuple(empty for _ in range(2 * self.layers))
        return state, (*memory, tf.not_equal(encoder_ids, PAD))

    def state_shapes(self, state: tuple) -> tuple:
        """``tf.while_loop`` shape invariants: the caches grow along the steps axis."""
        return tuple(tf.TensorShape([None, None, self._heads, self._dim]) for _ in state)

    def __call__(self, token: tf.Tensor, step: tf.Tensor, state: tuple, memory: tuple):
        """(next-character probabilities (rows, vocabulary), new state) after feeding ``token``
        at position ``step``."""
        # The embedding's own layers: calling the embedding would attach a mask to the row.
        x = self.embedding.characters(token[:, None]) + self.embedding.positions(step)
        keep_source = memory[-1]
        new_state = []
        for i, block in enumerate(self.blocks):
            normed = block.self_attention_norm(x)
            attention = block.self_attention
            keys = tf.concat([state[2 * i], attention.key_dense(normed)], axis=1)
            values = tf.concat([state[2 * i + 1], attention.value_dense(normed)], axis=1)
            new_state += [keys, values]
            x = x + _attend(attention, attention.query_dense(normed), keys, values)
            normed = block.cross_attention_norm(x)
            cross = block.cross_attention
            x = x + _attend(
                cross, cross.query_dense(normed), memory[2 * i], memory[2 * i + 1], keep_source
            )
            x = block.add_feed_forward(x, training=False)
        probabilities = self.head(self.norm(x))
        return probabilities[:, 0, :], tuple(new_state)


class TransformerSentenceStep:
    """The Keras example's way for the Transformer: the whole model on the prefix so far, one
    ``predict`` per character (no cache); the state is (encoder ids, prefix)."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def start(self, encoder_ids: np.ndarray) -> tuple[np.ndarray, list[int]]:
        return encoder_ids, []

    def __call__(
        self, token: int, state: tuple[np.ndarray, list[int]]
    ) -> tuple[np.ndarray, tuple[np.ndarray, list[int]]]:
        encoder_ids, prefix = state
        prefix = [*prefix, token]
        probabilities = self.model.predict(
            [encoder_ids[None, :], np.array([prefix], dtype=np.int32)], verbose=0
        )
        return probabilities[0, -1], (encoder_ids, prefix)


ARCHITECTURE = Architecture(
    name=NAME,
    build=build,
    recognises=recognises,
    params_of=params_of,
    vocabulary_sizes=vocabulary_sizes,
    max_positions=max_positions,
    decoder_step=TransformerStep,
    sentence_step=TransformerSentenceStep,
    check_fits=check_fits,
)
