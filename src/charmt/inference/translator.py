"""Translation with a trained model: English strings in, French strings out.

``Translator.translate`` decodes batches of similar length, greedily or by beam search. The model
directory it is saved to and loaded from is ``charmt.models.modeldir``. Input text is normalised as
the training text was (``charmt.text.normalize``), so a decomposed ``é`` reads as the ``é`` of
training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from charmt.data.batches import pad
from charmt.data.pairs import Pair
from charmt.data.vocabulary import Vocabularies
from charmt.errors import CharmtError
from charmt.inference.decoding import BeamDecoder, GreedyDecoder
from charmt.models import modeldir
from charmt.models.architectures import max_positions
from charmt.params import is_beam_width
from charmt.text import normalize

log = logging.getLogger(__name__)

DEFAULT_LENGTH_MARGIN = 10
DEFAULT_BATCH_SIZE = 256


@dataclass
class Translator:
    """English-to-French translation with a trained model, greedy or by beam search."""

    model: keras.Model
    vocabularies: Vocabularies
    max_source_length: int
    max_target_length: int

    def __post_init__(self) -> None:
        self._decoders: dict[tuple[int, float], GreedyDecoder | BeamDecoder] = {
            (1, 1.0): GreedyDecoder(self.model)
        }

    def decoder(
        self, beam_width: int = 1, length_alpha: float = 1.0
    ) -> GreedyDecoder | BeamDecoder:
        """The greedy decoder (``beam_width`` 1), else a beam decoder; each is built once."""
        if not is_beam_width(beam_width):
            raise CharmtError(
                f"beam width must be a positive integer (1: greedy), got {beam_width!r}"
            )
        if beam_width == 1:
            return self._decoders[(1, 1.0)]
        key = (beam_width, float(length_alpha))
        if key not in self._decoders:
            self._decoders[key] = BeamDecoder(self.model, beam_width, length_alpha)
        return self._decoders[key]

    @classmethod
    def from_training(
        cls, model: keras.Model, vocabularies: Vocabularies, train_pairs: Sequence[Pair]
    ) -> Translator:
        """A translator whose length limits are the longest training sentences."""
        return cls(
            model,
            vocabularies,
            max_source_length=max(len(p.source) for p in train_pairs),
            max_target_length=max(len(p.target) for p in train_pairs),
        )

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the model directory (``charmt.models.modeldir``; the caller makes it atomic)."""
        modeldir.save(
            directory,
            modeldir.TrainedModel(
                self.model, self.vocabularies, self.max_source_length, self.max_target_length
            ),
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Translator:
        """Load a saved translator, checked (``charmt.models.modeldir.load``: a ``CharmtError``
        naming the file and what to do for a directory of another version, damaged or mixed up)."""
        trained = modeldir.load(directory)
        return cls(
            trained.model,
            trained.vocabularies,
            trained.max_source_length,
            trained.max_target_length,
        )

    def translate(
        self,
        sentences: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        length_margin: int = DEFAULT_LENGTH_MARGIN,
        beam_width: int = 1,
        length_alpha: float = 1.0,
    ) -> list[str]:
        """Translate each sentence, in batches of similar length: greedily with ``beam_width`` 1,
        else by beam search (``charmt.inference.decoding.BeamDecoder``, normalised by length **
        alpha).

        Characters never seen in training become the unknown token (one warning lists them); an
        empty sentence gives an empty translation; a sentence longer than any in training is still
        decoded, with a warning, as quality drops there. A translation has at most
        ``output_cap(length_margin)`` characters: the longest training target plus
        ``length_margin`` (and no more than a Transformer has positions, which also cut a longer
        input).
        """
        decoder = self.decoder(beam_width, length_alpha)
        sentences = [normalize(s) for s in sentences]
        self._warn_about_inputs(sentences)
        # A Transformer has no positions past its max_length: the rest of a longer sentence is cut
        # (the warning above already says such sentences translate poorly).
        positions = max_positions(self.model)
        encoded = [
            np.array(self.vocabularies.source.encode(s)[:positions], dtype=np.int32)
            for s in sentences
        ]
        max_length = self.output_cap(length_margin)
        translations = [""] * len(sentences)
        # Sorting by length keeps each batch's rows ending at about the same step.
        order = sorted(
            (i for i, ids in enumerate(encoded) if len(ids)), key=lambda i: len(encoded[i])
        )
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            output = decoder(pad([encoded[i] for i in rows]), max_length)
            for i, ids in zip(rows, output, strict=True):
                translations[i] = self.vocabularies.target.decode(ids)
        return translations

    def output_cap(self, length_margin: int = DEFAULT_LENGTH_MARGIN) -> int:
        """The most characters a translation can have: longest training target + ``length_margin``
        (a Transformer: at most its ``model.max_length`` positions).

        Decoding runs at most this many steps; a row still going at the cap is cut there (the
        ``<end>`` it would emit next needs no step of its own).
        """
        cap = self.max_target_length + length_margin
        positions = max_positions(self.model)
        return cap if positions is None else min(cap, positions)

    def _warn_about_inputs(self, sentences: Sequence[str]) -> None:
        per_sentence = [self.vocabularies.source.unknown_chars(s) for s in sentences]
        unknown = sorted(set().union(*per_sentence))
        if unknown:
            count = sum(bool(chars) for chars in per_sentence)
            log.warning(
                "%d sentence(s) contain characters never seen in training, read as unknown: %s",
                count,
                "".join(unknown),
            )
        too_long = sum(len(s) > self.max_source_length for s in sentences)
        if too_long:
            log.warning(
                "%d sentence(s) are longer than the longest training sentence (%d characters); "
                "their translations are likely poor",
                too_long,
                self.max_source_length,
            )
