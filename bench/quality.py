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
import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

# `python bench/quality.py` puts bench/ on sys.path, not the project root (bench.harness).
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import HERE, RESULTS, WORK, WorkerFailed, raw_pairs
from bench.harness import run_worker as run_script

PREPROCESS = {"validation_fraction": 0.1, "test_fraction": 0.1, "seed": 42}
# The Transformer profiles of docs/models.md, as params.yaml keys: the README's `dvc exp run -S`
# lines set exactly these (tests/test_docs.py checks), so a row here is a measurement of the line.
TRANSFORMER = {
    "model.architecture": "transformer",
    "model.layers": 2,
    "model.width": 128,
    "model.heads": 4,
    "model.feed_forward": 512,
    "model.dropout": 0.1,
    "train.optimizer": "adam",
    "train.beta_2": 0.98,
    "train.learning_rate": 0.002,
    "train.schedule": "inverse_sqrt",
    "train.warmup_steps": 1000,
    "train.label_smoothing": 0.1,
    "train.select_by": "char_accuracy",
}
PROFILES = {
    # 10,000 pairs: an epoch over all pairs takes 8-13 minutes on these 2 cores, so a quick
    # profile of all pairs would be one epoch, most of it warm-up.
    "quick": {**TRANSFORMER, "train.warmup_steps": 250, "train.epochs": 8},
    # 5 epochs: what fits in an hour here (each epoch over all pairs: ~10 minutes quiet).
    "quality": {**TRANSFORMER, "data.num_samples": None, "train.epochs": 5},
}
# name -> (all pairs?, params.yaml keys, early stopping?)
CONFIGURATIONS = {
    "seed": (False, {"model.architecture": "seed"}, False),
    "attention": (False, {"model.architecture": "attention"}, True),
    "attention-all-pairs": (True, {"model.architecture": "attention"}, True),
    "seed-all-pairs": (True, {"model.architecture": "seed"}, True),
    # The two profiles: quick (10,000 pairs) and quality (all pairs).
    "transformer": (False, PROFILES["quick"], False),
    "transformer-all-pairs": (True, PROFILES["quality"], False),
}


def sections(keys: dict) -> tuple[dict, dict]:
    """The (model, train) sections of params.yaml keys; data.* keys are the row's data."""
    model = {k.split(".", 1)[1]: v for k, v in keys.items() if k.startswith("model.")}
    train = {k.split(".", 1)[1]: v for k, v in keys.items() if k.startswith("train.")}
    return model, train


METRICS = ("exact_match", "char_accuracy", "bleu", "chrf")


def progress_callback(vocabularies, splits, rows, curve_every, budget_seconds, curve):
    """A Keras callback (Keras is imported only in the worker): after each epoch, print a progress
    line; every ``curve_every`` epochs, decode the test sentences greedily with the weights of
    that moment (appending to ``curve``); stop once ``budget_seconds`` are spent."""
    import keras

    from charmt.data.pairs import group_references
    from charmt.evaluation import metrics
    from charmt.inference.translator import Translator

    references = group_references(splits["test"])
    sources = list(references)
    reference_lists = [references[s] for s in sources]

    class _Progress(keras.callbacks.Callback):
        translator = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            row = rows[-1]  # the recorder runs first and has appended this epoch's row
            spent = sum(r["train_seconds"] for r in rows)
            over_budget = budget_seconds is not None and spent >= budget_seconds
            line = f"  epoch {row['epoch']}: {spent / 60:.1f} min, val_loss {row['val_loss']:.4f}"
            if curve_every and (row["epoch"] % curve_every == 0 or over_budget):
                # Its inference models share the training model's layers, so it decodes
                # with the current weights.
                self.translator = self.translator or Translator.from_training(
                    self.model, vocabularies, splits["train"]
                )
                outputs = self.translator.translate(sources, 256, 10)
                point = {
                    "epoch": row["epoch"],
                    "train_seconds": round(spent, 1),
                    "val_loss": row["val_loss"],
                    **{
                        name: round(getattr(metrics, name)(outputs, reference_lists), 4)
                        for name in METRICS
                    },
                }
                curve.append(point)
                line += f", char_accuracy {point['char_accuracy']:.3f}"
                line += f", exact_match {point['exact_match']:.3f}"
            print(line, file=sys.stderr, flush=True)
            if over_budget:
                self.model.stop_training = True

    return _Progress()


