"""Stage preprocess: the first data.num_samples pairs (null: all), split by English sentence,
vocabularies."""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.pipeline import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--raw", type=Path, required=True, help="fra.txt from the download stage")
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for splits and vocabularies"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="data statistics (JSON)")
    args = parser.parse_args()
    preprocess.run(args.params, args.raw, args.out, args.metrics)


if __name__ == "__main__":
    exit_on_error(main)
