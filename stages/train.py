"""Stage train: fit the encoder-decoder on the train split, track the run in MLflow.

Writes the model directory (model, vocabularies, lengths, MLflow run id), the per-epoch history
and the training summary.
"""

import argparse
from pathlib import Path

from charmt import tracking
from charmt.errors import exit_on_error
from charmt.params import load_params, section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="directory for the trained model")
    parser.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV)")
    parser.add_argument("--metrics", type=Path, required=True, help="training summary (JSON)")
    args = parser.parse_args()

    params = load_params(args.params)
    experiment = section(params, "tracking")["experiment_name"]
    uri = tracking.check_reachable()  # seconds, before any data is read or any training
    # Imported after the check: TensorFlow alone takes seconds to import.
    from charmt.atomic import atomic_dir, write_json, write_table
    from charmt.data import VOCABULARIES_FILE, load_split, split_statistics
    from charmt.training import HISTORY_COLUMNS, TrainParams, train_model
    from charmt.translator import Translator
    from charmt.vocab import Vocabularies

    train_params = TrainParams.from_dict(section(params, "train"))
    train, validation = load_split(args.prepared, "train"), load_split(args.prepared, "validation")
    vocabularies = Vocabularies.load(args.prepared / VOCABULARIES_FILE)

    with tracking.training_run(experiment) as run:
        run.log_setup(
            {name: params[name] for name in ("data", "preprocess", "train")},
            split_statistics(
                len(train) + len(validation), {"train": train, "validation": validation}
            ),
        )
        result = train_model(train, validation, vocabularies, train_params, on_epoch=run.log_epoch)
        translator = Translator.from_training(result.model, vocabularies, train)
        # Saved before anything more is logged: if the store went away, the training is kept.
        with atomic_dir(args.model) as model_dir:
            translator.save(model_dir)
            tracking.write_run_id(model_dir, run.run_id)
        write_table(args.history, result.history, HISTORY_COLUMNS)
        write_json(args.metrics, result.summary)
        run.finish(
            translator,
            args.model,
            result.history,
            result.summary,
            recovery=tracking.recovery_command(args.model, args.history, args.metrics),
        )
    print(f"MLflow run {run.run_id} in {uri}")


if __name__ == "__main__":
    exit_on_error(main)
