"""What a run holds: params, per-epoch metrics, summaries, datasets, artifacts; its logged models.

Logging a trained translator's models is ``charmt.serving.publish``'s.

Every write goes through the store lock and its retries (``charmt.tracking.lock.write``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import mlflow
from mlflow.entities import LoggedModelStatus

from charmt.io.digest import sha256_of
from charmt.io.paths import resolve_local
from charmt.tracking.flat import flatten
from charmt.tracking.lock import write

# The string-to-string model (charmt.serving.pyfunc) that is registered and served, and the
# Keras one.
TRANSLATOR_MODEL = "translator"
KERAS_MODEL = "model"


class SentencePair(Protocol):
    """What a dataset row is made of (``charmt.data.pairs.Pair``, which tracking does not
    import: it is MLflow plumbing only)."""

    source: str
    target: str


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
    data_url: str,
    split_file: str | os.PathLike[str],
    pairs: Sequence[SentencePair],
    context: str,
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
