"""The character Transformer: a pre-layer-norm encoder-decoder (Vaswani et al. 2017).

``model.architecture: transformer``. The encoder reads the English characters with
self-attention; the decoder, fed the French text shifted one step (teacher forcing, as the LSTMs),
attends causally to its own prefix and to every encoder output. Each block normalises its input
before attention or feed-forward and adds the result back (pre-LN: stable without a long warm-up
search), and a last layer norm precedes the softmax. Positions are learned embeddings, so the
model has ``max_length`` of them: no training sentence and no translation may be longer.

All of it is Keras' own layers (``Embedding``, ``MultiHeadAttention``, ``LayerNormalization``,
``Dense``, ``Dropout``) in three small registered layers, so ``model.keras`` loads in safe mode.
Id 0 is padding: attention never looks at it, and the output keeps the decoder's mask, so loss and
accuracy count real target characters only, as for the LSTMs.

Decoding one character at a time (``TransformerStep``) keeps each decoder layer's keys and values
of the prefix (a KV cache) and the encoder's cross-attention keys and values, so a step projects
only the new character instead of recomputing the whole prefix.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

from charmt.data.vocabulary import PAD
from charmt.errors import CharmtError
from charmt.params import ModelParams

_PACKAGE = "charmt"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CharacterEmbedding(layers.Layer):
    """Character ids -> learned character vector + learned position vector; id 0 is masked."""

    def __init__(
        self, vocabulary_size: int, width: int, max_length: int, dropout: float = 0.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size, self.width, self.max_length = vocabulary_size, width, max_length
        self.dropout_rate = dropout
        self.characters = layers.Embedding(vocabulary_size, width, name="characters")
        self.positions = layers.Embedding(max_length, width, name="positions")
        self.dropout = layers.Dropout(dropout)
        self.supports_masking = True

    def build(self, input_shape) -> None:
        self.characters.build(input_shape)
        self.positions.build(input_shape)
        self.built = True

    def call(self, ids, training=None):
        """Embeddings of ``ids`` (batch, steps), at positions 0, 1, ..."""
        positions = ops.arange(ops.shape(ids)[1])
        embedded = self.characters(ids) + self.positions(positions)[None, :, :]
        return self.dropout(embedded, training=training)

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, PAD)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.width)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "width": self.width,
            "max_length": self.max_length,
            "dropout": self.dropout_rate,
        }


class _Block(layers.Layer):
    """What both blocks share: pre-LN residual sub-layers of attention and feed-forward."""

    def __init__(self, width: int, heads: int, feed_forward: int, dropout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.width, self.heads, self.feed_forward, self.dropout_rate = (
            width,
            heads,
            feed_forward,
            dropout,
        )
        self.feed_forward_norm = layers.LayerNormalization(epsilon=1e-6, name="feed_forward_norm")
        self.feed_forward_in = layers.Dense(feed_forward, activation="relu", name="feed_forward_in")
        self.feed_forward_out = layers.Dense(width, name="feed_forward_out")
        self.dropout = layers.Dropout(dropout)
        # The output keeps the mask of the block's input (its padding), for the loss.
        self.supports_masking = True

    def attention(self, name: str) -> layers.MultiHeadAttention:
        return layers.MultiHeadAttention(self.heads, self.width // self.heads, name=name)

    def add_feed_forward(self, x, training=None):
        hidden = self.feed_forward_in(self.feed_forward_norm(x))
        return x + self.dropout(self.feed_forward_out(hidden), training=training)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "width": self.width,
            "heads": self.heads,
            "feed_forward": self.feed_forward,
            "dropout": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EncoderBlock(_Block):
    """Self-attention over the source (padding masked), then feed-forward."""

    def __init__(self, width: int, heads: int, feed_forward: int, dropout: float, **kwargs) -> None:
        super().__init__(width, heads, feed_forward, dropout, **kwargs)
        self.self_attention_norm = layers.LayerNormalization(epsilon=1e-6, name="self_norm")
        self.self_attention = self.attention("self_attention")

    def build(self, input_shape) -> None:
        self.self_attention_norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self.feed_forward_norm.build(input_shape)
        self.feed_forward_in.build(input_shape)
        self.feed_forward_out.build((*input_shape[:-1], self.feed_forward))
        self.built = True

    def call(self, x, source_ids, training=None):
        keep = ops.not_equal(source_ids, PAD)  # (batch, source steps)
        mask = ops.logical_and(keep[:, :, None], keep[:, None, :])
        normed = self.self_attention_norm(x)
        attended = self.self_attention(normed, normed, attention_mask=mask, training=training)
        x = x + self.dropout(attended, training=training)
        return self.add_feed_forward(x, training)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DecoderBlock(_Block):
    """Causal self-attention over the target prefix, attention over the encoder's outputs, then
    feed-forward."""

    def __init__(self, width: int, heads: int, feed_forward: int, dropout: float, **kwargs) -> None:
        super().__init__(width, heads, feed_forward, dropout, **kwargs)
        self.self_attention_norm = layers.LayerNormalization(epsilon=1e-6, name="self_norm")
        self.self_attention = self.attention("self_attention")
        self.cross_attention_norm = layers.LayerNormalization(epsilon=1e-6, name="cross_norm")
        self.cross_attention = self.attention("cross_attention")

    def build(self, input_shape) -> None:
        for norm in (self.self_attention_norm, self.cross_attention_norm, self.feed_forward_norm):
            norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self.cross_attention.build(input_shape, input_shape)
        self.feed_forward_in.build(input_shape)
        self.feed_forward_out.build((*input_shape[:-1], self.feed_forward))
        self.built = True

    def call(self, x, target_ids, memory, source_ids, training=None):
        target_keep = ops.not_equal(target_ids, PAD)
        steps = ops.shape(target_ids)[1]
        causal = ops.tril(ops.ones((steps, steps), dtype="bool"))
        self_mask = ops.logical_and(causal[None, :, :], target_keep[:, None, :])
        normed = self.self_attention_norm(x)
        attended = self.self_attention(normed, normed, attention_mask=self_mask, training=training)
        x = x + self.dropout(attended, training=training)
        cross_mask = ops.logical_and(
            target_keep[:, :, None], ops.not_equal(source_ids, PAD)[:, None, :]
        )
        normed = self.cross_attention_norm(x)
        attended = self.cross_attention(
            normed, memory, attention_mask=cross_mask, training=training
        )
        x = x + self.dropout(attended, training=training)
        return self.add_feed_forward(x, training)


def build_transformer_model(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    architecture: ModelParams,
    precision: str = "float32",
) -> keras.Model:
    """(encoder ids, decoder input ids) -> next-character probabilities, as the LSTM models."""
    width, heads = architecture.width, architecture.heads
    feed_forward, dropout = architecture.feed_forward, architecture.dropout
    blocks = {"width": width, "heads": heads, "feed_forward": feed_forward, "dropout": dropout}

    def embedding(vocabulary_size: int, name: str) -> CharacterEmbedding:
        return CharacterEmbedding(
            vocabulary_size, width, architecture.max_length, dropout, name=name, dtype=precision
        )

    # Encoder: characters and positions, then self-attention blocks; its outputs are the memory.
    encoder_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_ids")
    x = embedding(source_vocabulary_size, "encoder_embedding")(encoder_ids)
    for i in range(1, architecture.layers + 1):
        x = EncoderBlock(**blocks, name=f"encoder_block_{i}", dtype=precision)(x, encoder_ids)
    memory = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm", dtype=precision)(x)

    # Decoder: the shifted French text, attending to its prefix and to the memory.
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    y = embedding(target_vocabulary_size, "decoder_embedding")(decoder_ids)
    for i in range(1, architecture.layers + 1):
        y = DecoderBlock(**blocks, name=f"decoder_block_{i}", dtype=precision)(
            y, decoder_ids, memory, encoder_ids
        )
    y = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm", dtype=precision)(y)
    # Softmax in float32 even under mixed precision, for a numerically sound loss.
    next_char = layers.Dense(
        target_vocabulary_size, activation="softmax", name="next_char", dtype="float32"
    )(y)
    return keras.Model([encoder_ids, decoder_ids], next_char, name="charmt_transformer")


def check_fits(architecture: ModelParams, longest_source: int, longest_target: int) -> None:
    """Refuse training data longer than the Transformer's positions, naming the fix."""
    # The decoder reads <start> + target (and predicts target + <end>).
    longest = max(longest_source, longest_target + 1)
    if longest > architecture.max_length:
        raise CharmtError(
            f"model.max_length = {architecture.max_length} is shorter than the longest training "
            f"sequence ({longest_source} source, {longest_target} + 1 target characters); set "
            f"model.max_length to at least {longest + 10} or train on shorter sentences"
        )