def worker(
    raw: str,
    num_samples: int | None,
    base_pairs: int,
    model: dict,
    train: dict,
    beam_widths: list[int],
    curve_every: int,
    budget_seconds: float | None,
) -> dict:
    """Prepare (cached), train, and evaluate with each beam width; one JSON-able dict."""
    from charmt.data.pairs import build_vocabularies, load_split, prepare
    from charmt.evaluation.scoring import evaluate
    from charmt.inference.translator import Translator
    from charmt.models.model import ModelParams
    from charmt.training.fit import TrainParams, train_model

    prepared = WORK / f"prepared-{num_samples or 'all'}-{base_pairs}"
    if not (prepared / "test.tsv").exists():
        prepare(raw, prepared, num_samples, held_out_pairs=base_pairs, **PREPROCESS)
    splits = {name: load_split(prepared, name) for name in ("train", "validation", "test")}
    vocabularies = build_vocabularies(splits["train"])
    architecture = ModelParams.from_dict(model)
    rows: list[dict] = []
    curve: list[dict] = []
    progress = progress_callback(vocabularies, splits, rows, curve_every, budget_seconds, curve)
    params = TrainParams(**train)
    result = train_model(
        splits["train"],
        splits["validation"],
        vocabularies,
        params,
        on_epoch=rows.append,
        verbose=0,
        architecture=architecture,
        callbacks=[progress],
    )
    translator = Translator.from_training(result.model, vocabularies, splits["train"])
    # Kept for a closer look (charmt translate --model <it>); bench/work is git-ignored.
    saved = WORK / f"translator-{model.get('architecture', 'seed')}-{num_samples or 'all'}"
    shutil.rmtree(saved, ignore_errors=True)
    translator.save(saved)
    evaluations = {}
    for width in beam_widths:
        figures = evaluate(translator, splits["test"], 256, 10, beam_width=width).metrics
        evaluations[str(width)] = {
            k: figures[k] for k in (*METRICS, "sentences_per_second", "test_sentences")
        }
    epochs_run = len(result.history)
    if epochs_run == params.epochs:
        stopped_by = "epochs"
    elif budget_seconds is not None and result.train_seconds >= budget_seconds:
        stopped_by = "budget"
    else:
        stopped_by = "early stopping"
    return {
        "train_pairs": len(splits["train"]),
        "test_split_sha256": hashlib.sha256((prepared / "test.tsv").read_bytes()).hexdigest(),
        "train": train,
        "stopped_by": stopped_by,
        **result.summary,
        "history": result.history,
        "curve": curve,
        "evaluations": evaluations,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(**kwargs) -> dict:
    """One configuration's worker in a fresh process; its progress lines go straight to this
    terminal (stderr). A failed worker stops the benchmark."""
    name = kwargs["model"]
    try:
        return run_script(__file__, ["--worker", json.dumps(kwargs)], name, show_progress=True)
    except WorkerFailed as failure:
        sys.exit(f"{failure}; see above")


def main() -> None:
    from charmt.io.atomic import write_json, write_text

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
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return

    began = time.time()
    raw = raw_pairs(args.data)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    setup = {
        "data": args.data,
        "base_pairs": args.base_pairs,
        "all_pairs": args.all_pairs or "all",
        "epochs": args.epochs,
        "patience": args.patience,
        "latent_dim": args.latent_dim,
        "beam_width": args.beam_width,
        "curve_every": args.curve_every,
    }
    results = {
        "date": date,
        "label": args.label,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "setup": setup,
        "configurations": {},
    }
    json_path = args.out / f"quality-{date[:10]}.json"
    if args.add_to:
        # Rows of another run (another day, another budget) join its table if they were set up
        # alike; each row keeps its own budget and date.
        json_path = args.add_to
        results = json.loads(json_path.read_text())
        # Training settings are each row's own (it records them); data and decoding are shared.
        shared = ("data", "base_pairs", "all_pairs", "beam_width")
        earlier = {k: v for k, v in results["setup"].items() if k in shared}
        if earlier != {k: setup[k] for k in shared}:
            sys.exit(f"{json_path} was set up otherwise: {earlier}, not {setup}")
        results["label"] += f"; then {' '.join(args.configs)} on {date[:10]}: {args.label}"
    began -= results.get("benchmark_seconds", 0)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        all_pairs, keys, early_stopping = CONFIGURATIONS[name]
        print(f"{name} ...", file=sys.stderr, flush=True)
        model, profile = sections(keys)
        # Every row but the default profile's (which runs all its epochs) stops at the budget.
        budget = args.budget_minutes if name != "seed" else None
        train = {
            "epochs": args.epochs,
            "early_stopping_patience": args.patience if early_stopping else None,
            "keep_best": True,
            "latent_dim": args.latent_dim,
            **profile,
        }
        row = run_worker(
            raw=raw,
            num_samples=args.all_pairs if all_pairs else args.base_pairs,
            base_pairs=args.base_pairs,
            model=model,
            train=train,
            beam_widths=[1, args.beam_width],
            curve_every=args.curve_every,
            budget_seconds=budget * 60 if budget else None,
        )
        results["configurations"][name] = {
            "model": model,
            "date": date,
            "budget_minutes": budget,
            "curve_every": args.curve_every,
            "label": args.label,
            **row,
        }
        test_splits = {r["test_split_sha256"] for r in results["configurations"].values()}
        if len(test_splits) != 1:
            sys.exit(f"the configurations were scored on different test splits: {test_splits}")
        results["setup"]["test_split_sha256"] = next(iter(test_splits))
        results["benchmark_seconds"] = round(time.time() - began)
        # Atomically: an interrupted run never leaves half a results file behind.
        write_json(json_path, results)
        write_text(json_path.with_suffix(".md"), markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    s = r["setup"]
    lines = [
        f"# Quality for training time, {r['date']}",
        "",
        f"{r['label'] or 'unlabelled run'}; {r['machine']['cpu_count']} CPUs, "
        f"{r['machine']['platform']}.",
        "",
        f"Data: {Path(s['data']).name}; test split of the first {s['base_pairs']} pairs for every "
        f"row (sha256 {s['test_split_sha256'][:12]}); all pairs = {s['all_pairs']}. Training: "
        f"LSTMs latent {s['latent_dim']}, the best epoch (lowest val_loss) kept; `seed` runs all "
        f"{s['epochs']} epochs (the pipeline's default profile), the other LSTM rows at most "
        f"{s['epochs']} with early stopping patience {s['patience']} and a training-time budget "
        "(stopped by). Transformer rows: the profiles of docs/models.md (width 128, 2+2 layers, "
        "Adam with warm-up, label smoothing 0.1), the epoch of the best validation char_accuracy "
        "kept; `transformer` is the quick profile (10,000 pairs, 8 epochs), "
        "`transformer-all-pairs` the quality profile. "
        "train min = time spent training (validation excluded), summed over the epochs run.",
        "",
        "| configuration | train pairs | decoding | exact_match | char_accuracy | BLEU | chrF | "
        "train min | epochs (best) | stopped by | peak RSS MiB | sentences/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["configurations"].items():
        for width, e in row["evaluations"].items():
            decoding = "greedy" if width == "1" else f"beam {width}"
            lines.append(
                f"| {name} | {row['train_pairs']} | {decoding} | {e['exact_match']:.3f} | "
                f"{e['char_accuracy']:.3f} | {e['bleu']:.1f} | {e['chrf']:.1f} | "
                f"{row['train_seconds'] / 60:.1f} | {row['epochs_run']} ({row['best_epoch']}) | "
                f"{_stopped_by(row)} | {row['peak_rss_mib']:.0f} | "
                f"{e['sentences_per_second']:.0f} |"
            )
    if any(row["curve"] for row in r["configurations"].values()):
        lines += [
            "",
            "## Quality against training time",
            "",
            "Greedy decoding of the same test sentences every few epochs (LSTM rows: every "
            f"{s['curve_every']}; Transformer rows: every epoch), with the weights of that epoch "
            "(not the best so far).",
            "",
            "| configuration | epoch | train min | val_loss | exact_match | char_accuracy | BLEU "
            "| chrF |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in r["configurations"].items():
            for p in row["curve"]:
                lines.append(
                    f"| {name} | {p['epoch']} | {p['train_seconds'] / 60:.1f} | "
                    f"{p['val_loss']:.3f} | {p['exact_match']:.3f} | {p['char_accuracy']:.3f} | "
                    f"{p['bleu']:.1f} | {p['chrf']:.1f} |"
                )
    lines += ["", f"Benchmark ran {r['benchmark_seconds'] / 60:.0f} min.", ""]
    return "\n".join(lines)


def _stopped_by(row: dict) -> str:
    if row["stopped_by"] == "budget" and row.get("budget_minutes"):
        return f"budget ({row['budget_minutes']:g} min)"
    return row["stopped_by"]


if __name__ == "__main__":
    main()
