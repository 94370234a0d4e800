"""Publishing a trained translator: the models a training run logs (the Keras model and the
string-to-string pyfunc that is registered and served), and completing a training's run with them.

Tracking (``charmt.tracking``) is MLflow plumbing that knows nothing of translators; this module
hands it what a trained translator logs.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

import charmt
from charmt import tracking
from charmt.errors import CharmtError
from charmt.inference.translator import Translator
from charmt.serving import pyfunc
from charmt.tracking import KERAS_MODEL, TRANSLATOR_MODEL, store_lock


def installed(*distributions: str) -> str:
    """``name==version`` of the first of ``distributions`` installed here (TensorFlow is
    ``tensorflow-cpu`` by default, ``tensorflow`` for GPU users)."""
    for name in distributions:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(" or ".join(distributions))


def model_requirements() -> list[str]:
    """The pinned pip requirements of both logged models: what loading them imports.

    Given explicitly, so MLflow runs no requirement-inference subprocess per model (about 10 s
    each), and right: inferred, the translator's listed charmt itself (not on PyPI) and
    neither TensorFlow nor Keras. charmt's own code travels with the model (``code_paths``).
    """
    return [
        installed("mlflow"),
        installed("keras"),
        installed("tensorflow", "tensorflow-cpu"),
        installed("numpy"),
    ]


def log_trained_model(translator: Translator, directory: Path, skip: Collection[str] = ()) -> None:
    """Log the Keras model (``model``) and the string-to-string pyfunc (``translator``), except
    those named in ``skip`` (already logged).

    ``directory`` is the saved translator (``Translator.save``): the pyfunc is built from it.
    """
    # Any batch size and any length: the model takes right-padded id sequences.
    ids = np.dtype("int32")
    signature = ModelSignature(
        inputs=Schema(
            [TensorSpec(ids, (-1, -1), "encoder_ids"), TensorSpec(ids, (-1, -1), "decoder_ids")]
        ),
        outputs=Schema(
            [TensorSpec(np.dtype("float32"), (-1, -1, translator.vocabularies.target.size))]
        ),
    )
    # Under the store lock but not retried: logging a model is several writes, and a retry after
    # a partial failure would leave a second, half-logged model behind.
    requirements = model_requirements()
    with store_lock():
        # No input_example here: MLflow 3.17.2's Keras flavour writes the example before it
        # creates the model directory and fails. The translator pyfunc below carries one.
        if KERAS_MODEL not in skip:
            mlflow.keras.log_model(
                translator.model,
                name=KERAS_MODEL,
                signature=signature,
                pip_requirements=requirements,
            )
        if TRANSLATOR_MODEL in skip:
            return
        mlflow.pyfunc.log_model(
            name=TRANSLATOR_MODEL,
            python_model=Path(pyfunc.__file__),
            artifacts={pyfunc.ARTIFACT: str(directory)},
            code_paths=[str(Path(charmt.__file__).parent)],
            pip_requirements=requirements,
            # With params: the signature then accepts beam_width (see charmt.serving.pyfunc).
            input_example=(["Go.", "I'm sorry."], {"beam_width": 1}),
        )


def model_logger(translator: Translator, directory: Path) -> tracking.LogModels:
    """What ``TrainingRun.finish`` and ``complete_run`` call to log the trained translator saved
    in ``directory``: both models, less those already logged."""
    return lambda skip: log_trained_model(translator, directory, skip)


def finish_training(
    run: tracking.TrainingRun,
    translator: Translator,
    model_dir: Path,
    history: Sequence[Mapping[str, float]],
    summary: Mapping[str, Any],
    recovery: str,
) -> None:
    """End the training's run FINISHED with everything it lacks, its models included
    (``TrainingRun.finish``)."""
    run.finish(model_logger(translator, model_dir), model_dir, history, summary, recovery)


def log_saved_training(model_dir: Path, history: Path, summary: Path) -> str:
    """Complete the MLflow run of the training saved in ``model_dir`` from the files the train
    stage wrote (``charmt.tracking.complete_run``); the run id. For a training whose server went
    away."""
    tracking.check_reachable()
    run_id = tracking.read_run_id(model_dir)
    try:
        with open(history, newline="", encoding="utf-8") as file:
            rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file)]
        figures = json.loads(Path(summary).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CharmtError(f"cannot read the saved training ({error}); re-run train") from None
    model_dir = Path(model_dir)
    tracking.complete_run(
        run_id, model_logger(Translator.load(model_dir), model_dir), rows, figures
    )
    return run_id
