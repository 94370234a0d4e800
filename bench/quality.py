"""Quality for training time: the seed's model and the attention model, on 10,000 pairs and on the
whole file, each decoded greedily and by beam search, all scored on the same test sentences.

    python bench/quality.py                       # the full table: hours on a 2-core machine
    python bench/quality.py --all-pairs 2000 --base-pairs 1000 --epochs 2 --latent-dim 32 \\
        --label smoke --out /tmp/quality          # a smoke test of the script: minutes

Every configuration uses the pipeline's defaults (params.yaml) except the ones it names, with
early stopping (--patience) and the best epoch kept. The test split is the one of the first
--base-pairs pairs (preprocess.held_out_pairs): larger profiles keep those sentences out of
training and score on exactly them, with the same references; the script checks that. Each
training runs in its own process, so its peak resident memory is its own. Results go to
<out>/quality-<date>.json and .md. Not part of the test suite: timings on shared machines are
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
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"
PREPROCESS = {"validation_fraction": 0.1, "test_fraction": 0.1, "seed": 42}
# name -> (all pairs?, model params)
CONFIGURATIONS = {
    "seed": (False, {"architecture": "seed"}),
    "seed-all-pairs": (True, {"architecture": "seed"}),
    "attention": (False, {"architecture": "attention"}),
    "attention-all-pairs": (True, {"architecture": "attention"}),
}
METRICS = ("exact_match", "char_accuracy", "bleu", "chrf")


def _raw(data: str) -> str:
    from charmt.download import fetch_pairs_file

    raw = WORK / "fra.txt"
    if not raw.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        fetch_pairs_file(data, raw, progress=False)
    return str(raw)


def worker(
    raw: str,
    num_samples: int | None,
    base_pairs: int,
    model: dict,
    train: dict,
    beam_widths: list[int],
) -> dict:
    """Prepare (cached), train, and evaluate with each beam width; one JSON-able dict."""
    from charmt.data import load_split, prepare
    from charmt.evaluation import evaluate
    from charmt.model import ModelParams
    from charmt.training import TrainParams, train_model
    from charmt.translator import Translator
    from charmt.vocab import Vocabularies

    prepared = WORK / f"prepared-{num_samples or 'all'}-{base_pairs}"
    if not (prepared / "test.tsv").exists():
        prepare(raw, prepared, num_samples, held_out_pairs=base_pairs, **PREPROCESS)
    splits = {name: load_split(prepared, name) for name in ("train", "validation", "test")}
    vocabularies = Vocabularies.from_pairs(splits["train"])
    result = train_model(
        splits["train"],
        splits["validation"],
        vocabularies,
        TrainParams(**train),
        verbose=0,
        architecture=ModelParams.from_dict(model),
    )
    translator = Translator.from_training(result.model, vocabularies, splits["train"])
    evaluations = {}
    for width in beam_widths:
        figures = evaluate(translator, splits["test"], 256, 10, beam_width=width).metrics
        evaluations[str(width)] = {
            k: figures[k] for k in (*METRICS, "sentences_per_second", "test_sentences")
        }
    return {
        "train_pairs": len(splits["train"]),
        "test_split_sha256": hashlib.sha256((prepared / "test.tsv").read_bytes()).hexdigest(),
        **result.summary,
        "history": result.history,
        "evaluations": evaluations,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(**kwargs) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(kwargs)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if done.returncode != 0:
        sys.exit(f"worker {kwargs['model']} failed:\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
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
    parser.add_argument("--epochs", type=int, default=100, help="at most, with early stopping")
    parser.add_argument("--patience", type=int, default=5, help="early_stopping_patience")
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument(
        "--configs", nargs="*", default=list(CONFIGURATIONS), choices=list(CONFIGURATIONS)
    )
    parser.add_argument("--label", default="", help="how the machine was loaded, for the record")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return

    began = time.time()
    raw = _raw(args.data)
    train = {
        "epochs": args.epochs,
        "early_stopping_patience": args.patience,
        "keep_best": True,
        "latent_dim": args.latent_dim,
    }
    rows = {}
    for name in args.configs:
        all_pairs, model = CONFIGURATIONS[name]
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows[name] = run_worker(
            raw=raw,
            num_samples=args.all_pairs if all_pairs else args.base_pairs,
            base_pairs=args.base_pairs,
            model=model,
            train=train,
            beam_widths=[1, args.beam_width],
        )
        rows[name]["model"] = model
    test_splits = {row["test_split_sha256"] for row in rows.values()}
    if len(test_splits) != 1:
        sys.exit(f"the configurations were scored on different test splits: {test_splits}")
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "setup": {
            "data": args.data,
            "base_pairs": args.base_pairs,
            "all_pairs": args.all_pairs or "all",
            "train": train,
            "beam_width": args.beam_width,
            "test_split_sha256": test_splits.pop(),
        },
        "configurations": rows,
        "benchmark_seconds": round(time.time() - began),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = results["date"][:10]
    (args.out / f"quality-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"quality-{stamp}.md").write_text(markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    s = r["setup"]
    lines = [
        f"# Quality for training time, {r['date']}",
        "",
        f"{r['label'] or 'unlabelled run'}; {r['machine']['cpu_count']} CPUs, "
        f"{r['machine']['platform']}.",
        f"Data: {Path(s['data']).name}; test split of the first {s['base_pairs']} pairs for every "
        f"row (sha256 {s['test_split_sha256'][:12]}); all pairs = {s['all_pairs']}. Training: "
        f"latent {s['train']['latent_dim']}, at most {s['train']['epochs']} epochs, early "
        f"stopping patience {s['train']['early_stopping_patience']}, best epoch kept; train s = "
        "time spent training (validation excluded), summed over the epochs run.",
        "",
        "| configuration | train pairs | decoding | exact_match | char_accuracy | BLEU | chrF | "
        "train s | epochs (best) | peak RSS MiB | sentences/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["configurations"].items():
        for width, e in row["evaluations"].items():
            decoding = "greedy" if width == "1" else f"beam {width}"
            lines.append(
                f"| {name} | {row['train_pairs']} | {decoding} | {e['exact_match']:.3f} | "
                f"{e['char_accuracy']:.3f} | {e['bleu']:.1f} | {e['chrf']:.1f} | "
                f"{row['train_seconds']:.0f} | {row['epochs_run']} ({row['best_epoch']}) | "
                f"{row['peak_rss_mib']:.0f} | {e['sentences_per_second']:.0f} |"
            )
    lines += ["", f"Benchmark ran {r['benchmark_seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
