"""Tests for charmt.data.batches: padding, teacher forcing, length-grouped batches."""

from __future__ import annotations

import random

import numpy as np
import pytest

from charmt.data.batches import EncodedPairs, LengthBatches, pad, teacher_forcing_batch
from charmt.data.pairs import Pair, build_vocabularies
from charmt.data.vocabulary import END, PAD, START, Vocabularies, Vocabulary


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def mixed_length_pairs(n: int = 300, seed: int = 0) -> EncodedPairs:
    """Pairs whose lengths range from 1 to ~120 characters, mostly short, a few very long."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        length = rng.randint(1, 12) if rng.random() < 0.7 else rng.randint(13, 120)
        source = "".join(rng.choice("abcdef ") for _ in range(max(1, length + rng.randint(-3, 3))))
        target = "".join(rng.choice("uvwxyz ") for _ in range(length))
        pairs.append(Pair(source, target))
    vocabularies = build_vocabularies(pairs)
    return EncodedPairs.encode(pairs, vocabularies)


def test_pad_right_pads_with_pad() -> None:
    out = pad([ids(5, 6, 7), ids(8), ids()])
    np.testing.assert_array_equal(out, [[5, 6, 7], [8, PAD, PAD], [PAD, PAD, PAD]])
    assert np.issubdtype(out.dtype, np.integer)


def test_pad_to_given_width() -> None:
    np.testing.assert_array_equal(pad([ids(5), ids(6, 7)], width=4), [[5, 0, 0, 0], [6, 7, 0, 0]])
    assert pad([], width=3).shape == (0, 3)


def test_teacher_forcing_batch() -> None:
    sources = [ids(5, 6, 7), ids(8)]
    targets = [ids(4, 5), ids(6, 7, 8)]
    inputs, outputs = teacher_forcing_batch(sources, targets)
    np.testing.assert_array_equal(inputs["encoder_ids"], [[5, 6, 7], [8, PAD, PAD]])
    np.testing.assert_array_equal(inputs["decoder_ids"], [[START, 4, 5, PAD], [START, 6, 7, 8]])
    np.testing.assert_array_equal(outputs, [[4, 5, END, PAD], [6, 7, 8, END]])
    assert inputs["decoder_ids"].shape == outputs.shape


def test_teacher_forcing_output_is_input_shifted() -> None:
    targets = [ids(9, 10, 11, 12), ids(13), ids()]
    inputs, outputs = teacher_forcing_batch([ids(4)] * 3, targets)
    decoder = inputs["decoder_ids"]
    for row, target in enumerate(targets):
        n = len(target)
        assert decoder[row, 0] == START
        np.testing.assert_array_equal(decoder[row, 1 : n + 1], target)
        np.testing.assert_array_equal(outputs[row, :n], decoder[row, 1 : n + 1])
        assert outputs[row, n] == END
        assert (outputs[row, n + 1 :] == PAD).all()
        assert (decoder[row, n + 1 :] == PAD).all()


def test_encoded_pairs_use_the_vocabularies() -> None:
    vocabularies = Vocabularies(Vocabulary.build(["ab"]), Vocabulary.build(["xy"]))
    encoded = EncodedPairs.encode([Pair("ab", "yx"), Pair("b?", "x")], vocabularies)
    assert len(encoded) == 2
    assert vocabularies.source.decode(encoded.sources[0]) == "ab"
    assert vocabularies.target.decode(encoded.targets[0]) == "yx"
    assert vocabularies.target.decode(encoded.targets[1]) == "x"
    assert START not in encoded.targets[0] and END not in encoded.targets[0]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [1, 7, 32, 1000])
def test_every_index_once_per_epoch(shuffle: bool, batch_size: int) -> None:
    pairs = mixed_length_pairs(150)
    batches = LengthBatches(pairs, batch_size, shuffle=shuffle, chunk_batches=4, seed=1)
    for _ in range(2):
        epoch = batches.batch_indices()
        assert len(epoch) == len(batches) == -(-150 // batch_size)
        assert all(1 <= len(b) <= batch_size for b in epoch)
        assert sorted(np.concatenate(epoch).tolist()) == list(range(150))


def test_len_is_number_of_batches_served() -> None:
    pairs = mixed_length_pairs(101)
    batches = LengthBatches(pairs, 10, seed=3)
    served = list(batches)
    assert len(batches) == len(served) == 11
    assert sum(outputs.shape[0] for _, outputs in served) == 101


def test_shuffled_epochs_differ() -> None:
    batches = LengthBatches(mixed_length_pairs(200), 8, shuffle=True, chunk_batches=4, seed=0)
    first = [b.tolist() for b in batches.batch_indices()]
    second = [b.tolist() for b in batches.batch_indices()]
    assert first != second


def test_unshuffled_is_fixed_and_sorted_by_length() -> None:
    pairs = mixed_length_pairs(200)
    batches = LengthBatches(pairs, 8, shuffle=False)
    first = np.concatenate(batches.batch_indices()).tolist()
    assert np.concatenate(batches.batch_indices()).tolist() == first
    other = LengthBatches(pairs, 8, shuffle=False, seed=99)
    assert np.concatenate(other.batch_indices()).tolist() == first
    target_lengths = [len(pairs.targets[i]) for i in first]
    assert target_lengths == sorted(target_lengths)


def test_batches_hold_the_pairs_they_name() -> None:
    pairs = mixed_length_pairs(60)
    batches = LengthBatches(pairs, 8, shuffle=False)
    for indices, (inputs, outputs) in zip(batches.batch_indices(), batches, strict=True):
        for row, i in enumerate(indices):
            source, target = pairs.sources[i], pairs.targets[i]
            np.testing.assert_array_equal(inputs["encoder_ids"][row, : len(source)], source)
            assert (inputs["encoder_ids"][row, len(source) :] == PAD).all()
            np.testing.assert_array_equal(outputs[row, : len(target)], target)
            assert outputs[row, len(target)] == END


@pytest.mark.parametrize("shuffle", [True, False])
def test_padding_ratio_well_below_global_padding(shuffle: bool) -> None:
    pairs = mixed_length_pairs(300)
    decoder_lengths = [len(t) + 1 for t in pairs.targets]
    global_ratio = max(decoder_lengths) * len(decoder_lengths) / sum(decoder_lengths)
    assert global_ratio > 2  # the data is mixed enough for the comparison to mean something
    ratio = LengthBatches(pairs, 16, shuffle=shuffle, chunk_batches=8, seed=0).padding_ratio()
    assert ratio >= 1.0
    assert ratio - 1 < (global_ratio - 1) / 4


def test_padding_ratio_matches_served_batches() -> None:
    pairs = mixed_length_pairs(50)
    batches = LengthBatches(pairs, 8, shuffle=False)
    real = sum(len(t) + 1 for t in pairs.targets)
    padded = sum(outputs.size for _, outputs in batches)
    assert batches.padding_ratio() == pytest.approx(padded / real)


@pytest.mark.parametrize(("batch_size", "chunk_batches"), [(0, 4), (4, 0), (-1, 4)])
def test_invalid_sizes_rejected(batch_size: int, chunk_batches: int) -> None:
    with pytest.raises(ValueError):
        LengthBatches(mixed_length_pairs(5), batch_size, chunk_batches=chunk_batches)
