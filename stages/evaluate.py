"""Stage evaluate: score greedy decoding on the test split; log into the model's MLflow run."""

import argparse
import json
from pathlib import Path

from charmt import tracking
from charmt.atomic import write_json, write_table
from charmt.data import load_split
from charmt.errors import exit_on_error
from charmt.evaluation import SAMPLE_COLUMNS, evaluate
from charmt.params import load_params, section
from charmt.translator import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="train stage model directory")
    parser.add_argument("--metrics", type=Path, required=True, help="evaluation metrics (JSON)")
    parser.add_argument("--samples", type=Path, required=True, help="every test sentence (TSV)")
    args = parser.parse_args()

    params = load_params(args.params)
    options = section(params, "evaluate")
    result = evaluate(
        Translator.load(args.model),
        load_split(args.prepared, "test"),
        batch_size=options["batch_size"],
        length_margin=options["length_margin"],
    )
    write_table(args.samples, result.samples, SAMPLE_COLUMNS, delimiter="\t")
    write_json(args.metrics, result.metrics)

    run_id = tracking.read_run_id(args.model)
    with tracking.resume_run(section(params, "tracking")["experiment_name"], run_id):
        tracking.log_params({"evaluate": options})
        tracking.log_summary(result.metrics)
        tracking.log_artifact(args.samples)
    print(json.dumps(result.metrics, indent=2))


if __name__ == "__main__":
    exit_on_error(main)
