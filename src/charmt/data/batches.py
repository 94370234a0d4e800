"""Training batches: integer sequences, right-padded per batch, grouped by length.

Padding every batch to the longest sentence of the data set spends about half the work on padding.
Instead, each epoch shuffles the pairs, sorts them by length within chunks of a few dozen batches,
cuts the chunks into batches and shuffles the batch order: batches hold similar lengths and are
padded only to their own longest sequence, while every epoch still sees a new order.

Only the integer ids are kept in memory, so memory grows with the number of characters, not with
pairs x longest sentence x vocabulary as the Keras example's one-hot arrays did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from charmt.data.pairs import Pair
from charmt.data.vocabulary import END, PAD, START, Vocabularies


@dataclass(frozen=True)
class EncodedPairs:
    """Pairs as id sequences: source ids, and target ids without start or end."""

    sources: list[np.ndarray]
    targets: list[np.ndarray]

    @classmethod
    def encode(cls, pairs: Sequence[Pair], vocabularies: Vocabularies) -> EncodedPairs:
        return cls(
            [np.array(vocabularies.source.encode(p.source), dtype=np.int32) for p in pairs],
            [np.array(vocabularies.target.encode(p.target), dtype=np.int32) for p in pairs],
        )

    def __len__(self) -> int:
        return len(self.sources)


def pad(sequences: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
    """Right-pad id sequences with ``PAD`` to ``width`` (default: the longest)."""
    width = max((len(s) for s in sequences), default=0) if width is None else width
    out = np.full((len(sequences), width), PAD, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = sequence
    return out


def teacher_forcing_batch(
    sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Model inputs and expected outputs for one batch.

    The decoder reads ``<start> + target`` and must predict ``target + <end>``: the same text
    shifted one step.
    """
    decoder_in = [np.concatenate(([START], t)).astype(np.int32) for t in targets]
    decoder_out = [np.concatenate((t, [END])).astype(np.int32) for t in targets]
    inputs = {"encoder_ids": pad(sources), "decoder_ids": pad(decoder_in)}
    return inputs, pad(decoder_out)


class LengthBatches:
    """Batches of similar length; each iteration is a new epoch with a new order.

    ``shuffle=False`` gives a fixed order (sorted by length), for validation and evaluation.
    """

    def __init__(
        self,
        pairs: EncodedPairs,
        batch_size: int,
        *,
        shuffle: bool = True,
        chunk_batches: int = 32,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or chunk_batches < 1:
            raise ValueError("batch_size and chunk_batches must be positive")
        self.pairs = pairs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.chunk_batches = chunk_batches
        self.seed = seed
        # The epoch the next iteration serves. Each epoch's order is a function of (seed, epoch)
        # alone, so a run resumed at epoch k sees the same batches as one that never stopped.
        self.epoch = 0
        # The decoder's length dominates the cost; the source length breaks ties.
        self._lengths = np.array(
            [len(t) * 1000 + len(s) for s, t in zip(pairs.sources, pairs.targets, strict=True)],
            dtype=np.int64,
        )

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """The indices of each batch of ``epoch``, in the order they are served.

        Without ``epoch``: the next epoch (``self.epoch``, which then advances).
        """
        if epoch is None:
            epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            order = np.argsort(self._lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.pairs))
        chunk = self.batch_size * self.chunk_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self._lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for indices in self.batch_indices():
            yield teacher_forcing_batch(
                [self.pairs.sources[i] for i in indices], [self.pairs.targets[i] for i in indices]
            )

    def padding_ratio(self) -> float:
        """Padded decoder positions / real decoder positions for one epoch (1.0 = no padding)."""
        real = padded = 0
        for indices in self.batch_indices():
            lengths = [len(self.pairs.targets[i]) + 1 for i in indices]
            real += sum(lengths)
            padded += max(lengths) * len(lengths)
        return padded / real


def to_dataset(batches: LengthBatches) -> tf.data.Dataset:
    """A tf.data view of ``batches``; every pass over it (every epoch) reshuffles."""
    ids = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=({"encoder_ids": ids, "decoder_ids": ids}, ids),
    )
    # A generator has no known length; without it Keras warns that the input "ran out of data".
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
