"""What a run holds: params, per-epoch metrics, summaries, datasets, artifacts and models.

Every write goes through the store lock and its retries (``charmt.tracking.lock.write``).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModelStatus
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from charmt.io.digest import sha256_of
from charmt.io.paths import resolve_local
from charmt.tracking.flat import flatten
from charmt.tracking.lock import store_lock, write

if TYPE_CHECKING:
    from charmt.data.pairs import Pair
    from charmt.inference.translator import Translator

# The string-to-string model (charmt.serving.pyfunc) that is registered and served, and the
# Keras one.
TRANSLATOR_MODEL = "translator"
KERAS_MODEL = "model"


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


def log_params(sections: Mapping[str, Any]) -> None:
    """Log params.yaml sections once, with their dotted names (``train.learning_rate``)."""
    write(mlflow.log_params, flatten(sections))


def log_epoch(row: Mapping[str, float]) -> None:
    """Log one epoch's history row (loss, val_loss, ...) at ``step=epoch``."""
    write(
        mlflow.log_metrics,
        {k: v for k, v in row.items() if k != "epoch"},
        step=int(row["epoch"]),
    )


def log_summary(figures: Mapping[str, Any], prefix: str = "") -> None:
    """Log the numeric figures of a summary (nested ones with dotted names) as metrics."""
    write(
        mlflow.log_metrics,
        {
            f"{prefix}{name}": float(value)
            for name, value in flatten(figures).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
    )


def log_artifact(path: str | os.PathLike[str]) -> None:
    """Log one file into the active run."""
    write(mlflow.log_artifact, str(path))


def dataset_digest(path: str | os.PathLike[str]) -> str:
    """The first 8 hex digits of a file's sha256 (MLflow shows dataset digests this short)."""
    return sha256_of(path)[:8]


def log_dataset(
    data_url: str, split_file: str | os.PathLike[str], pairs: Sequence[Pair], context: str
) -> None:
    """Log a prepared split as a run input (the run's Datasets in the UI).

    Its source is ``data_url`` (a relative local path made absolute), its digest that of
    ``split_file``, so runs trained on other data, or another cut of it, show another digest.
    """
    import pandas as pd

    is_url = "://" in data_url
    source = data_url if is_url else str(resolve_local(data_url))
    frame = pd.DataFrame({"source": [p.source for p in pairs], "target": [p.target for p in pairs]})
    dataset = mlflow.data.from_pandas(
        frame, source=source, name=Path(split_file).stem, digest=dataset_digest(split_file)
    )
    write(mlflow.log_input, dataset, context=context)


def ready_models(run: mlflow.entities.Run, name: str | None = None) -> list[Any]:
    """The models ``run`` logged completely (status READY), newest first; only ``name`` if given.

    A model whose logging was cut short (a lost server, an interrupt) stays PENDING or FAILED
    and is never used.
    """
    filter_string = f"source_run_id = '{run.info.run_id}'"
    if name is not None:
        filter_string += f" AND name = '{name}'"
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=filter_string, output_format="list"
    )
    ready = [model for model in models if model.status == LoggedModelStatus.READY]
    return sorted(ready, key=lambda model: model.creation_timestamp, reverse=True)


def log_trained_model(translator: Translator, directory: Path, skip: Collection[str] = ()) -> None:
    """Log the Keras model (``model``) and the string-to-string pyfunc (``translator``), except
    those named in ``skip`` (already logged).

    ``directory`` is the saved translator (``Translator.save``): the pyfunc is built from it.
    """
    import charmt
    from charmt.serving import pyfunc

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
