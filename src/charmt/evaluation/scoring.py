"""The evaluate stage's work: translations of the held-out test split (greedy or beam), scored.

The test split holds English sentences never seen in training, each with all its references.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from charmt.data.batches import EncodedPairs, LengthBatches, to_dataset
from charmt.data.pairs import Pair, group_references
from charmt.errors import CharmtError
from charmt.evaluation import metrics
from charmt.inference.translator import Translator

SAMPLE_COLUMNS = ("source", "output", "references", "exact", "char_accuracy")
REFERENCE_SEPARATOR = " | "


@dataclass
class Evaluation:
    """The figures of ``metrics/eval.json`` and one sample row per test sentence."""

    metrics: dict[str, float | int | str]
    samples: list[dict[str, str | float]]


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
    references = group_references(test_pairs)
    sources = list(references)
    reference_lists = [references[s] for s in sources]

    decoding = {"beam_width": beam_width, "length_alpha": length_alpha}
    translator.translate(sources[:1], batch_size, length_margin, **decoding)
    start = time.perf_counter()
    outputs = translator.translate(sources, batch_size, length_margin, **decoding)
    seconds = time.perf_counter() - start

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
        "exact_match": metrics.exact_match(outputs, reference_lists),
        "char_accuracy": metrics.char_accuracy(outputs, reference_lists),
        "bleu": metrics.bleu(outputs, reference_lists),
        "chrf": metrics.chrf(outputs, reference_lists),
        "test_loss": float(teacher_forced["loss"]),
        "test_accuracy": float(teacher_forced["accuracy"]),
        "sentences_per_second": len(sources) / max(seconds, 1e-9),
        "test_sentences": len(sources),
    }
    samples = [
        {
            "source": source,
            "output": output,
            "references": REFERENCE_SEPARATOR.join(refs),
            "exact": "yes" if output in refs else "no",
            "char_accuracy": round(metrics.char_accuracy([output], [refs]), 4),
        }
        for source, output, refs in zip(sources, outputs, reference_lists, strict=True)
    ]
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    return Evaluation(rounded, samples)
