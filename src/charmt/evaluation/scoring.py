"""Scoring a split, written once: decode its distinct English sentences, score the translations
against all their references.

The evaluate stage scores the test split with it (``evaluate``: the figures of
``metrics/eval.json``; the promotion reuses its translations), the champion policy scores an older
champion on the same pairs, and ``train.select_by`` scores the validation split every few epochs.
The test split holds English sentences never seen in training, each with all its references.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from charmt.data.batches import EncodedPairs, LengthBatches, to_dataset
from charmt.data.pairs import Pair
from charmt.data.references import group_references
from charmt.errors import CharmtError
from charmt.evaluation import metrics

if TYPE_CHECKING:
    from charmt.inference.translator import Translator

# Whatever turns English sentences into French ones: Translator.translate, a pyfunc's predict.
Translate = Callable[[list[str]], list[str]]
# The corpus scores of a split, by the name they carry in metrics/eval.json.
SCORES: dict[str, Callable[[Sequence[str], Sequence[Sequence[str]]], float]] = {
    "exact_match": metrics.exact_match,
    "char_accuracy": metrics.char_accuracy,
    "bleu": metrics.bleu,
    "chrf": metrics.chrf,
}


@dataclass(frozen=True)
class ScoredSplit:
    """A split's distinct sources, their references and translations, the seconds the decoding
    took, and the corpus scores (unrounded)."""

    sources: list[str]
    references: list[list[str]]
    translations: list[str]
    seconds: float
    scores: dict[str, float]


def score_split(
    translate: Translate, pairs: Sequence[Pair], names: Sequence[str] = tuple(SCORES)
) -> ScoredSplit:
    """Translate each distinct source of ``pairs`` once (one call of ``translate``) and score the
    translations against all its references: the ``SCORES`` named in ``names``."""
    grouped = group_references(pairs)
    sources = list(grouped)
    references = [grouped[source] for source in sources]
    start = time.perf_counter()
    translations = list(translate(sources))
    seconds = time.perf_counter() - start
    scores = {name: SCORES[name](translations, references) for name in names}
    return ScoredSplit(sources, references, translations, seconds, scores)


SAMPLE_COLUMNS = ("source", "output", "references", "exact", "char_accuracy")
REFERENCE_SEPARATOR = " | "


@dataclass
class Evaluation:
    """The evaluate stage's result: the figures of ``metrics/eval.json``, one sample row per test
    sentence, and the scored split itself (its translations serve the promotion)."""

    metrics: dict[str, float | int | str]
    samples: list[dict[str, str | float]]
    scored: ScoredSplit


def evaluate(
    translator: Translator,
    test_pairs: Sequence[Pair],
    batch_size: int,
    length_margin: int,
    beam_width: int = 1,
    length_alpha: float = 1.0,
) -> Evaluation:
    """Translate every distinct test sentence and score it against all its references: greedily
    with ``beam_width`` 1, else by beam search (``decoding`` in the figures says which).

    Also measures the teacher-forced loss and accuracy over the real characters of every test
    pair, and the decoding throughput (after one warm-up sentence, which compiles the loop).
    """
    if not test_pairs:
        raise CharmtError("the test split is empty; set preprocess.test_fraction above 0")

    def translate(sentences: list[str]) -> list[str]:
        return translator.translate(
            sentences, batch_size, length_margin, beam_width=beam_width, length_alpha=length_alpha
        )

    translate([test_pairs[0].source])  # the warm-up: compiles the decoding loop
    scored = score_split(translate, test_pairs)
    teacher_forced = translator.model.evaluate(
        to_dataset(
            LengthBatches(
                EncodedPairs.encode(test_pairs, translator.vocabularies), batch_size, shuffle=False
            )
        ),
        verbose=0,
        return_dict=True,
    )
    figures: dict[str, float | int | str] = {
        "decoding": "greedy" if beam_width == 1 else "beam",
        "beam_width": beam_width,
        **scored.scores,
        "test_loss": float(teacher_forced["loss"]),
        "test_accuracy": float(teacher_forced["accuracy"]),
        "sentences_per_second": len(scored.sources) / max(scored.seconds, 1e-9),
        "test_sentences": len(scored.sources),
    }
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    return Evaluation(rounded, _samples(scored), scored)


def _samples(scored: ScoredSplit) -> list[dict[str, str | float]]:
    """One row of ``metrics/samples.tsv`` per test sentence (``SAMPLE_COLUMNS``)."""
    return [
        {
            "source": source,
            "output": output,
            "references": REFERENCE_SEPARATOR.join(refs),
            "exact": "yes" if output in refs else "no",
            "char_accuracy": round(metrics.char_accuracy([output], [refs]), 4),
        }
        for source, output, refs in zip(
            scored.sources, scored.translations, scored.references, strict=True
        )
    ]
