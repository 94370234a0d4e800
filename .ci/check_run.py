"""Checks for .ci/pipeline-check: what one pipeline run wrote, in the project it ran in (cwd).

    python .ci/check_run.py --epochs 8
    python .ci/check_run.py --epochs 9 --params-diff diff.json --epochs-before 8

- metrics/history.csv has one row per epoch, 1..N, and metrics/train.json says N epochs ran;
- metrics/eval.json: every score finite and in its range, and the quality figures past the floors
  of CI's profile (2,000 pairs of the shared data, 8-9 epochs, default model): a CI gate that
  catches a broken model or evaluation, not a quality target;
- with --params-diff (the output of `dvc params diff --json`): the only param changed is
  train.epochs, from --epochs-before to --epochs.

Prints what it checked; exits 1 with one line per failure.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from charmt.evaluation.metrics import SCORE_RANGES

# Each score of metrics/eval.json and the range it must lie in.
RANGES = {**SCORE_RANGES, "test_sentences": (1, math.inf)}
# CI's profile learns little in 8 epochs (25 batches each). Two runs here (2026-11-29, 2 cores
# shared with other jobs) gave the same figures: after 8 epochs char_accuracy 0.234, chrF 6.82,
# test_accuracy 0.275, test_loss 2.63; after 9, 0.254, 8.47, 0.301, 2.57; after the first epoch,
# val_accuracy 0.155 and val_loss 3.12. The floors sit below the 8-epoch figures with room for
# another CPU's rounding, and above a model that stopped learning after an epoch or two
# (test_accuracy, test_loss) or emits nothing useful.
FLOORS = {"char_accuracy": 0.12, "chrf": 3.5, "test_accuracy": 0.2}
CEILINGS = {"test_loss": 2.9}


def check(epochs: int, params_diff: Path | None, epochs_before: int | None) -> list[str]:
    """The failures found in the current directory's metrics/ (and the params diff)."""
    failures = []
    with open("metrics/history.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    numbers = [int(row["epoch"]) for row in rows]
    print(f"history.csv: {len(rows)} epochs")
    if numbers != list(range(1, epochs + 1)):
        failures.append(f"metrics/history.csv has epochs {numbers}, expected 1..{epochs}")
    train = json.loads(Path("metrics/train.json").read_text(encoding="utf-8"))
    if train.get("epochs_run") != epochs:
        failures.append(f"metrics/train.json epochs_run {train.get('epochs_run')}, not {epochs}")

    scores = json.loads(Path("metrics/eval.json").read_text(encoding="utf-8"))
    for name, (low, high) in RANGES.items():
        value = scores.get(name)
        if not isinstance(value, int | float) or not math.isfinite(value):
            failures.append(f"metrics/eval.json {name} = {value!r}, not a finite number")
        elif not low <= value <= high:
            failures.append(f"metrics/eval.json {name} = {value} outside [{low}, {high}]")
    for name, floor in FLOORS.items():
        value = scores.get(name)
        print(f"eval {name} = {value} (floor {floor})")
        if isinstance(value, int | float) and not value >= floor:
            failures.append(f"metrics/eval.json {name} = {value} below the floor {floor}")
    for name, ceiling in CEILINGS.items():
        value = scores.get(name)
        print(f"eval {name} = {value} (ceiling {ceiling})")
        if isinstance(value, int | float) and not value <= ceiling:
            failures.append(f"metrics/eval.json {name} = {value} above the ceiling {ceiling}")

    if params_diff is not None:
        diff = json.loads(params_diff.read_text(encoding="utf-8"))
        changed = {
            key: (change.get("old"), change.get("new"))
            for per_file in diff.values()
            for key, change in per_file.items()
        }
        print(f"params diff: {changed}")
        expected = {"train.epochs": (epochs_before, epochs)}
        if changed != expected:
            failures.append(f"dvc params diff shows {changed}, expected {expected}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, required=True, help="epochs the run must have")
    parser.add_argument("--params-diff", type=Path, help="`dvc params diff --json` output")
    parser.add_argument("--epochs-before", type=int, help="train.epochs before the change")
    args = parser.parse_args()
    failures = check(args.epochs, args.params_diff, args.epochs_before)
    for failure in failures:
        print(f"pipeline-check: FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
