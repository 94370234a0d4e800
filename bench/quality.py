"""Quality for training time: the seed's model, the attention model and the Transformer, on 10,000
pairs and on the whole file, each decoded greedily and by beam search, all scored on the same test
sentences.

    python bench/quality.py --label "quiet machine"     # the full table: hours on a 2-core machine
    python bench/quality.py --configs attention-all-pairs --budget-minutes 50   # one profile
    python bench/quality.py --configs transformer-all-pairs --curve-every 1 --budget-minutes 52 \\
        --add-to bench/results/quality-2026-11-29.json --label "..."   # rows join a table
    python bench/quality.py --all-pairs 2000 --base-pairs 1000 --epochs 2 --latent-dim 32 \\
        --label smoke --out /tmp/quality          # a smoke test of the script: minutes

The `seed` row is the pipeline's default profile as it is (every epoch run, the best one kept);
the other rows stop early (--patience) and keep the best epoch. --budget-minutes stops a row's
training after the first epoch that brings its training time past the budget (the epochs it ran
are reported, so the row is reproducible as `-S train.epochs=N`). Every --curve-every epochs the
test sentences are decoded greedily with the weights of that moment, which gives the curve of
quality against training time. The LSTM rows keep the epoch of the lowest val_loss; the Transformer
rows are the profiles of docs/models.md (``PROFILES``: the same params as their `dvc exp run`
lines), which keep the epoch of the best validation char_accuracy.

The test split is the one of the first --base-pairs pairs (preprocess.held_out_pairs): larger
profiles keep those sentences out of training and score on exactly them, with the same references;
the script checks that. Each training runs in its own process, so its peak resident memory is its
own. Results go to <out>/quality-<date>.json and .md, rewritten after each row, so a long run that
is stopped keeps the rows it finished. Not part of the test suite: timings on shared machines are
noisy, so say how the machine was loaded (--label).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

# `python bench/quality.py` puts bench/ on sys.path, not the project root (bench.harness).
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    HERE,
    RESULTS,
    WorkerFailed,
    answer_as_worker,
    machine,
    raw_pairs,
    write_results,
)
from bench.harness import run_worker as run_script
from bench.profiles import CONFIGURATIONS, PROFILES, TRANSFORMER, sections
from bench.quality_report import markdown

# bench/quality.py's profiles, where docs/models.md and tests/test_docs.py name them.
__all__ = ["CONFIGURATIONS", "PROFILES", "TRANSFORMER", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared/data/fra-eng.zip"))
    parser.add_argument(
        "--base-pairs", type=int, default=10000, help="the default profile; fixes the test split"
    )
    parser.add_argument(
        "--all-pairs", type=int, default=None, help="cap for the all-pairs profiles (default: all)"
    )
    parser.add_argument("--epochs", type=int, default=100, help="at most (the seed row: exactly)")
    parser.add_argument("--patience", type=int, default=5, help="early_stopping_patience")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="training-time budget of each early-stopped row (default: none)",
    )
    parser.add_argument(
        "--curve-every", type=int, default=5, help="epochs between curve points (0: none)"
    )
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument(
        "--configs", nargs="*", default=list(CONFIGURATIONS), choices=list(CONFIGURATIONS)
    )
    parser.add_argument("--label", default="", help="how the machine was loaded, for the record")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--add-to", type=Path, help="a results .json whose table the new rows join (or replace)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def run_worker(configuration: str, **kwargs) -> dict:
    """One configuration's worker (bench/quality_worker.py) in a fresh process; its progress
    lines go straight to this terminal (stderr). A failed worker stops the benchmark."""
    try:
        return run_script(
            __file__, ["--worker", json.dumps(kwargs)], configuration, show_progress=True
        )
    except WorkerFailed as failure:
        sys.exit(f"{failure}; see above")


def _setup(args: argparse.Namespace) -> dict:
    return {
        "data": args.data,
        "base_pairs": args.base_pairs,
        "all_pairs": args.all_pairs or "all",
        "epochs": args.epochs,
        "patience": args.patience,
        "latent_dim": args.latent_dim,
        "beam_width": args.beam_width,
        "curve_every": args.curve_every,
    }


def _joined(args: argparse.Namespace, setup: dict, date: str) -> dict:
    """The results of ``--add-to``, which the new rows join if they were set up alike (rows of
    another run: another day, another budget; each row keeps its own budget and date)."""
    results = json.loads(args.add_to.read_text())
    # Training settings are each row's own (it records them); data and decoding are shared.
    shared = ("data", "base_pairs", "all_pairs", "beam_width")
    earlier = {k: v for k, v in results["setup"].items() if k in shared}
    if earlier != {k: setup[k] for k in shared}:
        sys.exit(f"{args.add_to} was set up otherwise: {earlier}, not {setup}")
    results["label"] += f"; then {' '.join(args.configs)} on {date[:10]}: {args.label}"
    return results


def _budget_minutes(args: argparse.Namespace, name: str) -> float | None:
    # Every row but the default profile's (which runs all its epochs) stops at the budget.
    return args.budget_minutes if name != "seed" else None


def _worker_arguments(args: argparse.Namespace, name: str, raw: str) -> dict:
    """The keyword arguments of configuration ``name``'s worker."""
    all_pairs, keys, early_stopping = CONFIGURATIONS[name]
    model, profile = sections(keys)
    budget = _budget_minutes(args, name)
    train = {
        "epochs": args.epochs,
        "early_stopping_patience": args.patience if early_stopping else None,
        "keep_best": True,
        "latent_dim": args.latent_dim,
        **profile,
    }
    return {
        "raw": raw,
        "num_samples": args.all_pairs if all_pairs else args.base_pairs,
        "base_pairs": args.base_pairs,
        "model": model,
        "train": train,
        "beam_widths": [1, args.beam_width],
        "curve_every": args.curve_every,
        "budget_seconds": budget * 60 if budget else None,
    }


def _add_row(
    results: dict, name: str, model: dict, row: dict, args: argparse.Namespace, date: str
) -> None:
    """Configuration ``name``'s row (its worker's ``row``) in ``results``; all rows must share
    one test split."""
    results["configurations"][name] = {
        "model": model,
        "date": date,
        "budget_minutes": _budget_minutes(args, name),
        "curve_every": args.curve_every,
        "label": args.label,
        **row,
    }
    test_splits = {r["test_split_sha256"] for r in results["configurations"].values()}
    if len(test_splits) != 1:
        sys.exit(f"the configurations were scored on different test splits: {test_splits}")
    results["setup"]["test_split_sha256"] = next(iter(test_splits))


def main() -> None:
    args = _parser().parse_args()
    if args.worker:
        from bench.quality_worker import worker

        answer_as_worker(worker, args.worker)
        return

    began = time.time()
    raw = raw_pairs(args.data)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    setup = _setup(args)
    json_path = args.out / f"quality-{date[:10]}.json"
    results = {
        "date": date,
        "label": args.label,
        "machine": machine(),
        "setup": setup,
        "configurations": {},
    }
    if args.add_to:
        json_path, results = args.add_to, _joined(args, setup, date)
    began -= results.get("benchmark_seconds", 0)
    for name in args.configs:
        print(f"{name} ...", file=sys.stderr, flush=True)
        kwargs = _worker_arguments(args, name, raw)
        row = run_worker(name, **kwargs)
        _add_row(results, name, kwargs["model"], row, args, date)
        results["benchmark_seconds"] = round(time.time() - began)
        write_results(json_path, results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
