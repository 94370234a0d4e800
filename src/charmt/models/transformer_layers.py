"""The Transformer's layers (``charmt.models.transformer``): the character and position
embedding, and the pre-layer-norm encoder and decoder blocks.

All of it is Keras' own layers (``Embedding``, ``MultiHeadAttention``, ``LayerNormalization``,
``Dense``, ``Dropout``) in three small layers registered as ``charmt>ClassName``, so
``model.keras`` loads in safe mode (the registered names, not this module's path, are what a saved
model refers to). Id 0 is padding: attention never looks at it.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from charmt.data.vocabulary import PAD

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