def is_transformer(model: keras.Model) -> bool:
    return any(isinstance(layer, EncoderBlock) for layer in model.layers)


def transformer_architecture(model: keras.Model) -> ModelParams:
    """The ``model`` params a built (or loaded) Transformer has, read from its layers."""
    embedding = model.get_layer("encoder_embedding")
    block = model.get_layer("encoder_block_1")
    return ModelParams(
        architecture="transformer",
        dropout=block.dropout_rate,
        layers=sum(isinstance(layer, EncoderBlock) for layer in model.layers),
        width=embedding.width,
        heads=block.heads,
        feed_forward=block.feed_forward,
        max_length=embedding.max_length,
    )


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
    """One decoder step of a trained Transformer for a batch of rows: the ``DecoderStep`` of
    ``charmt.inference.decoding`` for this architecture.

    ``state`` is each decoder layer's self-attention keys and values of the prefix so far (the
    cache, rows x steps x heads x dim, growing by one step per call); ``memory`` is each layer's
    cross-attention keys and values of the encoder's outputs and the source mask, computed once.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        architecture = transformer_architecture(model)
        self.layers = architecture.layers
        self.max_length = architecture.max_length
        self.embedding = model.get_layer("decoder_embedding")
        self.vocabulary_size = self.embedding.vocabulary_size
        self.blocks = [model.get_layer(f"decoder_block_{i}") for i in range(1, self.layers + 1)]
        self.encoder = keras.Model(
            model.get_layer("encoder_ids").output,
            model.get_layer("encoder_norm").output,
            name="transformer_encoder",
        )
        self.norm, self.head = model.get_layer("decoder_norm"), model.get_layer("next_char")
        self._heads = architecture.heads
        self._dim = architecture.width // architecture.heads

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
