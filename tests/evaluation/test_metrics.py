"""Tests for charmt.evaluation.metrics: scores against several references per sentence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from charmt.evaluation.metrics import bleu, char_accuracy, chrf, closest_reference, exact_match

Metric = Callable[[Sequence[str], Sequence[Sequence[str]]], float]
ALL_METRICS = [exact_match, char_accuracy, bleu, chrf]

REFERENCES = [
    ["Il fait très beau aujourd'hui dans la ville.", "Le temps est magnifique en ville."],
    ["Je ne sais pas où il est allé hier soir."],
    ["Nous allons manger au restaurant ce soir.", "On va dîner au restaurant ce soir.", "x"],
]
WRONG = [
    "Le chat dort sur le canapé rouge.",
    "Elle a acheté trois pommes vertes.",
    "Personne ne répond au téléphone.",
]


def test_exact_match_any_reference() -> None:
    hypotheses = ["a", "b", "c", "d"]
    references = [["x", "a"], ["b"], ["y", "z"], ["d", "d"]]
    assert exact_match(hypotheses, references) == pytest.approx(3 / 4)
    assert exact_match(["A"], [["a"]]) == 0.0


def test_closest_reference() -> None:
    assert closest_reference("abc", ["xyz", "abd"]) == ("abd", 1)
    assert closest_reference("abc", ["abd", "abe"]) == ("abd", 1)  # ties: first listed
    with pytest.raises(ValueError):
        closest_reference("abc", [])


def test_char_accuracy_uses_closest_reference() -> None:
    # 'abc' -> 'abd' is 1 edit over 3 characters, whichever position 'abd' has.
    assert char_accuracy(["abc"], [["abd", "xyz"]]) == pytest.approx(1 - 1 / 3)
    assert char_accuracy(["abc"], [["xyz", "abd"]]) == pytest.approx(1 - 1 / 3)
    assert char_accuracy(["abc"], [["abcdefgh", "abd"]]) == pytest.approx(1 - 1 / 3)
    assert char_accuracy(["abc"], [["xyz", "abc"]]) == 1.0


def test_char_accuracy_sums_over_the_corpus() -> None:
    # 1 edit in 3 characters, 0 edits in 10: 1 - 1/13, not the mean of 2/3 and 1.
    hypotheses = ["abc", "abcdefghij"]
    references = [["abd"], ["abcdefghij"]]
    assert char_accuracy(hypotheses, references) == pytest.approx(1 - 1 / 13)


def test_char_accuracy_floors_at_zero() -> None:
    # 10 edits against a 2-character reference.
    assert char_accuracy(["xxxxxxxxxx"], [["ab"]]) == 0.0
    # An empty output: every reference character is one edit.
    assert char_accuracy([""], [["abcd"]]) == 0.0
    assert char_accuracy(["ab"], [["abcd"]]) == pytest.approx(0.5)


@pytest.mark.parametrize("metric", [bleu, chrf])
def test_identical_hypotheses_score_100(metric: Metric) -> None:
    hypotheses = [refs[0] for refs in REFERENCES]
    assert metric(hypotheses, REFERENCES) == pytest.approx(100)
    # Matching a reference other than the first also counts.
    hypotheses = [refs[-1] for refs in REFERENCES[:2]]
    assert metric(hypotheses, REFERENCES[:2]) == pytest.approx(100)


# What unrelated French sentences can score, each on its metric's own scale. They share no word
# of four letters or more with their references, only short function words ("le", "au") and the
# period, so BLEU (0-100, word n-grams) stays near 0; chrF (0-100, character n-grams up to 6)
# finds common French letter sequences; char_accuracy (0-1) finds shared letters in an edit path.
UNRELATED_BOUNDS = {exact_match: 0.0, bleu: 5.0, chrf: 20.0, char_accuracy: 0.35}


@pytest.mark.parametrize("metric", [bleu, chrf])
def test_wrong_hypotheses_score_lower(metric: Metric) -> None:
    perfect = metric([refs[0] for refs in REFERENCES], REFERENCES)
    half = [REFERENCES[0][0], REFERENCES[1][0][:20], WRONG[2]]
    wrong = metric(WRONG, REFERENCES)
    assert 0 <= wrong < metric(half, REFERENCES) < perfect


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_unrelated_text_scores_near_the_bottom_of_each_scale(metric: Metric) -> None:
    assert 0 <= metric(WRONG, REFERENCES) <= UNRELATED_BOUNDS[metric]
    # Not one character in common with any reference: the very bottom of every scale.
    assert metric(["www", "zzz", "kkk"], REFERENCES) == 0.0


@pytest.mark.parametrize("metric", [bleu, chrf])
def test_different_numbers_of_references(metric: Metric) -> None:
    references = [["un deux trois quatre cinq"], ["six sept huit neuf dix", "a b", "c d e"]]
    good = metric(["un deux trois quatre cinq", "six sept huit neuf dix"], references)
    assert good == pytest.approx(100)
    bad = metric(["un deux trois quatre cinq", "onze douze treize"], references)
    assert bad < good


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_mismatched_lengths_raise(metric: Metric) -> None:
    with pytest.raises(ValueError):
        metric(["a", "b"], [["a"]])
    with pytest.raises(ValueError):
        metric(["a"], [["a"], ["b"]])


@pytest.mark.parametrize("metric", [exact_match, char_accuracy])
def test_perfect_scores(metric: Metric) -> None:
    hypotheses = [refs[-1] for refs in REFERENCES]
    assert metric(hypotheses, REFERENCES) == 1.0
