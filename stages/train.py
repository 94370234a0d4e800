"""Stage train: fit the encoder-decoder on the train split, track the run in MLflow.

Writes the model directory (model, vocabularies, lengths, MLflow run id), the per-epoch history
and the training summary. After every epoch a checkpoint goes to --checkpoints (not a DVC output,
so DVC leaves it alone): an interrupted run, started again with the same params and data, resumes
from its last finished epoch in the same MLflow run. The checkpoints are removed once the outputs
are written.
"""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.params import load_sections

SECTIONS = ("data", "preprocess", "model", "train", "tracking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="directory for the trained model")
    parser.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV)")
    parser.add_argument("--metrics", type=Path, required=True, help="training summary (JSON)")
    parser.add_argument(
        "--checkpoints", type=Path, required=True, help="resume checkpoints (git-ignored)"
    )
    args = parser.parse_args()
    params = load_sections(args.params, SECTIONS)

    # Imported once the params are known to be good: a mistake fails before TensorFlow loads.
    from charmt import tracking
    from charmt.atomic import atomic_dir, write_json, write_table
    from charmt.checkpoint import Checkpoints, file_digest, fingerprint
    from charmt.data import VOCABULARIES_FILE, load_split, split_statistics
    from charmt.params import ModelParams
    from charmt.training import HISTORY_COLUMNS, TrainParams, train_model
    from charmt.translator import Translator
    from charmt.vocab import Vocabularies

    train_params = TrainParams.from_dict(params["train"])
    model_params = ModelParams.from_dict(params["model"])
    experiment = params["tracking"]["experiment_name"]
    train, validation = load_split(args.prepared, "train"), load_split(args.prepared, "validation")
    vocabularies = Vocabularies.load(args.prepared / VOCABULARIES_FILE)

    checkpoints = Checkpoints(
        args.checkpoints,
        fingerprint(
            {
                "model": params["model"],
                "train": train_params.to_dict(),
                "data": file_digest([args.prepared]),
                "experiment": experiment,
            }
        ),
    )
    checkpoints.discard_stale()
    resumed = checkpoints.latest()
    active = None
    if resumed is not None:
        active = tracking.reopen_interrupted_run(experiment, resumed.state["extra"]["run_id"])
        if active is None:  # the run is gone (another store?): its checkpoint is no use
            checkpoints.clear()
            resumed = None
    if active is None:
        active = tracking.start_run(experiment)

    with tracking.ending_killed_on_interrupt(active) as run:
        if resumed is None:
            tracking.log_params(
                {name: params[name] for name in ("data", "preprocess", "model", "train")}
            )
            tracking.log_summary(
                split_statistics(
                    len(train) + len(validation), {"train": train, "validation": validation}
                ),
                prefix="data.",
            )
        else:
            print(f"resuming MLflow run {run.info.run_id} after epoch {resumed.epoch}")
            tracking.log_missing_epochs(run.info.run_id, resumed.state["rows"])
        result = train_model(
            train,
            validation,
            vocabularies,
            train_params,
            on_epoch=tracking.log_epoch,
            checkpoints=checkpoints,
            checkpoint_extra={"run_id": run.info.run_id},
            architecture=model_params,
        )
        tracking.log_summary(result.summary)
        translator = Translator.from_training(result.model, vocabularies, train)
        with atomic_dir(args.model) as model_dir:
            translator.save(model_dir)
            tracking.log_trained_model(translator, model_dir)
            tracking.write_run_id(model_dir, run.info.run_id)

    write_table(args.history, result.history, HISTORY_COLUMNS)
    write_json(args.metrics, result.summary)
    checkpoints.clear()
    print(f"MLflow run {run.info.run_id} in {tracking.tracking_uri()}")


if __name__ == "__main__":
    exit_on_error(main)
