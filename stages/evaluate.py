"""Stage evaluate: score decoding (greedy, or beam search) on the test split; log into the model's
MLflow run; register the model and move the ``champion`` alias when it beats the current champion.
"""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.pipeline import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess stage output")
    parser.add_argument("--model", type=Path, required=True, help="train stage model directory")
    parser.add_argument("--metrics", type=Path, required=True, help="evaluation metrics (JSON)")
    parser.add_argument("--samples", type=Path, required=True, help="every test sentence (TSV)")
    parser.add_argument("--promotion", type=Path, required=True, help="registry decision (JSON)")
    args = parser.parse_args()
    outputs = evaluate.Outputs(args.metrics, args.samples, args.promotion)
    evaluate.run(args.params, args.prepared, args.model, outputs)


if __name__ == "__main__":
    exit_on_error(main)
