"""The train stage: prepared splits in; a saved model, its history and summary, and a complete
MLflow run out; resumable from a checkpoint after any interrupt.

Order matters, so that nothing is lost whatever stops it:
1. the store is checked (seconds) before any data is read or any training;
2. each epoch writes a checkpoint (keyed by params, data and the training code) before it is
   logged, so an interrupt resumes from the last finished epoch in the same MLflow run;
3. the model, history and summary are written (atomically) before the run is completed, so a lost
   server costs a recovery command, not the training;
4. the checkpoints are removed last, once the outputs and the run are complete: an interrupt while
   the models are logged (or while waiting for the store's lock) resumes at the last epoch instead
   of training again from epoch 1.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charmt.params import Section, read
from charmt.pipeline import codedeps
from charmt.training.checkpoint import Checkpoint, Checkpoints
from charmt.training.fingerprint import file_digest

if TYPE_CHECKING:
    from charmt.data.pairs import Pair
    from charmt.inference.translator import Translator
    from charmt.tracking import TrainingRun
    from charmt.training.fit import TrainResult

# The params.yaml sections the stage reads: checked before MLflow and TensorFlow are imported (a
# bad value fails in a fraction of a second).
SECTIONS = ("data", "preprocess", "model", "train", "tracking")
# The sections logged as the run's params.
LOGGED_SECTIONS = ("data", "preprocess", "model", "train")
# The stage's params: each of SECTIONS, typed (charmt.params.read).
Params = dict[str, Section]


@dataclass(frozen=True)
class Outputs:
    """Where the stage writes: the model directory, history (CSV), summary (JSON), checkpoints."""

    model: Path
    history: Path
    metrics: Path
    checkpoints: Path


def checkpoint_inputs(params: Params, prepared: Path) -> dict[str, Any]:
    """Everything a checkpoint must match to be resumed: model and train params, the prepared
    data's digest, the experiment, and the digest of each module that runs the training."""
    return {
        "model": params["model"].model_dump(),
        "train": params["train"].model_dump(),
        "data": file_digest([prepared]),
        "experiment": params["tracking"].experiment_name,
        "code": codedeps.file_digests(codedeps.module_files(__file__)),
    }


def run(params_file: str | os.PathLike[str], prepared: Path, outputs: Outputs) -> TrainingRun:
    """Read the stage's params (``SECTIONS``), then train on ``prepared``, write ``outputs`` and
    complete the MLflow run; the run."""
    return train(read(params_file, *SECTIONS), prepared, outputs, params_file)


def train(
    params: Params,
    prepared: Path,
    outputs: Outputs,
    params_file: str | os.PathLike[str] = "params.yaml",
) -> TrainingRun:
    """Train on ``prepared`` with ``params`` (the checked ``SECTIONS``), write ``outputs``, and
    complete the MLflow run; the run. ``params_file`` describes the run (params changed)."""
    from charmt import tracking  # MLflow: after the params check

    uri = tracking.check_reachable()  # seconds, before any data is read or any training
    tracking.check_writable(params["tracking"].experiment_name, uri)
    # TensorFlow (seconds) is imported only after this check, in _train.
    checkpoints = Checkpoints.of(outputs.checkpoints, checkpoint_inputs(params, prepared))
    for reason in checkpoints.discard_stale():
        print(reason)
    resumed = checkpoints.latest()
    resume_run_id = resumed.state["extra"]["run_id"] if resumed is not None else None
    try:
        run = _train(params, prepared, outputs, params_file, checkpoints, resumed, resume_run_id)
    except KeyboardInterrupt:
        kept = checkpoints.latest()
        if kept is not None:
            print(
                f"the checkpoint after epoch {kept.epoch} is kept in {kept.directory}: run the "
                "stage again (dvc repro) to resume from it",
                file=sys.stderr,
            )
        raise
    checkpoints.clear()  # the outputs and the run hold the training now
    print(
        f"MLflow run {run.run_name} ({run.run_id}) in {uri}; "
        f"compare runs: {tracking.runs_view_url(run.experiment_id)}"
    )
    return run


