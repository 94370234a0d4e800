"""Greedy decoding: batched equals the Keras example's one-at-a-time way; odd inputs behave."""

import logging

import numpy as np
import pytest
from decoding_check import assert_batched_equals_one_sentence_decoding

from charmt.data.vocabulary import END, Vocabularies, Vocabulary
from charmt.inference.decoding import GreedyDecoder, OneSentenceDecoder
from charmt.inference.translator import Translator
from charmt.models.architectures import build_model


def test_batched_decoding_equals_one_sentence_at_a_time(trained):
    # Sentences of different lengths in one batch, and one longer than any in training.
    sources = [*sorted({p.source for p in trained.held_out}, key=len)[::6], "abcdefghabc"]
    assert_batched_equals_one_sentence_decoding(trained.translator, sources)


def never_ending_translator(max_target_length: int) -> Translator:
    """A translator whose model emits "a" at every step and never ``<end>``.

    Its output layer ignores the decoder's state (zero kernel) and its bias favours "a", so greedy
    decoding only ever stops at the length cap.
    """
    vocabularies = Vocabularies(Vocabulary(tuple("abc")), Vocabulary(tuple("abc")))
    model = build_model(vocabularies.source.size, vocabularies.target.size, latent_dim=4)
    next_char = model.get_layer("next_char")
    kernel, bias = next_char.get_weights()
    bias[:] = 0.0
    bias[vocabularies.target.encode("a")[0]] = 10.0
    next_char.set_weights([np.zeros_like(kernel), bias])
    return Translator(model, vocabularies, max_source_length=5, max_target_length=max_target_length)


@pytest.mark.parametrize(("max_target_length", "length_margin"), [(5, 3), (7, 0)])
def test_length_cap_is_longest_training_target_plus_margin(max_target_length, length_margin):
    translator = never_ending_translator(max_target_length)
    cap = max_target_length + length_margin
    assert translator.output_cap(length_margin) == cap
    outputs = translator.translate(["abc", "ba", ""], length_margin=length_margin)
    assert outputs == ["a" * cap, "a" * cap, ""]


def test_both_decoders_stop_at_the_length_cap():
    translator = never_ending_translator(5)
    ids = np.array(translator.vocabularies.source.encode("abc"), dtype=np.int32)
    batched = GreedyDecoder(translator.model)(ids[None, :], max_length=4)
    one_at_a_time = OneSentenceDecoder(translator.model)(ids, max_length=4)
    a = translator.vocabularies.target.encode("a")[0]
    assert batched.tolist() == [[a] * 4]
    assert one_at_a_time == [a] * 4
    assert END not in one_at_a_time


def test_empty_input_gives_empty_output_without_disturbing_others(trained):
    translator = trained.translator
    alone = translator.translate(["abc", "hgf"])
    with_empty = translator.translate(["abc", "", "hgf"])
    assert with_empty == [alone[0], "", alone[1]]
    assert translator.translate([]) == []


def test_unknown_characters_warn_once_and_still_decode(trained, caplog):
    translator = trained.translator
    with caplog.at_level(logging.WARNING, logger="charmt"):
        outputs = translator.translate(["abzc", "xyz", "abc"])
    warnings = [r.getMessage() for r in caplog.records if "never seen" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 sentence(s)" in warnings[0] and all(c in warnings[0] for c in "xyz")

    # Every unseen character is read as the same unknown token: replacing one unseen character
    # by another changes nothing, and the rest of the sentence is still translated.
    replaced = translator.translate(["ab\u00e9c", "\u00e9\u00e9\u00e9"])
    assert outputs[0] == replaced[0]
    assert outputs[1] == replaced[1]
    assert outputs[0] and set(outputs[0]) <= set(translator.vocabularies.target.chars)
    assert outputs[2] == translator.translate(["abc"])[0]


def test_input_longer_than_training_is_decoded_with_a_warning(trained, caplog):
    long = "abcdefgh" * 3
    with caplog.at_level(logging.WARNING, logger="charmt"):
        (output,) = trained.translator.translate([long])
    assert any(
        "longer than the longest training sentence" in r.getMessage() for r in caplog.records
    )
    assert len(output) <= trained.translator.output_cap()
