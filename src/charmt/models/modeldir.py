"""The trained model's directory on disk (``models/``): what it holds, written and read back.

``model.keras`` (the training model; inference models are rebuilt from its layers),
``vocabularies.json``, and ``model.json``: the directory's format version, the architecture, the
longest training sentences (which set the decoding length cap), and the sha256 of the other two
files.

Reading checks everything it can: a directory written by another version of charmt, a missing,
truncated, corrupted or edited file, or a vocabulary that does not fit the model is refused with
one line naming the file and what to do, never a traceback and never a wrong translation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras

# model.keras holds its compiled optimizer and loss: their classes must be registered with Keras
# (by importing the module) before safe mode can rebuild them.
import charmt.models.optimization  # noqa: F401
from charmt.data.vocabulary import VOCABULARIES_FILE, Vocabularies
from charmt.errors import CharmtError
from charmt.io.atomic import write_json
from charmt.io.digest import sha256_of
from charmt.models.architectures import architecture_of, vocabulary_sizes
from charmt.params import RENAMED_ARCHITECTURES, ModelParams

MODEL_FILE = "model.keras"
INFO_FILE = "model.json"
# Bump when the directory's layout or the meaning of its files changes; older directories are
# refused with a clear message instead of being read wrongly.
FORMAT_VERSION = 1
RETRAIN = "re-run the train stage (dvc repro train)"


@dataclass(frozen=True)
class TrainedModel:
    """What a model directory holds: the trained model, its vocabularies, its length limits."""

    model: keras.Model
    vocabularies: Vocabularies
    max_source_length: int
    max_target_length: int


def save(directory: str | os.PathLike[str], trained: TrainedModel) -> None:
    """Write the model files into ``directory`` (the caller makes the directory atomic)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    trained.model.save(directory / MODEL_FILE)
    trained.vocabularies.save(directory / VOCABULARIES_FILE)
    write_json(
        directory / INFO_FILE,
        {
            "format_version": FORMAT_VERSION,
            "architecture": architecture_of(trained.model).model_dump(),
            "max_source_length": trained.max_source_length,
            "max_target_length": trained.max_target_length,
            "sha256": {
                name: sha256_of(directory / name) for name in (MODEL_FILE, VOCABULARIES_FILE)
            },
        },
    )


def load(directory: str | os.PathLike[str]) -> TrainedModel:
    """Read a model directory; Keras' safe mode refuses to run code stored in the file.

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
        if sha256_of(path) != expected:
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
    recorded = _recorded_architecture(info, directory / INFO_FILE)
    if recorded != architecture_of(model):
        raise CharmtError(
            f"{directory / INFO_FILE}: records {recorded!r} but {MODEL_FILE} is "
            f"{architecture_of(model)!r}; the directory is mixed up, re-run training"
        )
    return TrainedModel(
        model, vocabularies, int(info["max_source_length"]), int(info["max_target_length"])
    )


def _recorded_architecture(info: dict, path: Path) -> ModelParams:
    """The architecture ``model.json`` records, under today's name. Written by train since the
    attention model exists; older directories hold the Keras example's model."""
    recorded = info.get("architecture")
    if isinstance(recorded, dict) and recorded.get("architecture") in RENAMED_ARCHITECTURES:
        recorded = {**recorded, "architecture": RENAMED_ARCHITECTURES[recorded["architecture"]]}
    try:
        return ModelParams.from_dict({} if recorded is None else recorded)
    except (CharmtError, TypeError) as error:
        raise CharmtError(f"{path}: unreadable architecture ({error}); re-run training") from None


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
        sizes = dict(zip(("source", "target"), vocabulary_sizes(model), strict=True))
    except ValueError:
        raise CharmtError(
            f"{directory / MODEL_FILE}: not a charmt model (no input layers of charmt); {RETRAIN}"
        ) from None
    for side, size in sizes.items():
        actual = getattr(vocabularies, side).size
        if actual != size:
            raise CharmtError(
                f"{directory / VOCABULARIES_FILE}: the {side} vocabulary has {actual} ids but the "
                f"model was trained with {size}; the files do not belong together: {RETRAIN}"
            )
