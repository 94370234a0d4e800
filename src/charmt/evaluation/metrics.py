"""Translation quality against one or more references per sentence.

Tatoeba often gives several French translations of one English sentence; every metric here takes
all of them: a hypothesis is scored against its closest reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sacrebleu
from rapidfuzz.distance import Levenshtein

# Each score of metrics/eval.json and the range it lies in, for the checks of every run. Here,
# not in charmt.evaluation.scoring, so that checks of a run's files need not import TensorFlow.
SCORE_RANGES = {
    "exact_match": (0.0, 1.0),
    "char_accuracy": (0.0, 1.0),
    "bleu": (0.0, 100.0),
    "chrf": (0.0, 100.0),
    "test_loss": (0.0, math.inf),
    "test_accuracy": (0.0, 1.0),
    "sentences_per_second": (0.0, math.inf),
}


def closest_reference(hypothesis: str, references: Sequence[str]) -> tuple[str, int]:
    """The reference with the smallest character edit distance to ``hypothesis``, and that distance.

    Ties go to the first reference listed.
    """
    if not references:
        raise ValueError("every sentence needs at least one reference")
    distances = [Levenshtein.distance(hypothesis, reference) for reference in references]
    best = min(range(len(references)), key=distances.__getitem__)
    return references[best], distances[best]


def exact_match(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Share of hypotheses equal to any of their references."""
    _check_lengths(hypotheses, references)
    matches = sum(h in refs for h, refs in zip(hypotheses, references, strict=True))
    return matches / len(hypotheses) if hypotheses else 0.0


def char_accuracy(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """``1 - sum(edit distance to closest reference) / sum(closest reference lengths)``, >= 0.

    Summed over the corpus before dividing, so long sentences weigh by their length; floored at
    0 because a long wrong output can cost more edits than its reference has characters.
    """
    _check_lengths(hypotheses, references)
    distance = length = 0
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        reference, edits = closest_reference(hypothesis, refs)
        distance += edits
        length += len(reference)
    if length == 0:
        return 1.0 if distance == 0 else 0.0
    return max(0.0, 1.0 - distance / length)


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu, 0-100) over all references of each sentence."""
    return sacrebleu.corpus_bleu(list(hypotheses), _reference_streams(hypotheses, references)).score


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus chrF (sacrebleu, 0-100) over all references of each sentence."""
    return sacrebleu.corpus_chrf(list(hypotheses), _reference_streams(hypotheses, references)).score


def _reference_streams(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> list[list[str | None]]:
    # sacrebleu wants one stream per reference position; None fills the positions of sentences
    # that have fewer references.
    _check_lengths(hypotheses, references)
    width = max((len(refs) for refs in references), default=1)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]


def _check_lengths(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
