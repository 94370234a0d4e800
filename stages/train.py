"""Stage train: fit the encoder-decoder on the train split, track the run in MLflow.

Writes the model directory (model, vocabularies, lengths, MLflow run id), the per-epoch history
and the training summary. After every epoch a checkpoint goes to --checkpoints (not a DVC output,
so DVC leaves it alone): an interrupted run, started again with the same params, data and code,
resumes from its last finished epoch in the same MLflow run. The checkpoints are removed once the
outputs are written and the run is complete (charmt.pipeline.train).
"""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.pipeline import train


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
    outputs = train.Outputs(args.model, args.history, args.metrics, args.checkpoints)
    train.run(args.params, args.prepared, outputs)


if __name__ == "__main__":
    exit_on_error(main)
