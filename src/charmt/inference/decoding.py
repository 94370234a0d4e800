"""Decoding: from the encoder, emit characters until ``<end>``, greedily or by beam search.

The loops here know no architecture: each calls the trained model's one-step decoder, which its
architecture provides (``charmt.models.architectures.decoder_step``: for the LSTMs the decoder
cell, plus attention over the encoder's outputs for the attention model; for the Transformer, its
decoder layers on the new character with the prefix's keys and values cached).

``GreedyDecoder`` advances a whole batch together inside one compiled ``tf.while_loop`` over that
step, stopping as soon as every row has emitted ``<end>`` or the length cap is hit.
``BeamDecoder`` is the same loop over batch x beam rows. ``OneSentenceDecoder`` is the Keras
example's way (one sentence, one ``predict`` call per character); it is kept as the reference that
the batched loops must match exactly, and for the benchmark.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from charmt.data.vocabulary import END, PAD, START
from charmt.models.architectures import decoder_step, sentence_step
from charmt.models.interface import DecoderStep
from charmt.params import is_beam_width

_IDS = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
_LENGTH = tf.TensorSpec(shape=(), dtype=tf.int32)


def _capped(max_length: int, step: DecoderStep) -> int:
    """At most as many steps as the model has positions (the Transformer's ``max_length``)."""
    return max_length if step.max_length is None else min(max_length, step.max_length)


class GreedyDecoder:
    """Batched greedy decoding with the layers of a trained model."""

    def __init__(self, model: keras.Model) -> None:
        self._step = decoder_step(model)
        # One trace serves every batch size and length: the signature leaves both open.
        self._loop = tf.function(self._decode, input_signature=[_IDS, _LENGTH])

    def __call__(self, encoder_ids: np.ndarray, max_length: int) -> np.ndarray:
        """Output ids, shape (batch, steps <= max_length), for right-padded encoder ids.

        A row holds its characters, then ``<end>``, then ``PAD``; a row that reached the cap has no
        ``<end>``.
        """
        if len(encoder_ids) == 0:
            return np.zeros((0, 0), dtype=np.int32)
        max_length = _capped(max_length, self._step)
        return self._loop(tf.constant(encoder_ids, dtype=tf.int32), tf.constant(max_length)).numpy()

    def _decode(self, encoder_ids: tf.Tensor, max_length: tf.Tensor) -> tf.Tensor:
        state, memory = self._step.start(encoder_ids)
        batch = tf.shape(encoder_ids)[0]
        token = tf.fill([batch], START)
        done = tf.zeros([batch], dtype=tf.bool)
        outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

        def keep_going(step, token, state, done, outputs):
            return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(done)))

        def step_once(step, token, state, done, outputs):
            probabilities, state = self._step(token, step, state, memory)
            token = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            token = tf.where(done, PAD, token)
            done = tf.logical_or(done, tf.equal(token, END))
            return step + 1, token, state, done, outputs.write(step, token)

        *_, outputs = tf.while_loop(
            keep_going,
            step_once,
            (tf.constant(0), token, state, done, outputs),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None]),
                self._step.state_shapes(state),
                tf.TensorShape([None]),
                tf.TensorShape(None),
            ),
        )
        return tf.transpose(outputs.stack())


