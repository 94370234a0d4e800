"""Stage evaluate: score decoding (greedy, or beam search) on the test split; log into the model's
MLflow run."""

import argparse
import json
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.params import load_sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="train stage model directory")
    parser.add_argument("--metrics", type=Path, required=True, help="evaluation metrics (JSON)")
    parser.add_argument("--samples", type=Path, required=True, help="every test sentence (TSV)")
    args = parser.parse_args()

    params = load_sections(args.params, ["evaluate", "tracking"])
    options = params["evaluate"]

    # Imported once the params are known to be good: a mistake fails before TensorFlow loads.
    import mlflow

    from charmt import tracking
    from charmt.atomic import write_json, write_table
    from charmt.data import load_split
    from charmt.evaluation import SAMPLE_COLUMNS, evaluate
    from charmt.translator import Translator

    result = evaluate(
        Translator.load(args.model),
        load_split(args.prepared, "test"),
        batch_size=options["batch_size"],
        length_margin=options["length_margin"],
        beam_width=options.get("beam_width", 1),
        length_alpha=options.get("length_alpha", 1.0),
    )
    write_table(args.samples, result.samples, SAMPLE_COLUMNS, delimiter="\t")
    write_json(args.metrics, result.metrics)

    run_id = tracking.read_run_id(args.model)
    logged_params = tracking.flatten({"evaluate": options})
    with tracking.evaluation_run(params["tracking"]["experiment_name"], run_id, logged_params):
        mlflow.log_params(logged_params)
        mlflow.set_tag("decoding", result.metrics["decoding"])
        tracking.log_summary(result.metrics)
        mlflow.log_artifact(str(args.samples))
    print(json.dumps(result.metrics, indent=2))


if __name__ == "__main__":
    exit_on_error(main)
