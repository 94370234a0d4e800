"""Evaluation: every distinct test sentence decoded once and scored against all its references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charmt.data.pairs import Pair
from charmt.data.vocabulary import END, START
from charmt.errors import CharmtError
from charmt.evaluation import metrics
from charmt.evaluation.scoring import REFERENCE_SEPARATOR, SAMPLE_COLUMNS, evaluate


def reversed_correctly(trained, count: int) -> list[str]:
    """``count`` training words of five letters (three distinct) that the model reverses exactly.

    The figures below are worked out by hand from these outputs, so the test first makes sure
    the outputs are what it assumes.
    """
    candidates = sorted({p.source for p in trained.train if len(p.source) == 5})
    candidates = [w for w in candidates if len(set(w)) >= 3]
    outputs = trained.translator.translate(candidates)
    words = [w for w, o in zip(candidates, outputs, strict=True) if o == w[::-1]]
    assert len(words) >= count, "the tiny model should reverse most of its training words"
    return words[:count]


def teacher_forced(translator, pairs: list[Pair]) -> tuple[float, float]:
    """Loss and accuracy over every target character (``<end>`` included) of every pair, by hand:
    one pair at a time, from the model's probabilities."""
    log_probabilities, hits = [], []
    for pair in pairs:
        source = np.array([translator.vocabularies.source.encode(pair.source)], dtype=np.int32)
        target = translator.vocabularies.target.encode(pair.target)
        inputs = np.array([[START, *target]], dtype=np.int32)
        probabilities = translator.model.predict([source, inputs], verbose=0)[0]
        for position, wanted in enumerate([*target, END]):
            log_probabilities.append(math.log(probabilities[position, wanted]))
            hits.append(int(np.argmax(probabilities[position])) == wanted)
    return -sum(log_probabilities) / len(log_probabilities), sum(hits) / len(hits)


def test_every_reference_counts_and_the_figures_are_right(trained):
    w1, w2 = reversed_correctly(trained, 2)
    r1, r2 = w1[::-1], w2[::-1]
    near_r2 = r2[:-1] + ("a" if r2[-1] != "a" else "b")  # one substitution away from r2
    test_pairs = [
        Pair(w1, "hhhhh"),  # w1's first reference is wrong ...
        Pair(w2, near_r2),
        Pair(w1, r1),  # ... its second, listed after another sentence, is the model's output
    ]
    result = evaluate(trained.translator, test_pairs, batch_size=64, length_margin=10)
    figures = result.metrics

    assert figures["test_sentences"] == 2
    # w1 matches its second reference; w2 matches none.
    assert figures["exact_match"] == 0.5
    # w1: 0 edits to its closest reference (5 characters); w2: 1 edit in 5. 1 - 1/10.
    assert figures["char_accuracy"] == pytest.approx(0.9)
    by_hand = [["hhhhh", r1], [near_r2]]
    assert figures["bleu"] == pytest.approx(metrics.bleu([r1, r2], by_hand), abs=1e-4)
    assert figures["chrf"] == pytest.approx(metrics.chrf([r1, r2], by_hand), abs=1e-4)
    # Teacher-forced over all three pairs (every reference is a target), one batch of 3.
    loss, accuracy = teacher_forced(trained.translator, test_pairs)
    assert figures["test_loss"] == pytest.approx(loss, rel=1e-3)
    assert figures["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert math.isfinite(figures["sentences_per_second"]) and figures["sentences_per_second"] > 0

    assert result.samples == [
        {
            "source": w1,
            "output": r1,
            "references": f"hhhhh{REFERENCE_SEPARATOR}{r1}",
            "exact": "yes",
            "char_accuracy": 1.0,
        },
        {
            "source": w2,
            "output": r2,
            "references": near_r2,
            "exact": "no",
            "char_accuracy": 0.8,
        },
    ]
    assert all(tuple(sample) == SAMPLE_COLUMNS for sample in result.samples)


def test_outputs_matching_any_reference_score_the_top_of_every_scale(trained):
    w1, w2 = reversed_correctly(trained, 2)
    # Each sentence's output is its last reference, never its first.
    test_pairs = [Pair(w1, "ggggg"), Pair(w1, w1[::-1]), Pair(w2, "hhh"), Pair(w2, w2[::-1])]
    figures = evaluate(trained.translator, test_pairs, batch_size=64, length_margin=10).metrics
    assert figures["exact_match"] == 1.0
    assert figures["char_accuracy"] == 1.0
    assert figures["chrf"] == pytest.approx(100.0)


def test_an_empty_test_split_is_a_clear_error(trained):
    with pytest.raises(CharmtError, match="test_fraction"):
        evaluate(trained.translator, [], batch_size=64, length_margin=10)


def test_score_split_decodes_each_distinct_source_once_against_all_its_references():
    from charmt.evaluation.scoring import score_split

    pairs = [Pair("ab", "ba"), Pair("ab", "bx"), Pair("cd", "dc"), Pair("ab", "ba")]
    calls = []

    def translate(sources: list[str]) -> list[str]:
        calls.append(list(sources))
        return [source[::-1] for source in sources]

    scored = score_split(translate, pairs)
    assert calls == [["ab", "cd"]], "one call, each distinct source once, in first-seen order"
    assert scored.references == [["ba", "bx", "ba"], ["dc"]]
    assert scored.translations == ["ba", "dc"]
    assert scored.scores["exact_match"] == 1.0 and scored.scores["char_accuracy"] == 1.0
    assert set(scored.scores) == {"exact_match", "char_accuracy", "bleu", "chrf"}
    only = score_split(translate, pairs, ("chrf",))
    assert set(only.scores) == {"chrf"} and only.scores["chrf"] == scored.scores["chrf"]


@pytest.mark.parametrize(
    ("options", "decoded_again"),
    [
        ({}, False),
        ({"beam_width": 3}, True),
        ({"length_margin": 4}, True),
        ({"batch_size": 8}, True),
    ],
)
def test_the_evaluate_stage_promotes_with_its_own_translations_when_decoded_as_served(
    options, decoded_again
):
    """The evaluate stage decodes the test split once: the promotion reuses the evaluation's
    translations unless evaluate's options differ from the served model's default decoding."""
    from charmt.evaluation.scoring import Evaluation, score_split
    from charmt.params import EvaluateParams
    from charmt.pipeline.evaluate import _promotion_score

    pairs = [Pair("ab", "ba"), Pair("cd", "dc")]
    scored = score_split(lambda sources: ["ba", "xx"], pairs)
    calls = []

    class Translator:
        def translate(self, sources):
            calls.append(list(sources))
            return [source[::-1] for source in sources]

    params = EvaluateParams(**{"batch_size": 256, "length_margin": 10, **options})
    score = _promotion_score(Translator(), params, Evaluation({}, [], scored), pairs)
    assert calls == ([["ab", "cd"]] if decoded_again else [])
    assert score == (1.0 if decoded_again else 0.5)