class BeamDecoder:
    """Batched beam search with the layers of a trained model.

    Each sentence keeps ``beam_width`` hypotheses (rows ``sentence * beam_width + k``). At every
    step each hypothesis is extended by every character, and the ``beam_width`` extensions with
    the highest total log-probability survive (top-k over beam x vocabulary); the decoder states
    follow their parent hypothesis. A hypothesis that emitted ``<end>`` stays in the beam with its
    score frozen (it can only continue with padding, at no cost), so it competes with longer ones.
    The search ends when every hypothesis has ended or at the length cap. Among the final
    hypotheses the output is the one with the highest length-normalised score

        total log-probability / length ** length_alpha

    where length counts the emitted characters, ``<end>`` included. ``length_alpha`` 0 picks the
    highest total log-probability (which favours short outputs); 1 (the default) the highest mean
    log-probability per character. With ``beam_width`` 1 this is greedy decoding.
    """

    def __init__(self, model: keras.Model, beam_width: int, length_alpha: float = 1.0) -> None:
        if not is_beam_width(beam_width):
            raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
        self._step = decoder_step(model)
        self.beam_width = beam_width
        self.length_alpha = float(length_alpha)
        self._loop = tf.function(self._search, input_signature=[_IDS, _LENGTH])

    def __call__(self, encoder_ids: np.ndarray, max_length: int) -> np.ndarray:
        """Output ids of the best hypothesis per row, as ``GreedyDecoder`` returns them."""
        return self.search(encoder_ids, max_length)[0]

    def search(self, encoder_ids: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """The best hypothesis per row and its total (not normalised) log-probability."""
        if len(encoder_ids) == 0:
            return np.zeros((0, 0), dtype=np.int32), np.zeros((0,), dtype=np.float32)
        max_length = _capped(max_length, self._step)
        ids, scores = self._loop(tf.constant(encoder_ids, dtype=tf.int32), tf.constant(max_length))
        return ids.numpy(), scores.numpy()

    def _search(self, encoder_ids: tf.Tensor, max_length: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        width, vocabulary = self.beam_width, self._step.vocabulary_size
        batch = tf.shape(encoder_ids)[0]
        state, memory, scores = self._start_beams(encoder_ids)
        token = tf.fill([batch * width], START)
        lengths = tf.zeros([batch, width], dtype=tf.int32)
        sequences = tf.zeros([batch, width, 0], dtype=tf.int32)
        # A finished hypothesis may only continue with PAD, at no cost.
        pad_only = tf.where(tf.range(vocabulary) == PAD, 0.0, -np.inf)
        offsets = tf.range(batch)[:, None] * width

        def keep_going(step, token, state, scores, lengths, sequences):
            live = tf.logical_and(_unfinished(sequences), scores > -np.inf)
            return tf.logical_and(step < max_length, tf.reduce_any(live))

        def step_once(step, token, state, scores, lengths, sequences):
            probabilities, state = self._step(token, step, state, memory)
            log_probabilities = tf.reshape(
                tf.math.log(tf.cast(probabilities, tf.float32)), [batch, width, vocabulary]
            )
            finished = tf.logical_not(_unfinished(sequences))
            log_probabilities = tf.where(finished[:, :, None], pad_only, log_probabilities)
            candidates = tf.reshape(scores[:, :, None] + log_probabilities, [batch, -1])
            scores, best = tf.math.top_k(candidates, k=width)
            parent, token = best // vocabulary, best % vocabulary
            rows = tf.reshape(parent + offsets, [-1])
            state = tuple(tf.gather(tensor, rows) for tensor in state)
            was_finished = tf.gather(finished, parent, batch_dims=1)
            lengths = tf.gather(lengths, parent, batch_dims=1) + tf.cast(
                tf.logical_not(was_finished), tf.int32
            )
            sequences = tf.concat(
                [tf.gather(sequences, parent, batch_dims=1), token[:, :, None]], axis=2
            )
            return step + 1, tf.reshape(token, [-1]), state, scores, lengths, sequences

        _, _, _, scores, lengths, sequences = tf.while_loop(
            keep_going,
            step_once,
            (tf.constant(0), token, state, scores, lengths, sequences),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None]),
                self._step.state_shapes(state),
                tf.TensorShape([None, width]),
                tf.TensorShape([None, width]),
                tf.TensorShape([None, width, None]),
            ),
        )
        normalised = scores / tf.pow(tf.cast(tf.maximum(lengths, 1), tf.float32), self.length_alpha)
        choice = tf.argmax(normalised, axis=1, output_type=tf.int32)
        return (
            tf.gather(sequences, choice, batch_dims=1),
            tf.gather(scores, choice, batch_dims=1),
        )

    def _start_beams(self, encoder_ids: tf.Tensor) -> tuple[tuple, tuple, tf.Tensor]:
        """The beams' rows' initial state and memory, and their scores (batch, beam)."""
        width, batch = self.beam_width, tf.shape(encoder_ids)[0]
        state, memory = self._step.start(encoder_ids)
        # Each sentence's rows sit together; the memory never moves between sentences, so it is
        # repeated once, and only the states follow the surviving hypotheses.
        state = tuple(tf.repeat(tensor, width, axis=0) for tensor in state)
        memory = tuple(tf.repeat(tensor, width, axis=0) for tensor in memory)
        # All hypotheses start equal: only the first is live, or the beam would fill with copies.
        scores = tf.tile(
            tf.constant([[0.0] + [-np.inf] * (width - 1)], dtype=tf.float32), [batch, 1]
        )
        return state, memory, scores


def _unfinished(sequences: tf.Tensor) -> tf.Tensor:
    """(batch, beam): whether a hypothesis has not emitted ``<end>`` yet."""
    return tf.logical_not(tf.reduce_any(tf.equal(sequences, END), axis=2))


class OneSentenceDecoder:
    """The Keras example's way: one sentence at a time, one ``predict`` call per output
    character (for the Transformer, the whole model on the whole prefix each time).

    Slow (orders of magnitude below ``GreedyDecoder``); kept as the reference the batched loop
    must match, and for the benchmark. Its models are built once, as the Keras example did
    (the architecture's ``sentence_step``).
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.step = sentence_step(model)

    def __call__(self, encoder_ids: np.ndarray, max_length: int) -> list[int]:
        """Output ids for one unpadded sentence, ending with ``<end>`` unless capped."""
        state = self.step.start(encoder_ids)
        token, output = START, []
        while len(output) < max_length:
            probabilities, state = self.step(token, state)
            token = int(np.argmax(probabilities))
            output.append(token)
            if token == END:
                break
        return output
