"""Stage preprocess: the first data.num_samples pairs (null: all), split by English sentence,
vocabularies."""

import argparse
import json
from pathlib import Path

from charmt.data.pairs import prepare
from charmt.errors import exit_on_error
from charmt.io.atomic import write_json
from charmt.params import load_sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--raw", type=Path, required=True, help="fra.txt from the download stage")
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for splits and vocabularies"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="data statistics (JSON)")
    args = parser.parse_args()

    params = load_sections(args.params, ["data", "preprocess"])
    preprocess = params["preprocess"]
    stats = prepare(
        args.raw,
        args.out,
        num_samples=params["data"]["num_samples"],
        validation_fraction=preprocess["validation_fraction"],
        test_fraction=preprocess["test_fraction"],
        seed=preprocess["seed"],
        held_out_pairs=preprocess.get("held_out_pairs"),
    )
    write_json(args.metrics, stats)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    exit_on_error(main)