def _train(
    params: Params,
    prepared: Path,
    outputs: Outputs,
    params_file: str | os.PathLike[str],
    checkpoints: Checkpoints,
    resumed: Checkpoint | None,
    resume_run_id: str | None,
) -> TrainingRun:
    """Train (or resume), write the outputs and complete the run; the checkpoints stay."""
    from charmt import tracking
    from charmt.data.prepared import load_split
    from charmt.data.vocabulary import VOCABULARIES_FILE, Vocabularies
    from charmt.inference.translator import Translator
    from charmt.serving.publish import finish_training
    from charmt.training.fit import train_model

    experiment = params["tracking"].experiment_name
    train, validation = load_split(prepared, "train"), load_split(prepared, "validation")
    vocabularies = Vocabularies.load(prepared / VOCABULARIES_FILE)
    with tracking.training_run(
        experiment,
        resume_run_id,
        params_file=params_file,
        system_metrics=params["tracking"].system_metrics,
    ) as run:
        if run.resumed:
            print(f"resuming MLflow run {run.run_id} after epoch {resumed.epoch}")
        else:
            if resumed is not None:
                print(
                    f"not resuming the checkpoint after epoch {resumed.epoch}: its MLflow run "
                    f"{resume_run_id} is not in experiment {experiment!r} of the store; training "
                    "starts from epoch 1"
                )
                checkpoints.clear()
            _log_setup(run, params, prepared, train, validation)
        result = train_model(
            train,
            validation,
            vocabularies,
            params["train"],
            on_epoch=run.log_epoch,
            checkpoints=checkpoints,
            checkpoint_extra={"run_id": run.run_id},
            model_params=params["model"],
        )
        translator = Translator.from_training(result.model, vocabularies, train)
        # Saved before anything more is logged: if the store went away, the training is kept.
        _write_outputs(outputs, translator, result, run)
        # Logs what the run lacks (epochs checkpointed but not logged before a kill, the summary,
        # both models) and ends it FINISHED; fails naming the recovery command if the store left.
        finish_training(
            run,
            translator,
            outputs.model,
            result.history,
            result.summary,
            recovery=tracking.recovery_command(outputs.model, outputs.history, outputs.metrics),
        )
    return run


def _write_outputs(
    outputs: Outputs, translator: Translator, result: TrainResult, run: TrainingRun
) -> None:
    """The model directory (with the run's id), the history and the summary, each atomically."""
    from charmt import tracking
    from charmt.io.atomic import atomic_dir, write_json, write_table
    from charmt.training.fit import HISTORY_COLUMNS

    with atomic_dir(outputs.model) as model_dir:
        translator.save(model_dir)
        tracking.write_run_id(model_dir, run.run_id)
    write_table(outputs.history, result.history, HISTORY_COLUMNS)
    # The run's id and name among the metrics: `dvc exp show` leads from an experiment to it.
    write_json(
        outputs.metrics,
        {**result.summary, "mlflow_run_id": run.run_id, "mlflow_run_name": run.run_name},
    )


def _log_setup(
    run: TrainingRun,
    params: Params,
    prepared: Path,
    train: list[Pair],
    validation: list[Pair],
) -> None:
    """A new run's params, data statistics and datasets (the run's Datasets in the UI)."""
    from charmt import tracking
    from charmt.data.prepared import split_file
    from charmt.data.statistics import split_statistics

    run.log_setup(
        {name: params[name].model_dump() for name in LOGGED_SECTIONS},
        split_statistics(len(train) + len(validation), {"train": train, "validation": validation}),
    )
    data_url = str(params["data"].url)
    tracking.log_dataset(data_url, split_file(prepared, "train"), train, "training")
    tracking.log_dataset(data_url, split_file(prepared, "validation"), validation, "validation")
