"""Greedy decoding: batched equals the seed's one-at-a-time way; odd inputs behave."""

import logging

import numpy as np

from charmt.batches import pad
from charmt.decoding import GreedyDecoder, SeedStyleDecoder
from charmt.vocab import END


def test_batched_decoding_equals_one_sentence_at_a_time(trained):
    translator = trained.translator
    # Sentences of different lengths in one batch, and one longer than any in training.
    sources = [*sorted({p.source for p in trained.held_out}, key=len)[::6], "abcdefghabc"]
    assert len({len(s) for s in sources}) >= 4
    max_length = translator.max_target_length + 11
    encoded = [np.array(translator.vocabularies.source.encode(s), dtype=np.int32) for s in sources]

    batched = GreedyDecoder(translator.model)(pad(encoded), max_length)
    decode_like_seed = SeedStyleDecoder(translator.model)
    for row, ids in zip(batched, encoded, strict=True):
        one_at_a_time = decode_like_seed(ids, max_length)
        assert translator.vocabularies.target.decode(row) == translator.vocabularies.target.decode(
            one_at_a_time
        )
        assert list(row[: len(one_at_a_time)]) == one_at_a_time


def test_decoding_stops_at_the_length_cap(trained):
    ids = np.array([trained.translator.vocabularies.source.encode("abcdefg")], dtype=np.int32)
    output = GreedyDecoder(trained.translator.model)(ids, max_length=2)
    assert output.shape == (1, 2)
    assert END not in output[0]


def test_empty_input_gives_empty_output_without_disturbing_others(trained):
    translator = trained.translator
    alone = translator.translate(["abc", "hgf"])
    with_empty = translator.translate(["abc", "", "hgf"])
    assert with_empty == [alone[0], "", alone[1]]
    assert translator.translate([]) == []


def test_unknown_characters_warn_once_and_still_decode(trained, caplog):
    with caplog.at_level(logging.WARNING, logger="charmt"):
        outputs = trained.translator.translate(["abzc", "xyz", "abc"])
    assert len(outputs) == 3
    warnings = [r.getMessage() for r in caplog.records if "never seen" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 sentence(s)" in warnings[0] and all(c in warnings[0] for c in "xyz")


def test_input_longer_than_training_is_decoded_with_a_warning(trained, caplog):
    long = "abcdefgh" * 3
    with caplog.at_level(logging.WARNING, logger="charmt"):
        (output,) = trained.translator.translate([long])
    assert any(
        "longer than the longest training sentence" in r.getMessage() for r in caplog.records
    )
    assert len(output) <= trained.translator.max_target_length + 10
