"""One text at training and at inference: a decomposed 'é' (as macOS and many web forms send it)
is the 'é' the model was trained on, in the library, the CLI and the served model."""

import logging
import unicodedata

import pytest

from charmt.data.pairs import Pair, build_vocabularies, parse_line
from charmt.serving.pyfunc import check_request
from charmt.text import normalize

COMPOSED = "\u00e9t\u00e9"  # été, one code point per letter
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)  # e + U+0301 + t + e + U+0301


def test_both_forms_normalise_to_the_training_text():
    assert DECOMPOSED != COMPOSED
    assert normalize(DECOMPOSED) == normalize(COMPOSED) == COMPOSED
    assert parse_line(f"{DECOMPOSED}\t{DECOMPOSED}", "fra.txt:1") == Pair(COMPOSED, COMPOSED)


@pytest.fixture(scope="module")
def accented():
    """A tiny model over letters with an accented one, trained for a few epochs."""
    from charmt.inference.translator import Translator
    from charmt.training.fit import TrainParams, train_model

    words = ["\u00e9t\u00e9", "t\u00eat\u00e9", "\u00e9c\u00e9", "c\u00e9t\u00e9", "t\u00e9"]
    pairs = [Pair(w * k, (w * k)[::-1]) for w in words for k in (1, 2, 3)]
    vocabularies = build_vocabularies(pairs)
    params = TrainParams(latent_dim=16, batch_size=8, epochs=3, learning_rate=0.01, seed=1)
    result = train_model(pairs, pairs[:4], vocabularies, params, verbose=0)
    return Translator.from_training(result.model, vocabularies, pairs)


def test_the_translator_reads_both_forms_as_one(accented, caplog):
    with caplog.at_level(logging.WARNING):
        translations = accented.translate([COMPOSED, DECOMPOSED])
    assert translations[0] == translations[1]
    assert "never seen in training" not in caplog.text


def test_the_served_model_accepts_the_decomposed_form_as_the_composed_one(accented):
    known = set(accented.vocabularies.source.chars)
    assert "\u0301" not in known
    assert check_request([DECOMPOSED, COMPOSED], known) == [COMPOSED, COMPOSED]
