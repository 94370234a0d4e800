"""Stage train: fit the encoder-decoder on the train split, track the run in MLflow.

Writes the model directory (model, vocabularies, lengths, MLflow run id), the per-epoch history
and the training summary.
"""

import argparse
from pathlib import Path

from charmt import tracking
from charmt.atomic import atomic_dir, write_json, write_table
from charmt.data import VOCABULARIES_FILE, load_split, split_statistics
from charmt.errors import exit_on_error
from charmt.params import load_params, section
from charmt.training import HISTORY_COLUMNS, TrainParams, train_model
from charmt.translator import Translator
from charmt.vocab import Vocabularies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="directory for the trained model")
    parser.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV)")
    parser.add_argument("--metrics", type=Path, required=True, help="training summary (JSON)")
    args = parser.parse_args()

    params = load_params(args.params)
    train_params = TrainParams.from_dict(section(params, "train"))
    train, validation = load_split(args.prepared, "train"), load_split(args.prepared, "validation")
    vocabularies = Vocabularies.load(args.prepared / VOCABULARIES_FILE)

    experiment_name = section(params, "tracking")["experiment_name"]
    with tracking.start_run(experiment_name, params_file=args.params) as run:
        tracking.log_params({name: params[name] for name in ("data", "preprocess", "train")})
        data_url = str(section(params, "data")["url"])
        tracking.log_dataset(data_url, args.prepared / "train.tsv", train, "training")
        tracking.log_dataset(data_url, args.prepared / "validation.tsv", validation, "validation")
        tracking.log_summary(
            split_statistics(
                len(train) + len(validation), {"train": train, "validation": validation}
            ),
            prefix="data.",
        )
        result = train_model(
            train, validation, vocabularies, train_params, on_epoch=tracking.log_epoch
        )
        tracking.log_summary(result.summary)
        translator = Translator.from_training(result.model, vocabularies, train)
        with atomic_dir(args.model) as model_dir:
            translator.save(model_dir)
            tracking.log_trained_model(translator, model_dir)
            tracking.write_run_id(model_dir, run.info.run_id)

    write_table(args.history, result.history, HISTORY_COLUMNS)
    # The run's id and name among the metrics, so `dvc exp show` leads from an experiment to it.
    write_json(
        args.metrics,
        {**result.summary, "mlflow_run_id": run.info.run_id, "mlflow_run_name": run.info.run_name},
    )
    print(
        f"MLflow run {run.info.run_name} ({run.info.run_id}) in {tracking.tracking_uri()}; "
        f"compare runs: {tracking.runs_view_url(run.info.experiment_id)}"
    )


if __name__ == "__main__":
    exit_on_error(main)
