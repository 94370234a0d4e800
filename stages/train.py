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

    experiment = params["tracking"]["experiment_name"]
    from charmt import tracking

    uri = tracking.check_reachable()  # seconds, before any data is read or any training
    # Imported once the params and the store are known to be good: TensorFlow takes seconds.
    from charmt.atomic import atomic_dir, write_json, write_table
    from charmt.checkpoint import Checkpoints, file_digest, fingerprint
    from charmt.data import VOCABULARIES_FILE, load_split, split_statistics
    from charmt.params import ModelParams
    from charmt.training import HISTORY_COLUMNS, TrainParams, train_model
    from charmt.translator import Translator
    from charmt.vocab import Vocabularies

    train_params = TrainParams.from_dict(params["train"])
    model_params = ModelParams.from_dict(params["model"])
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
    resume_run_id = resumed.state["extra"]["run_id"] if resumed is not None else None

    with tracking.training_run(experiment, resume_run_id, params_file=args.params) as run:
        if run.resumed:
            print(f"resuming MLflow run {run.run_id} after epoch {resumed.epoch}")
        else:
            if resumed is not None:  # its run is gone (another store?): the checkpoint is no use
                checkpoints.clear()
            run.log_setup(
                {name: params[name] for name in ("data", "preprocess", "model", "train")},
                split_statistics(
                    len(train) + len(validation), {"train": train, "validation": validation}
                ),
            )
            # The run's Datasets in the UI: the data's source and a digest of each split.
            data_url = str(params["data"]["url"])
            tracking.log_dataset(data_url, args.prepared / "train.tsv", train, "training")
            tracking.log_dataset(
                data_url, args.prepared / "validation.tsv", validation, "validation"
            )
        result = train_model(
            train,
            validation,
            vocabularies,
            train_params,
            on_epoch=run.log_epoch,
            checkpoints=checkpoints,
            checkpoint_extra={"run_id": run.run_id},
            architecture=model_params,
        )
        translator = Translator.from_training(result.model, vocabularies, train)
        # Saved before anything more is logged: if the store went away, the training is kept.
        with atomic_dir(args.model) as model_dir:
            translator.save(model_dir)
            tracking.write_run_id(model_dir, run.run_id)
        write_table(args.history, result.history, HISTORY_COLUMNS)
        # The run's id and name among the metrics: `dvc exp show` leads from an experiment to it.
        write_json(
            args.metrics,
            {**result.summary, "mlflow_run_id": run.run_id, "mlflow_run_name": run.run_name},
        )
        checkpoints.clear()  # the outputs hold the training now
        # Logs what the run lacks (epochs checkpointed but not logged before a kill, the summary,
        # both models) and ends it FINISHED; fails naming the recovery command if the store left.
        run.finish(
            translator,
            args.model,
            result.history,
            result.summary,
            recovery=tracking.recovery_command(args.model, args.history, args.metrics),
        )
    print(
        f"MLflow run {run.run_name} ({run.run_id}) in {uri}; "
        f"compare runs: {tracking.runs_view_url(run.experiment_id)}"
    )


if __name__ == "__main__":
    exit_on_error(main)
