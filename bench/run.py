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
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

# `python bench/run.py` puts bench/ on sys.path, not the project root: the driver imports
# bench.harness and bench.quality (the Transformer profile), as its workers do (PYTHONPATH).
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import HERE, RESULTS, WORK, WorkerFailed, raw_pairs
from bench.harness import run_worker as run_script


def _defaults() -> tuple[dict, object]:
    """The pipeline's preprocess section (params.yaml) and the default ``TrainParams``."""
    import yaml

    # From charmt.params, not charmt.training.fit: the driver stays free of TensorFlow.
    from charmt.params import TrainParams

    params = yaml.safe_load((HERE.parent / "params.yaml").read_text(encoding="utf-8"))
    return params["preprocess"], TrainParams()


# --- workers: each runs in a fresh process and prints one JSON line -------------------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _splits(data: str, num_samples: int):
    from charmt.data.pairs import load_split, prepare

    preprocess, _ = _defaults()
    prepared = WORK / f"prepared-{num_samples}"
    if not (prepared / "test.tsv").exists():
        prepare(data, prepared, num_samples, **preprocess)
    return {name: load_split(prepared, name) for name in ("train", "validation", "test")}


def _quality(outputs: list[str], test) -> dict[str, float]:
    from charmt.data.pairs import group_references
    from charmt.evaluation import metrics

    references = group_references(test)
    refs = [references[s] for s in references]
    return {
        "exact_match": metrics.exact_match(outputs, refs),
        "char_accuracy": metrics.char_accuracy(outputs, refs),
    }


def worker_ours(data: str, num_samples: int, epochs: int, evaluate: bool) -> dict:
    from charmt.data.pairs import build_vocabularies, group_references
    from charmt.inference.translator import Translator
    from charmt.training.fit import TrainParams, train_model

    splits = _splits(data, num_samples)
    train = splits["train"]
    vocabularies = build_vocabularies(train)
    # keep_best=False: both ways are judged at their last epoch, like for like.
    params = TrainParams(epochs=epochs, keep_best=False)
    result = train_model(train, splits["validation"], vocabularies, params, verbose=0)
    out = {
        "train_pairs": len(train),
        "train_characters": sum(len(p.source) + len(p.target) for p in train),
        "epoch_train_seconds": [row["train_seconds"] for row in result.history],
        "final_val_loss": result.history[-1]["val_loss"],
    }
    if evaluate:
        translator = Translator.from_training(result.model, vocabularies, train)
        translator.save(WORK / "ours-model")
        out.update(
            _quality(translator.translate(list(group_references(splits["test"]))), splits["test"])
        )
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def transformer_keys(epochs: int) -> dict:
    """The Transformer profile's params.yaml keys (bench/quality.py's ``TRANSFORMER``, so this
    measures the model that bench/quality.py scores), for ``epochs`` epochs and judged at the
    last one, like the other ways; batch_size, latent_dim and seed stay the defaults."""
    from bench.quality import TRANSFORMER

    # keep_best False: the last epoch, like for like with the LSTM ways. With it, the profile's
    # select_by char_accuracy would only decode the validation split after every epoch to pick
    # nothing; val_loss skips that decoding (not in train_seconds, but it costs the run time).
    return {
        **TRANSFORMER,
        "train.epochs": epochs,
        "train.keep_best": False,
        "train.select_by": "val_loss",
    }


def transformer_params(epochs: int):
    """``transformer_keys`` as (``ModelParams``, ``TrainParams``)."""
    from bench.quality import sections
    from charmt.params import ModelParams, TrainParams

    model, train = sections(transformer_keys(epochs))
    return ModelParams.from_dict(model), TrainParams.from_dict(train)


