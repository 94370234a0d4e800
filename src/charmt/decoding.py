"""Greedy decoding: from encoder states, emit the most likely next character until ``<end>``.

``GreedyDecoder`` advances a whole batch together inside one compiled ``tf.while_loop`` over the
trained decoder cell, stopping as soon as every row has emitted ``<end>`` or the length cap is hit.
``SeedStyleDecoder`` is the seed's way (one sentence, one ``predict`` call per character); it is
kept as the reference that the batched loop must match exactly, and for the benchmark.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from charmt.model import decoder_step_model, encoder_model
from charmt.vocab import END, PAD, START


class GreedyDecoder:
    """Batched greedy decoding with the layers of a trained model."""

    def __init__(self, model: keras.Model) -> None:
        self.encoder = encoder_model(model)
        self._cell = model.get_layer("decoder_lstm").cell
        self._next_char = model.get_layer("next_char")
        self._vocabulary_size = model.get_layer("decoder_one_hot").input_dim
        # One trace serves every batch size and length: the signature leaves both open.
        self._loop = tf.function(
            self._decode,
            input_signature=[
                tf.TensorSpec(shape=(None, None), dtype=tf.int32),
                tf.TensorSpec(shape=(), dtype=tf.int32),
            ],
        )

    def __call__(self, encoder_ids: np.ndarray, max_length: int) -> np.ndarray:
        """Output ids, shape (batch, steps <= max_length), for right-padded encoder ids.

        A row holds its characters, then ``<end>``, then ``PAD``; a row that reached the cap has no
        ``<end>``.
        """
        if len(encoder_ids) == 0:
            return np.zeros((0, 0), dtype=np.int32)
        return self._loop(tf.constant(encoder_ids, dtype=tf.int32), tf.constant(max_length)).numpy()

    def _decode(self, encoder_ids: tf.Tensor, max_length: tf.Tensor) -> tf.Tensor:
        state_h, state_c = self.encoder(encoder_ids, training=False)
        batch = tf.shape(encoder_ids)[0]
        token = tf.fill([batch], START)
        done = tf.zeros([batch], dtype=tf.bool)
        outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

        def keep_going(step, token, state_h, state_c, done, outputs):
            return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(done)))

        def step_once(step, token, state_h, state_c, done, outputs):
            # tf.one_hot is the frozen identity embedding, without the mask it would attach.
            inputs = tf.one_hot(token, self._vocabulary_size, dtype=self._cell.compute_dtype)
            output, (state_h, state_c) = self._cell(inputs, [state_h, state_c], training=False)
            token = tf.argmax(self._next_char(output), axis=-1, output_type=tf.int32)
            token = tf.where(done, PAD, token)
            done = tf.logical_or(done, tf.equal(token, END))
            return step + 1, token, state_h, state_c, done, outputs.write(step, token)

        *_, outputs = tf.while_loop(
            keep_going, step_once, (tf.constant(0), token, state_h, state_c, done, outputs)
        )
        return tf.transpose(outputs.stack())


class SeedStyleDecoder:
    """The seed's way: one sentence at a time, one ``predict`` call per output character.

    Slow (orders of magnitude below ``GreedyDecoder``); kept as the reference the batched loop
    must match, and for the benchmark. Its encoder and step models are built once, as the seed did.
    """

    def __init__(self, model: keras.Model) -> None:
        self.encoder, self.step = encoder_model(model), decoder_step_model(model)

    def __call__(self, encoder_ids: np.ndarray, max_length: int) -> list[int]:
        """Output ids for one unpadded sentence, ending with ``<end>`` unless capped."""
        state_h, state_c = self.encoder.predict(encoder_ids[None, :], verbose=0)
        token, output = START, []
        while len(output) < max_length:
            probabilities, state_h, state_c = self.step.predict(
                [np.array([[token]], dtype=np.int32), state_h, state_c], verbose=0
            )
            token = int(np.argmax(probabilities[0, -1]))
            output.append(token)
            if token == END:
                break
        return output
