"""A trained model with everything inference needs, saved as one directory.

``models/`` holds ``model.keras`` (the training model; inference models are rebuilt from its
layers), ``vocabularies.json``, and ``model.json`` (the directory's format version, the
architecture, the longest training sentences, which set the decoding length cap, and the sha256 of
the other two files). ``Translator.translate`` turns English strings into French strings.

Loading checks everything it can: a directory written by another version of charmt, a missing,
truncated, corrupted or edited file, or a vocabulary that does not fit the model is refused with
one line naming the file and what to do, never a traceback and never a wrong translation.
"""

from __future__ import annotations

import hashlib
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
# Bump when the directory's layout or the meaning of its files changes; older directories are
# refused with a clear message instead of being read wrongly.
FORMAT_VERSION = 1
RETRAIN = "re-run the train stage (dvc repro train)"
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
                "format_version": FORMAT_VERSION,
                "architecture": architecture_of(self.model).model_dump(),
                "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length,
                "sha256": {
                    name: _sha256(directory / name) for name in (MODEL_FILE, VOCABULARIES_FILE)
                },
            },
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Translator:
        """Load a saved translator; Keras' safe mode refuses to run code stored in the file.

        Raises ``CharmtError`` (file and what to do) for a directory of another format version, a
        missing or damaged file, or files that do not belong together.
        """
        directory = Path(directory)
        if not (directory / MODEL_FILE).is_file():
            raise CharmtError(
                f"{directory}: no trained model ({MODEL_FILE}) there; run the train stage "
                "(dvc repro train) or pass --model with a models/ directory or an MLflow model URI"
            )
        info = _read_info(directory / INFO_FILE)
        for name, expected in info["sha256"].items():
            path = directory / name
            if not path.is_file():
                raise CharmtError(f"{path}: missing from the model directory; {RETRAIN}")
            if _sha256(path) != expected:
                raise CharmtError(
                    f"{path}: does not match the model it was saved with (edited, truncated or "
                    f"damaged); restore it with `dvc checkout {directory}` or {RETRAIN}"
                )
        vocabularies = Vocabularies.load(directory / VOCABULARIES_FILE)
        try:
            model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        except Exception as error:  # a damaged zip fails in many ways, none worth a traceback
            reason = " ".join(str(error).split())[:200]
            raise CharmtError(
                f"{directory / MODEL_FILE}: cannot load the model ({type(error).__name__}: "
                f"{reason}); {RETRAIN}"
            ) from None
        _check_fit(model, vocabularies, directory)
        # Written by train since the attention model exists; older directories hold the seed's.
        try:
            recorded = ModelParams.from_dict(info.get("architecture"))
        except (CharmtError, TypeError) as error:
            raise CharmtError(
                f"{directory / INFO_FILE}: unreadable architecture ({error}); re-run training"
            ) from None
        if recorded != architecture_of(model):
            raise CharmtError(
                f"{directory / INFO_FILE}: records {recorded!r} but {MODEL_FILE} is "
                f"{architecture_of(model)!r}; the directory is mixed up, re-run training"
            )
        return cls(
            model, vocabularies, int(info["max_source_length"]), int(info["max_target_length"])
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
        decoded, with a warning, as quality drops there. A translation has at most
        ``output_cap(length_margin)`` characters: the longest training target plus
        ``length_margin``.
        """
        decoder = self.decoder(beam_width, length_alpha)
        self._warn_about_inputs(sentences)
        encoded = [np.array(self.vocabularies.source.encode(s), dtype=np.int32) for s in sentences]
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
        """The most characters a translation can have: longest training target + ``length_margin``.

        Decoding runs at most this many steps; a row still going at the cap is cut there (the
        ``<end>`` it would emit next needs no step of its own).
        """
        return self.max_target_length + length_margin

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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_info(path: Path) -> dict:
    """``model.json``, checked: this format version, lengths and file digests present."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharmtError(f"{path}: missing from the model directory; {RETRAIN}") from None
    except (OSError, ValueError) as error:
        raise CharmtError(f"{path}: not readable JSON ({error}); {RETRAIN}") from None
    version = info.get("format_version") if isinstance(info, dict) else None
    if version != FORMAT_VERSION:
        raise CharmtError(
            f"{path}: a model directory of format version {version} (written by another version "
            f"of charmt); this charmt reads version {FORMAT_VERSION}: {RETRAIN}"
        )
    lengths_ok = all(
        isinstance(info.get(key), int) and info[key] > 0
        for key in ("max_source_length", "max_target_length")
    )
    digests = info.get("sha256")
    if (
        not lengths_ok
        or not isinstance(digests, dict)
        or set(digests) != {MODEL_FILE, VOCABULARIES_FILE}
    ):
        raise CharmtError(
            f"{path}: edited or damaged (expected max_source_length, max_target_length and the "
            f"sha256 of {MODEL_FILE} and {VOCABULARIES_FILE}); {RETRAIN}"
        )
    return info


def _check_fit(model: keras.Model, vocabularies: Vocabularies, directory: Path) -> None:
    """The vocabularies must have the sizes the model was built for, or translations are garbage."""
    try:
        sizes = {
            "source": model.get_layer("encoder_one_hot").input_dim,
            "target": model.get_layer("decoder_one_hot").input_dim,
        }
    except ValueError:
        raise CharmtError(
            f"{directory / MODEL_FILE}: not a charmt model (no one-hot input layers); {RETRAIN}"
        ) from None
    for side, size in sizes.items():
        actual = getattr(vocabularies, side).size
        if actual != size:
            raise CharmtError(
                f"{directory / VOCABULARIES_FILE}: the {side} vocabulary has {actual} ids but the "
                f"model was trained with {size}; the files do not belong together: {RETRAIN}"
            )