def worker_transformer(data: str, num_samples: int, epochs: int) -> dict:
    """``worker_ours`` with the Transformer profile; its translator is saved for worker_decode,
    which times its greedy decoding beside the seed model's."""
    from charmt.data.pairs import build_vocabularies, group_references
    from charmt.inference.translator import Translator
    from charmt.training.fit import train_model

    splits = _splits(data, num_samples)
    train = splits["train"]
    vocabularies = build_vocabularies(train)
    architecture, params = transformer_params(epochs)
    result = train_model(
        train, splits["validation"], vocabularies, params, verbose=0, architecture=architecture
    )
    translator = Translator.from_training(result.model, vocabularies, train)
    translator.save(WORK / "transformer-model")
    outputs = translator.translate(list(group_references(splits["test"])))
    return {
        "train_pairs": len(train),
        "epoch_train_seconds": [row["train_seconds"] for row in result.history],
        "final_val_loss": result.history[-1]["val_loss"],
        **_quality(outputs, splits["test"]),
        "peak_rss_mib": _peak_rss_mib(),
    }


def worker_seed(data: str, num_samples: int, epochs: int) -> dict:
    import keras

    from bench.seed import SeedData, build_seed_model, seed_decode
    from charmt.data.pairs import group_references
    from charmt.models.optimization import build_optimizer

    _, params = _defaults()
    splits = _splits(data, num_samples)
    train, validation = splits["train"], splits["validation"]
    # From the train split only, as charmt builds its vocabularies: the arrays are padded to the
    # longest training sentence, not to the longest of all three splits.
    seed_data = SeedData(train)
    x_train = seed_data.arrays(train)
    x_validation = seed_data.arrays(validation)
    keras.utils.set_random_seed(params.seed)
    model = build_seed_model(seed_data, params.latent_dim, build_optimizer(params))

    class TrainTime(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.test_start = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            self.test_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append((self.test_start or time.perf_counter()) - self.start)

    timer = TrainTime()
    history = model.fit(
        [x_train[0], x_train[1]],
        x_train[2],
        validation_data=([x_validation[0], x_validation[1]], x_validation[2]),
        batch_size=params.batch_size,
        epochs=epochs,
        callbacks=[timer],
        verbose=0,
    )
    outputs = seed_decode(model, seed_data, list(group_references(splits["test"])))
    return {
        "train_pairs": len(train),
        "epoch_train_seconds": timer.seconds,
        "final_val_loss": history.history["val_loss"][-1],
        "array_mib": sum(a.nbytes for a in (*x_train, *x_validation)) / 2**20,
        **_quality(outputs, splits["test"]),
        "peak_rss_mib": _peak_rss_mib(),
    }


def worker_decode(
    data: str, num_samples: int, sample: int, transformer_model: str | None = None
) -> dict:
    import numpy as np

    from charmt.data.pairs import group_references
    from charmt.inference.decoding import SeedStyleDecoder
    from charmt.inference.translator import DEFAULT_LENGTH_MARGIN, Translator

    splits = _splits(data, num_samples)
    sources = list(group_references(splits["test"]))
    translator = Translator.load(WORK / "ours-model")
    vocab = translator.vocabularies
    cap = translator.output_cap(DEFAULT_LENGTH_MARGIN)
    decode_like_seed = SeedStyleDecoder(translator.model)

    def seed_way(sentences: list[str]) -> list[str]:
        return [
            vocab.target.decode(decode_like_seed(np.array(vocab.source.encode(s), np.int32), cap))
            for s in sentences
        ]

    # Both ways warmed up on one sentence (tracing the loop, building the predict functions), as
    # a server would at start-up; then both timed on the same sentences.
    picked = sources[:: max(1, len(sources) // sample)][:sample]
    translator.translate(picked[:1])
    seed_way(picked[:1])
    start = time.perf_counter()
    batched = translator.translate(picked)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    one_at_a_time = seed_way(picked)
    seed_seconds = time.perf_counter() - start
    # Batched decoding's real use, the whole test split at once (the seed's way would take hours).
    start = time.perf_counter()
    translator.translate(sources)
    split_seconds = time.perf_counter() - start
    # The Transformer's greedy decoder in this same process, warmed up the same way and timed
    # right after the seed model's on the same sentences, so their ratio shares one moment of
    # this shared machine.
    transformer = Translator.load(transformer_model or WORK / "transformer-model")
    transformer.translate(picked[:1])
    start = time.perf_counter()
    transformer.translate(picked)
    transformer_seconds = time.perf_counter() - start
    start = time.perf_counter()
    transformer_outputs = transformer.translate(sources)
    transformer_split_seconds = time.perf_counter() - start
    seed_outputs = translator.translate(sources)
    return {
        "sentences": len(picked),
        "batched_seconds": batched_seconds,
        "seed_way_seconds": seed_seconds,
        "same_strings": one_at_a_time == batched,
        "split_sentences": len(sources),
        "split_batched_seconds": split_seconds,
        "transformer_batched_seconds": transformer_seconds,
        "transformer_split_seconds": transformer_split_seconds,
        "transformer_model": str(transformer_model or "this benchmark's"),
        # Decoding time grows with the characters emitted: a weak model that repeats itself to
        # the length cap decodes far more of them than a trained one.
        "mean_output_characters": statistics.mean(len(o) for o in seed_outputs),
        "transformer_mean_output_characters": statistics.mean(len(o) for o in transformer_outputs),
    }


def worker_peak_gflops() -> dict:
    """This CPU at its best in float32: a large TensorFlow matmul, same threads as training."""
    import tensorflow as tf

    n = 2048
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    repeats = 10
    start = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    seconds = time.perf_counter() - start
    # From the module, not the package metadata: the distribution is tensorflow-cpu on the CPU
    # build and tensorflow on the GPU one (tensorflow[and-cuda]).
    return {
        "matmul_n": n,
        "gflops": 2 * n**3 * repeats / seconds / 1e9,
        "tensorflow": tf.__version__,
    }


WORKERS = {
    "ours": worker_ours,
    "seed": worker_seed,
    "transformer": worker_transformer,
    "decode": worker_decode,
    "peak": worker_peak_gflops,
}


# --- the driver ---------------------------------------------------------------------------------


def run_worker(name: str, **kwargs) -> dict:
    """Run worker ``name`` in a fresh process; its JSON output. Raises ``WorkerFailed``."""
    print(f"-- {name} {kwargs}", flush=True)
    return run_script(__file__, ["--worker", name, json.dumps(kwargs)], name)


def _lstm_step_flops(inputs: int, softmax_vocab: int = 0) -> int:
    # Four gates, multiply-add: 8 * (inputs + units) * units; on the decoder also the softmax
    # layer, 2 * units * vocabulary.
    latent = _defaults()[1].latent_dim
    return 8 * (inputs + latent) * latent + 2 * latent * softmax_vocab


def training_flops(pairs, padded: bool = False) -> float:
    """Floating-point operations of one training epoch, counted from the shapes.

    Over the real characters (``padded=False``), or over the seed's arrays padded to the longest
    sentence of the data (``padded=True``). The backward pass costs about twice the forward.
    """
    from charmt.data.vocabulary import SPECIAL_TOKENS

    source_vocab = len(SPECIAL_TOKENS) + len({c for p in pairs for c in p.source})
    target_vocab = len(SPECIAL_TOKENS) + len({c for p in pairs for c in p.target})
    if padded:
        encoder_steps = len(pairs) * max(len(p.source) for p in pairs)
        decoder_steps = len(pairs) * max(len(p.target) + 1 for p in pairs)
    else:
        encoder_steps = sum(len(p.source) for p in pairs)
        decoder_steps = sum(len(p.target) + 1 for p in pairs)
    forward = encoder_steps * _lstm_step_flops(source_vocab) + decoder_steps * _lstm_step_flops(
        target_vocab, target_vocab
    )
    return 3.0 * forward


def steady(seconds: list[float]) -> float:
    """The fastest epoch after the first (which includes tracing and warm-up).

    On a shared machine other tenants only ever add time, so the fastest epoch is the one least
    disturbed (as timeit reports the minimum); the median is reported beside it.
    """
    return min(seconds[1:] if len(seconds) > 1 else seconds)


def median_epoch(seconds: list[float]) -> float:
    """The median epoch time after the first."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def versions() -> dict[str, str]:
    """The packages' versions but TensorFlow's, which the peak worker reports."""
    from importlib.metadata import version

    return {p: version(p) for p in ("keras", "numpy", "mlflow", "dvc")}


def write_results(directory: Path, results: dict) -> Path:
    """The JSON results file, written atomically (a reader never sees half of it); its path."""
    from charmt.io.atomic import write_json

    path = directory / f"{results['date'][:10]}.json"
    write_json(path, results)
    return path


def main() -> None:
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
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return

    WORK.mkdir(parents=True, exist_ok=True)
    began = time.time()
    raw = raw_pairs(args.data)
    common = {"data": raw, "num_samples": args.num_samples}
    progress: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        # Looked up before any worker runs: a missing package fails now, not after all of them.
        "versions": versions(),
        "complete": False,
        "workers": {},
    }
    if args.resume:
        progress = json.loads(args.resume.read_text(encoding="utf-8"))
        progress.pop("failed", None)
    runs = [
        ("peak", "peak", {}),
        ("seed", "seed", {"epochs": args.epochs, **common}),
        ("ours", "ours", {"epochs": args.epochs, "evaluate": True, **common}),
        # Before decode, which times the translator it saves.
        ("transformer", "transformer", {"epochs": args.epochs, **common}),
        (
            "decode",
            "decode",
            {"sample": args.decode_sample, "transformer_model": args.transformer_model, **common},
        ),
    ] + [
        (f"growth-{n}", "ours", {"data": raw, "num_samples": n, "epochs": 3, "evaluate": False})
        for n in args.growth
    ]
    done = progress["workers"]
    for label, name, kwargs in runs:
        if label in done:
            continue  # measured by the run being resumed
        try:
            done[label] = run_worker(name, **kwargs)
        except WorkerFailed as failure:
            progress["failed"] = {"worker": label, "stderr": failure.stderr}
            path = write_results(args.results, progress)
            sys.exit(f"worker {label} failed (what ran is in {path}):\n{failure.stderr}")
        if label == "peak":
            progress["versions"] = {
                "tensorflow": done["peak"]["tensorflow"],
                **progress["versions"],
            }
        write_results(args.results, progress)
    peak, seed, ours, decode = done["peak"], done["seed"], done["ours"], done["decode"]
    transformer = done["transformer"]
    growth = {n: done[f"growth-{n}"] for n in args.growth}

    from charmt.data.pairs import load_split

    train = load_split(WORK / f"prepared-{args.num_samples}", "train")
    flops = training_flops(train)
    seed_flops = training_flops(train, padded=True)
    seed_epoch, ours_epoch = (
        steady(seed["epoch_train_seconds"]),
        steady(ours["epoch_train_seconds"]),
    )
    transformer_epoch = steady(transformer["epoch_train_seconds"])
    results = {
        # The workers' outputs go into the sections below.
        **{key: progress[key] for key in ("date", "machine", "versions")},
        "complete": True,
        "setup": {
            "data": args.data,
            "num_samples": args.num_samples,
            "epochs": args.epochs,
            "latent_dim": _defaults()[1].latent_dim,
            "batch_size": _defaults()[1].batch_size,
            "train_pairs": len(train),
            "transformer": transformer_keys(args.epochs),
        },
        "training": {
            "seed": {
                "seconds_per_epoch": seed_epoch,
                "median_seconds_per_epoch": median_epoch(seed["epoch_train_seconds"]),
                "samples_per_second": seed["train_pairs"] / seed_epoch,
                **seed,
            },
            "ours": {
                "seconds_per_epoch": ours_epoch,
                "median_seconds_per_epoch": median_epoch(ours["epoch_train_seconds"]),
                "samples_per_second": ours["train_pairs"] / ours_epoch,
                **ours,
            },
            "transformer": {
                "seconds_per_epoch": transformer_epoch,
                "median_seconds_per_epoch": median_epoch(transformer["epoch_train_seconds"]),
                "samples_per_second": transformer["train_pairs"] / transformer_epoch,
                **transformer,
            },
            "speedup": seed_epoch / ours_epoch,
            # Above 1: the Transformer trains faster than charmt's seed model.
            "transformer_vs_ours": ours_epoch / transformer_epoch,
        },
        "decoding": {
            **decode,
            "seed_way_sentences_per_second": decode["sentences"] / decode["seed_way_seconds"],
            "batched_sentences_per_second": decode["sentences"] / decode["batched_seconds"],
            "split_batched_sentences_per_second": decode["split_sentences"]
            / decode["split_batched_seconds"],
            "transformer_batched_sentences_per_second": decode["sentences"]
            / decode["transformer_batched_seconds"],
            "transformer_split_sentences_per_second": decode["split_sentences"]
            / decode["transformer_split_seconds"],
        },
        "work": {
            "training_gflop_per_epoch": flops / 1e9,
            "ours_gflops_achieved": flops / ours_epoch / 1e9,
            "seed_useful_gflops": flops / seed_epoch / 1e9,
            "seed_padded_gflop_per_epoch": seed_flops / 1e9,
            "seed_executed_gflops": seed_flops / seed_epoch / 1e9,
            "cpu_peak_gflops": peak["gflops"],
            "cpu_peak_how": f"float32 {peak['matmul_n']}x{peak['matmul_n']} tf.matmul, 10 repeats",
        },
        "growth": {
            str(n): {
                "train_pairs": g["train_pairs"],
                "train_characters": g["train_characters"],
                "seconds_per_epoch": steady(g["epoch_train_seconds"]),
                "peak_rss_mib": g["peak_rss_mib"],
            }
            for n, g in growth.items()
        },
        "benchmark_seconds": round(time.time() - began),
    }
    d = results["decoding"]
    d["speedup"] = d["batched_sentences_per_second"] / d["seed_way_sentences_per_second"]
    # The target: at least 1/3 of the seed model's greedy sentences/s, on the whole split.
    d["transformer_vs_ours"] = (
        d["transformer_split_sentences_per_second"] / d["split_batched_sentences_per_second"]
    )
    from charmt.io.atomic import write_text

    path = write_results(args.results, results)
    write_text(path.with_suffix(".md"), markdown(results))
    write_text(args.results / "latest.md", markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    t, d, w = r["training"], r["decoding"], r["work"]
    s, o, x = t["seed"], t["ours"], t["transformer"]
    profile = r["setup"]["transformer"]
    decoded = d.get("transformer_model", "this benchmark's")
    shape = ", ".join(
        f"{key.split('.', 1)[1]} {profile[key]}"
        for key in ("model.layers", "model.width", "model.heads", "model.feed_forward")
    )
    lines = [
        f"# Benchmark {r['date']}",
        "",
        f"{r['machine']['cpu_count']} CPUs, {r['machine']['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + ".",
        f"Data: first {r['setup']['num_samples']} pairs of {Path(r['setup']['data']).name} "
        f"({r['setup']['train_pairs']} training pairs); latent {r['setup']['latent_dim']}, "
        f"batch {r['setup']['batch_size']}, {r['setup']['epochs']} epochs each; "
        "epoch time = the fastest of epochs 2..N, training only (validation excluded); the "
        "median is in the next row, as these machines are shared and noisy.",
        f"charmt transformer: bench/quality.py's Transformer profile ({shape}; "
        f"{profile['train.optimizer']}, {profile['train.schedule']} schedule, label smoothing "
        f"{profile['train.label_smoothing']}), same splits, batch and epochs, judged at its last "
        "epoch; its greedy decoding is timed in the decoding process, right after charmt's.",
        "",
        "| | seed's way | charmt | ratio | charmt transformer | transformer / charmt |",
        "|---|---|---|---|---|---|",
        f"| training s/epoch | {s['seconds_per_epoch']:.2f} | {o['seconds_per_epoch']:.2f} | "
        f"{t['speedup']:.2f}x | {x['seconds_per_epoch']:.2f} | "
        f"{t['transformer_vs_ours']:.2f}x as fast |",
        f"| median training s/epoch | {s['median_seconds_per_epoch']:.2f} | "
        f"{o['median_seconds_per_epoch']:.2f} | "
        f"{s['median_seconds_per_epoch'] / o['median_seconds_per_epoch']:.2f}x | "
        f"{x['median_seconds_per_epoch']:.2f} | "
        f"{o['median_seconds_per_epoch'] / x['median_seconds_per_epoch']:.2f}x as fast |",
        f"| training samples/s | {s['samples_per_second']:.0f} | {o['samples_per_second']:.0f} | "
        f"{t['speedup']:.2f}x | {x['samples_per_second']:.0f} | "
        f"{t['transformer_vs_ours']:.2f}x |",
        f"| peak RSS (MiB) | {s['peak_rss_mib']:.0f} | {o['peak_rss_mib']:.0f} | "
        f"{s['peak_rss_mib'] / o['peak_rss_mib']:.2f}x less | {x['peak_rss_mib']:.0f} | "
        f"{x['peak_rss_mib'] / o['peak_rss_mib']:.2f}x as much |",
        f"| val_loss after {r['setup']['epochs']} epochs | {s['final_val_loss']:.4f} | "
        f"{o['final_val_loss']:.4f} | (seed's counts padding) | {x['final_val_loss']:.4f} | "
        "(label smoothing: not comparable) |",
        f"| test exact_match | {s['exact_match']:.4f} | {o['exact_match']:.4f} | | "
        f"{x['exact_match']:.4f} | |",
        f"| test char_accuracy | {s['char_accuracy']:.4f} | {o['char_accuracy']:.4f} | | "
        f"{x['char_accuracy']:.4f} | |",
        f"| decoding sentences/s, the same {d['sentences']} sentences, all warmed up | "
        f"{d['seed_way_sentences_per_second']:.2f} | {d['batched_sentences_per_second']:.0f} | "
        f"{d['speedup']:.0f}x | {d['transformer_batched_sentences_per_second']:.0f} | "
        f"{d['transformer_batched_sentences_per_second'] / d['batched_sentences_per_second']:.2f}x"
        " |",
        f"| greedy decoding sentences/s, the whole test split ({d['split_sentences']}), batched | "
        f"| {d['split_batched_sentences_per_second']:.0f} | | "
        f"{d['transformer_split_sentences_per_second']:.0f} | "
        f"{d['transformer_vs_ours']:.2f}x (target >= 0.33x) |",
        f"| mean characters per translation, the whole test split | "
        f"| {d.get('mean_output_characters', float('nan')):.1f} | | "
        f"{d.get('transformer_mean_output_characters', float('nan')):.1f} | |",
        "",
        f"The Transformer decoded: {decoded} model.",
        "",
        f"Same strings from the seed's way and charmt on those {d['sentences']} sentences: "
        f"{d['same_strings']}.",
        "",
        "Work, the LSTM ways only (the seed's way and charmt; the Transformer's FLOPs are not "
        f"counted): {w['training_gflop_per_epoch']:.1f} GFLOP per training epoch over the real "
        f"characters (counted from the shapes); charmt achieves {w['ours_gflops_achieved']:.1f} "
        f"GFLOP/s, the seed's way {w['seed_useful_gflops']:.1f} useful GFLOP/s; this CPU peaks at "
        f"{w['cpu_peak_gflops']:.0f} GFLOP/s ({w['cpu_peak_how']}). Padded to the longest "
        f"sentence, the seed's way does {w['seed_padded_gflop_per_epoch']:.1f} GFLOP per epoch "
        f"({w['seed_padded_gflop_per_epoch'] / w['training_gflop_per_epoch']:.2f}x the real work) "
        f"at {w['seed_executed_gflops']:.1f} GFLOP/s.",
        "",
        "Growth (charmt, the faster of epochs 2 and 3):",
        "",
        "| num_samples | training pairs | characters | s/epoch | µs/character | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for n, g in r["growth"].items():
        per_char = g["seconds_per_epoch"] / g["train_characters"] * 1e6
        lines.append(
            f"| {n} | {g['train_pairs']} | {g['train_characters']} | "
            f"{g['seconds_per_epoch']:.1f} | {per_char:.1f} | {g['peak_rss_mib']:.0f} |"
        )
    lines += ["", f"Benchmark ran {r['benchmark_seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
