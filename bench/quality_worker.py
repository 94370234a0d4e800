"""bench/quality.py's worker: one configuration trained and scored in a fresh process
(``python bench/quality.py --worker ARGS``, see bench/harness.py). TensorFlow is imported inside
the worker only."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from bench.harness import WORK, peak_rss_mib
from bench.profiles import PREPROCESS

METRICS = ("exact_match", "char_accuracy", "bleu", "chrf")


def progress_callback(vocabularies, splits, rows, curve_every, budget_seconds, curve):
    """A Keras callback (Keras is imported only in the worker): after each epoch, print a progress
    line; every ``curve_every`` epochs, decode the test sentences greedily with the weights of
    that moment (appending to ``curve``); stop once ``budget_seconds`` are spent."""
    import keras

    from charmt.evaluation.scoring import score_split
    from charmt.inference.translator import Translator

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
                translator = self.translator
                scored = score_split(
                    lambda sources: translator.translate(sources, 256, 10), splits["test"], METRICS
                )
                point = {
                    "epoch": row["epoch"],
                    "train_seconds": round(spent, 1),
                    "val_loss": row["val_loss"],
                    **{name: round(score, 4) for name, score in scored.scores.items()},
                }
                curve.append(point)
                line += f", char_accuracy {point['char_accuracy']:.3f}"
                line += f", exact_match {point['exact_match']:.3f}"
            print(line, file=sys.stderr, flush=True)
            if over_budget:
                self.model.stop_training = True

    return _Progress()


def _prepared(raw: str, num_samples: int | None, base_pairs: int) -> Path:
    """The splits of the first ``num_samples`` pairs (all: None), prepared once, with the test
    split of the first ``base_pairs`` pairs (held out of the larger training splits)."""
    from charmt.pipeline.preprocess import prepare

    prepared = WORK / f"prepared-{num_samples or 'all'}-{base_pairs}"
    if not (prepared / "test.tsv").exists():
        prepare(raw, prepared, num_samples, held_out_pairs=base_pairs, **PREPROCESS)
    return prepared


def _evaluations(translator, test, beam_widths: list[int]) -> dict:
    """The test split's scores and speed with each beam width (1: greedy), by width."""
    from charmt.evaluation.scoring import evaluate

    evaluations = {}
    for width in beam_widths:
        figures = evaluate(translator, test, 256, 10, beam_width=width).metrics
        evaluations[str(width)] = {
            k: figures[k] for k in (*METRICS, "sentences_per_second", "test_sentences")
        }
    return evaluations


def _stopped_by(result, epochs: int, budget_seconds: float | None) -> str:
    """Why the training ended: all its epochs, the budget, or early stopping."""
    if len(result.history) == epochs:
        return "epochs"
    if budget_seconds is not None and result.train_seconds >= budget_seconds:
        return "budget"
    return "early stopping"


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
    from charmt.data.pairs import build_vocabularies
    from charmt.data.prepared import load_split
    from charmt.inference.translator import Translator
    from charmt.params import ModelParams, TrainParams
    from charmt.training.fit import train_model

    prepared = _prepared(raw, num_samples, base_pairs)
    splits = {name: load_split(prepared, name) for name in ("train", "validation", "test")}
    vocabularies = build_vocabularies(splits["train"])
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
        model_params=ModelParams.from_dict(model),
        callbacks=[progress],
    )
    translator = Translator.from_training(result.model, vocabularies, splits["train"])
    # Kept for a closer look (charmt translate --model <it>); bench/work is git-ignored.
    saved = WORK / f"translator-{model.get('architecture', 'keras_example')}-{num_samples or 'all'}"
    shutil.rmtree(saved, ignore_errors=True)
    translator.save(saved)
    return {
        "train_pairs": len(splits["train"]),
        "test_split_sha256": hashlib.sha256((prepared / "test.tsv").read_bytes()).hexdigest(),
        "train": train,
        "stopped_by": _stopped_by(result, params.epochs, budget_seconds),
        **result.summary,
        "history": result.history,
        "curve": curve,
        "evaluations": _evaluations(translator, splits["test"], beam_widths),
        "peak_rss_mib": peak_rss_mib(),
    }
