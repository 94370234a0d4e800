"""A trained model with everything inference needs, saved as one directory.

``models/`` holds ``model.keras`` (the training model; inference models are rebuilt from its
layers), ``vocabularies.json``, and ``model.json`` (the architecture, and the longest training
sentences, which set the decoding length cap). ``Translator.translate`` turns English strings
into French strings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from charmt.atomic import write_json
from charmt.batches import pad
from charmt.data import Pair
from charmt.decoding import BeamDecoder, GreedyDecoder
from charmt.errors import CharmtError
from charmt.model import ModelParams, architecture_of
from charmt.vocab import Vocabularies

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
VOCABULARIES_FILE = "vocabularies.json"
INFO_FILE = "model.json"
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
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
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
        """Write the model files into ``directory`` (the caller makes the directory atomic)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        self.vocabularies.save(directory / VOCABULARIES_FILE)
        write_json(
            directory / INFO_FILE,
            {
                "architecture": dataclasses.asdict(architecture_of(self.model)),
                "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length,
            },
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Translator:
        """Load a saved translator; Keras' safe mode refuses to run code stored in the file."""
        directory = Path(directory)
        if not (directory / MODEL_FILE).is_file():
            raise CharmtError(
                f"{directory}: no trained model ({MODEL_FILE}) there; run the train stage "
                "(dvc repro train) or pass --model with a models/ directory or an MLflow model URI"
            )
        try:
            info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
            model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        except (OSError, ValueError, KeyError) as error:
            raise CharmtError(
                f"{directory}: cannot load the model ({error}); re-run training"
            ) from None
        # Written by train since the attention model exists; older directories hold the seed's.
        try:
            recorded = ModelParams.from_dict(info.get("architecture"))
        except (CharmtError, TypeError) as error:
            raise CharmtError(
                f"{directory / INFO_FILE}: unreadable architecture ({error}); re-run training"
            ) from None
        if recorded != architecture_of(model):
            raise CharmtError(
                f"{directory / INFO_FILE}: records {recorded} but {MODEL_FILE} is "
                f"{architecture_of(model)}; the directory is mixed up, re-run training"
            )
        return cls(
            model,
            Vocabularies.load(directory / VOCABULARIES_FILE),
            int(info["max_source_length"]),
            int(info["max_target_length"]),
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
        else by beam search (``charmt.decoding.BeamDecoder``, normalised by length ** alpha).

        Characters never seen in training become the unknown token (one warning lists them); an
        empty sentence gives an empty translation; a sentence longer than any in training is still
        decoded, with a warning, as quality drops there. Output is capped at the longest training
        target plus ``length_margin`` characters.
        """
        decoder = self.decoder(beam_width, length_alpha)
        self._warn_about_inputs(sentences)
        encoded = [np.array(self.vocabularies.source.encode(s), dtype=np.int32) for s in sentences]
        # The end token takes one step, hence the + 1.
        max_length = self.max_target_length + length_margin + 1
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
