"""Benchmark: training and decoding speed of charmt (its seed model and its Transformer) side by
side with the seed's way.

    python bench/run.py                  # ../shared/data/fra-eng.zip, 10,000 pairs, 20 epochs each
                                         # of the seed's way, charmt and charmt's Transformer
    python bench/run.py --epochs 4 --growth 10000 --decode-sample 5     # a quick look
    python bench/run.py --num-samples 500 --epochs 2 --growth --decode-sample 3 --results /tmp/b
                                         # a smoke run: does every worker still work?

Each measurement runs in its own process (so peak resident memory is its own) on the same splits
and hyperparameters as the pipeline's defaults: the split fractions and seed come from
params.yaml, latent_dim, batch_size, the seed and the optimizer from ``TrainParams()``. Both ways
build their vocabularies and lengths from the train split only. The Transformer is
bench/quality.py's profile (``TRANSFORMER``) on the same splits, batch size and epochs, judged at
its last epoch like the others; its greedy decoding is timed right after the seed model's, in the
same process and on the same sentences. The GFLOP accounting covers the LSTM ways only. Results
go to bench/results/ (or --results) as JSON and Markdown. The JSON is rewritten (atomically) as
each worker finishes, with its raw output under "workers" and "complete": false, so a failed or
interrupted run keeps what it measured; once all have run it holds the summary and "complete":
true, and the Markdown is written.
Not part of the test suite: these machines are shared and noisy, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

# `python bench/run.py` puts bench/ on sys.path, not the project root: the driver imports
# bench.harness and the bench modules below, as its workers do (PYTHONPATH).
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import speed_summary
from bench.harness import (
    HERE,
    RESULTS,
    WORK,
    WorkerFailed,
    answer_as_worker,
    cpu_name,
    machine,
    raw_pairs,
    versions,
    write_results,
)
from bench.harness import run_worker as run_script
from bench.profiles import pipeline_defaults, transformer_keys
from bench.speed_report import markdown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared/data/fra-eng.zip"))
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per training way")
    parser.add_argument(
        "--decode-sample", type=int, default=20, help="sentences decoded the seed's way"
    )
    parser.add_argument("--growth", type=int, nargs="*", default=[10000, 40000, 75000])
    parser.add_argument(
        "--transformer-model",
        help="a trained Transformer's model directory whose decoding is timed instead of the one "
        "trained here (a few epochs on 10,000 pairs leave it running to the length cap); e.g. "
        "bench/work/translator-transformer-all from bench/quality.py",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the JSON and Markdown go"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        help="an incomplete results JSON of an earlier run: its finished workers are kept, the "
        "rest run (same flags, same machine)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("worker_args", nargs="?", help=argparse.SUPPRESS)
    return parser


def run_worker(name: str, **kwargs) -> dict:
    """Run worker ``name`` (bench/workers.py) in a fresh process; its JSON output. Raises
    ``WorkerFailed``."""
    print(f"-- {name} {kwargs}", flush=True)
    return run_script(__file__, ["--worker", name, json.dumps(kwargs)], name)


def _progress(resume: Path | None) -> dict:
    """The results file of a run in progress: the machine header and no worker yet, or the one
    being resumed (its failure forgotten: the failed worker runs again)."""
    if resume:
        progress = json.loads(resume.read_text(encoding="utf-8"))
        progress.pop("failed", None)
        return progress
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "processor": cpu_name()},
        # Looked up before any worker runs: a missing package fails now, not after all of them.
        "versions": versions(),
        "complete": False,
        "workers": {},
    }


def _runs(args: argparse.Namespace, raw: str) -> list[tuple[str, str, dict]]:
    """(label, worker, keyword arguments) of each worker, in the order they run."""
    common = {"data": raw, "num_samples": args.num_samples}
    decode = {"sample": args.decode_sample, "transformer_model": args.transformer_model}
    return [
        ("peak", "peak", {}),
        ("seed", "seed", {"epochs": args.epochs, **common}),
        ("ours", "ours", {"epochs": args.epochs, "evaluate": True, **common}),
        # Before decode, which times the translator it saves.
        ("transformer", "transformer", {"epochs": args.epochs, **common}),
        ("decode", "decode", {**decode, **common}),
    ] + [
        (f"growth-{n}", "ours", {"data": raw, "num_samples": n, "epochs": 3, "evaluate": False})
        for n in args.growth
    ]


def _measure(runs: list[tuple[str, str, dict]], progress: dict, path: Path) -> dict:
    """Run the workers that ``progress`` lacks, rewriting ``path`` after each one; what they
    measured, by label. A failed worker ends the benchmark, its stderr recorded."""
    done = progress["workers"]
    for label, name, kwargs in runs:
        if label in done:
            continue  # measured by the run being resumed
        try:
            done[label] = run_worker(name, **kwargs)
        except WorkerFailed as failure:
            progress["failed"] = {"worker": label, "stderr": failure.stderr}
            write_results(path, progress)
            sys.exit(f"worker {label} failed (what ran is in {path}):\n{failure.stderr}")
        if label == "peak":
            progress["versions"] = {
                "tensorflow": done["peak"]["tensorflow"],
                **progress["versions"],
            }
        write_results(path, progress)
    return done


def _summary(args: argparse.Namespace, progress: dict, began: float) -> dict:
    """The complete results: the run's header and setup, and the workers' outputs summarized."""
    from charmt.data.prepared import load_split

    done = progress["workers"]
    train = load_split(WORK / f"prepared-{args.num_samples}", "train")
    _, defaults = pipeline_defaults()
    training = speed_summary.training(done["seed"], done["ours"], done["transformer"])
    return {
        # The workers' outputs go into the sections below.
        **{key: progress[key] for key in ("date", "machine", "versions")},
        "complete": True,
        "setup": {
            "data": args.data,
            "num_samples": args.num_samples,
            "epochs": args.epochs,
            "latent_dim": defaults.latent_dim,
            "batch_size": defaults.batch_size,
            "train_pairs": len(train),
            "transformer": transformer_keys(args.epochs),
        },
        "training": training,
        "decoding": speed_summary.decoding(done["decode"]),
        "work": speed_summary.work(train, training, done["peak"]),
        "growth": speed_summary.growth({n: done[f"growth-{n}"] for n in args.growth}),
        "benchmark_seconds": round(time.time() - began),
    }


def main() -> None:
    args = _parser().parse_args()
    if args.worker:
        from bench.workers import WORKERS

        answer_as_worker(WORKERS[args.worker], args.worker_args)
        return

    from charmt.io.atomic import write_text

    WORK.mkdir(parents=True, exist_ok=True)
    began = time.time()
    raw = raw_pairs(args.data)
    progress = _progress(args.resume)
    path = args.results / f"{progress['date'][:10]}.json"
    _measure(_runs(args, raw), progress, path)
    results = _summary(args, progress, began)
    report = markdown(results)
    write_results(path, results, report)
    write_text(args.results / "latest.md", report)
    print(report)


if __name__ == "__main__":
    main()
