"""Stage evaluate: score decoding (greedy, or beam search) on the test split; log into the model's
MLflow run; register the model and move the ``champion`` alias when it beats the current champion.
"""

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
    parser.add_argument("--promotion", type=Path, required=True, help="registry decision (JSON)")
    args = parser.parse_args()

    params = load_sections(args.params, ["evaluate", "tracking", "registry"])
    options = params["evaluate"]

    # Imported once the params are known to be good: a mistake fails before TensorFlow loads.
    import mlflow

    from charmt import tracking
    from charmt.data.pairs import load_split
    from charmt.evaluation.scoring import SAMPLE_COLUMNS, evaluate
    from charmt.inference.translator import Translator
    from charmt.io.atomic import write_json, write_table
    from charmt.pipeline import registry

    tracking.check_reachable()
    translator = Translator.load(args.model)
    test_pairs = load_split(args.prepared, "test")
    run_id = tracking.read_run_id(args.model)  # before the evaluation, so a bad one fails fast
    result = evaluate(
        translator,
        test_pairs,
        batch_size=options["batch_size"],
        length_margin=options["length_margin"],
        beam_width=options["beam_width"],
        length_alpha=options["length_alpha"],
    )
    write_table(args.samples, result.samples, SAMPLE_COLUMNS, delimiter="\t")
    write_json(args.metrics, result.metrics)

    logged_params = tracking.flatten({"evaluate": options})
    with tracking.evaluation_run(params["tracking"]["experiment_name"], run_id, logged_params):
        tracking.write(mlflow.log_params, logged_params)
        tracking.write(mlflow.set_tag, "decoding", result.metrics["decoding"])
        tracking.log_summary(result.metrics)
        tracking.log_artifact(args.samples)
        promotion = registry.promote(
            run_id, params["registry"]["model_name"], translator, test_pairs, result.metrics
        )
        registry.log_promotion(promotion)
    write_json(args.promotion, promotion.as_dict())
    print(json.dumps(result.metrics, indent=2))
    print(promotion.decision)


if __name__ == "__main__":
    exit_on_error(main)
