"""Choosing the epoch to keep by how well it translates, not by its teacher-forced val_loss.

val_loss scores the next character given the true prefix; a model that overfits in val_loss can
still get better at decoding whole sentences (see docs/models.md). With ``train.select_by`` chrf
or char_accuracy, the validation sentences are decoded greedily with the weights of the moment,
every ``train.select_every`` epochs and at the last, and scored against all their references as
the evaluate stage scores the test split. The test split is never used here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from charmt.data.pairs import Pair
from charmt.data.vocabulary import Vocabularies
from charmt.evaluation.scoring import score_split
from charmt.inference.translator import Translator

VAL_LOSS = "val_loss"
# The history column of each decoding score train.select_by can name.
SCORE_COLUMNS = {"chrf": "val_chrf", "char_accuracy": "val_char_accuracy"}
# The seconds each scored epoch spent decoding and scoring (not training).
SECONDS_COLUMN = "val_decode_seconds"


def is_scored_epoch(epoch: int, every: int, last: int) -> bool:
    """Whether epoch ``epoch`` (1-based) is decoded and scored: every ``every``-th, and ``last``
    (``train.epochs``) always, so that the final weights are a candidate too."""
    return epoch % every == 0 or epoch == last


def criterion_column(select_by: str) -> str:
    """The history column that ranks epochs for ``select_by``: val_loss, or its score column."""
    return VAL_LOSS if select_by == VAL_LOSS else SCORE_COLUMNS[select_by]


def is_better(select_by: str, value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` (None: no candidate yet): lower val_loss, higher score.

    Strict, so among equal scores the earliest epoch stays kept.
    """
    if best is None:
        return True
    return value < best if select_by == VAL_LOSS else value > best


@dataclass(frozen=True)
class Scores:
    """One epoch's validation translation scores, and the seconds they took."""

    chrf: float
    char_accuracy: float
    seconds: float

    def columns(self) -> dict[str, float]:
        """The history row's cells: ``val_chrf``, ``val_char_accuracy``, ``val_decode_seconds``."""
        return {
            SCORE_COLUMNS["chrf"]: round(self.chrf, 4),
            SCORE_COLUMNS["char_accuracy"]: round(self.char_accuracy, 4),
            SECONDS_COLUMN: round(self.seconds, 3),
        }


class ValidationScorer:
    """Greedy translations of the distinct validation sentences, scored against all their
    references (chrF and char_accuracy), by ``charmt.evaluation.scoring.score_split``, as the
    evaluate stage scores the test split.

    The translator, and so its compiled decoding loop, is built once and shares the training
    model's weights: each call decodes with the weights of that moment.
    """

    def __init__(
        self,
        model: keras.Model,
        vocabularies: Vocabularies,
        train_pairs: Sequence[Pair],
        validation_pairs: Sequence[Pair],
    ) -> None:
        # The length cap of the translator the train stage saves: the scores are the saved
        # model's own.
        self.translator = Translator.from_training(model, vocabularies, train_pairs)
        self.validation_pairs = validation_pairs

    def __call__(self) -> Scores:
        """Decode and score the validation sentences with the model's current weights."""
        start = time.perf_counter()
        scored = score_split(self.translator.translate, self.validation_pairs, tuple(SCORE_COLUMNS))
        return Scores(
            chrf=scored.scores["chrf"],
            char_accuracy=scored.scores["char_accuracy"],
            seconds=time.perf_counter() - start,
        )
