"""bench/run.py's workers: each runs in a fresh process (``python bench/run.py --worker NAME
ARGS``, see bench/harness.py) and returns one JSON-able dict.

``ours``: charmt's seed model; ``transformer``: charmt's Transformer (bench/quality.py's profile);
``seed``: the Keras example's way (bench/seed.py); ``decode``: the greedy decoders timed side by
side; ``peak``: this CPU's float32 matmul peak. TensorFlow is imported inside each worker only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.harness import WORK, peak_rss_mib
from bench.profiles import pipeline_defaults, transformer_params


def _splits(data: str, num_samples: int) -> dict:
    """The train, validation and test splits of the first ``num_samples`` pairs (prepared once)."""
    from charmt.data.prepared import load_split
    from charmt.pipeline.preprocess import prepare

    preprocess, _ = pipeline_defaults()
    prepared = WORK / f"prepared-{num_samples}"
    if not (prepared / "test.tsv").exists():
        prepare(data, prepared, num_samples, **preprocess)
    return {name: load_split(prepared, name) for name in ("train", "validation", "test")}


def _quality(translate: Callable[[list[str]], list[str]], test) -> dict[str, float]:
    """exact_match and char_accuracy of ``translate`` on the test split, as the evaluate stage
    scores it (each distinct source once, against all its references)."""
    from charmt.evaluation.scoring import score_split

    return score_split(translate, test, ("exact_match", "char_accuracy")).scores


def worker_ours(data: str, num_samples: int, epochs: int, evaluate: bool) -> dict:
    from charmt.data.pairs import build_vocabularies
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
        out.update(_quality(translator.translate, splits["test"]))
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def worker_transformer(data: str, num_samples: int, epochs: int) -> dict:
    """``worker_ours`` with the Transformer profile; its translator is saved for worker_decode,
    which times its greedy decoding beside the seed model's."""
    from charmt.data.pairs import build_vocabularies
    from charmt.inference.translator import Translator
    from charmt.training.fit import train_model

    splits = _splits(data, num_samples)
    train = splits["train"]
    vocabularies = build_vocabularies(train)
    model_params, params = transformer_params(epochs)
    result = train_model(
        train, splits["validation"], vocabularies, params, verbose=0, model_params=model_params
    )
    translator = Translator.from_training(result.model, vocabularies, train)
    translator.save(WORK / "transformer-model")
    return {
        "train_pairs": len(train),
        "epoch_train_seconds": [row["train_seconds"] for row in result.history],
        "final_val_loss": result.history[-1]["val_loss"],
        **_quality(translator.translate, splits["test"]),
        "peak_rss_mib": peak_rss_mib(),
    }


def _train_timer():
    """A Keras callback whose ``seconds`` are each epoch's training time, validation excluded
    (as charmt's history reports it). Built here: Keras is imported in the worker only."""
    import keras

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

    return TrainTime()


def worker_seed(data: str, num_samples: int, epochs: int) -> dict:
    """The Keras example's way (bench/seed.py) on the same splits and hyperparameters."""
    import keras

    from bench.seed import SeedData, build_seed_model, seed_decode
    from charmt.models.optimization import build_optimizer

    _, params = pipeline_defaults()
    splits = _splits(data, num_samples)
    train, validation = splits["train"], splits["validation"]
    # From the train split only, as charmt builds its vocabularies: the arrays are padded to the
    # longest training sentence, not to the longest of all three splits.
    seed_data = SeedData(train)
    x_train = seed_data.arrays(train)
    x_validation = seed_data.arrays(validation)
    keras.utils.set_random_seed(params.seed)
    model = build_seed_model(seed_data, params.latent_dim, build_optimizer(params))
    timer = _train_timer()
    history = model.fit(
        [x_train[0], x_train[1]],
        x_train[2],
        validation_data=([x_validation[0], x_validation[1]], x_validation[2]),
        batch_size=params.batch_size,
        epochs=epochs,
        callbacks=[timer],
        verbose=0,
    )
    return {
        "train_pairs": len(train),
        "epoch_train_seconds": timer.seconds,
        "final_val_loss": history.history["val_loss"][-1],
        "array_mib": sum(a.nbytes for a in (*x_train, *x_validation)) / 2**20,
        **_quality(lambda sources: seed_decode(model, seed_data, sources), splits["test"]),
        "peak_rss_mib": peak_rss_mib(),
    }


def _timed(
    decode: Callable[[list[str]], list[str]], sentences: list[str]
) -> tuple[list[str], float]:
    """(``decode(sentences)``, the seconds it took)."""
    start = time.perf_counter()
    outputs = decode(sentences)
    return outputs, time.perf_counter() - start


def _seed_way(translator) -> Callable[[list[str]], list[str]]:
    """The translator's model decoded the seed's way: one sentence, one character at a time."""
    import numpy as np

    from charmt.inference.decoding import OneSentenceDecoder
    from charmt.inference.translator import DEFAULT_LENGTH_MARGIN

    vocab = translator.vocabularies
    cap = translator.output_cap(DEFAULT_LENGTH_MARGIN)
    decode_like_seed = OneSentenceDecoder(translator.model)

    def seed_way(sentences: list[str]) -> list[str]:
        return [
            vocab.target.decode(decode_like_seed(np.array(vocab.source.encode(s), np.int32), cap))
            for s in sentences
        ]

    return seed_way


def _transformer_timings(model: str, picked: list[str], sources: list[str]) -> dict:
    """The Transformer's greedy decoder, warmed up like the seed model's and timed on the same
    sentences, in the same process right after it: their ratio shares one moment of this
    shared machine."""
    from charmt.inference.translator import Translator

    transformer = Translator.load(model)
    transformer.translate(picked[:1])
    _, picked_seconds = _timed(transformer.translate, picked)
    outputs, split_seconds = _timed(transformer.translate, sources)
    return {
        "transformer_batched_seconds": picked_seconds,
        "transformer_split_seconds": split_seconds,
        "transformer_mean_output_characters": statistics.mean(len(o) for o in outputs),
    }


def worker_decode(
    data: str, num_samples: int, sample: int, transformer_model: str | None = None
) -> dict:
    """charmt's batched greedy decoder against the seed's way, both on the model worker_ours
    saved, then the Transformer's (worker_transformer's, or ``transformer_model``)."""
    from charmt.data.references import group_references
    from charmt.inference.translator import Translator

    sources = list(group_references(_splits(data, num_samples)["test"]))
    translator = Translator.load(WORK / "ours-model")
    seed_way = _seed_way(translator)
    # Both ways warmed up on one sentence (tracing the loop, building the predict functions), as
    # a server would at start-up; then both timed on the same sentences.
    picked = sources[:: max(1, len(sources) // sample)][:sample]
    translator.translate(picked[:1])
    seed_way(picked[:1])
    batched, batched_seconds = _timed(translator.translate, picked)
    one_at_a_time, seed_seconds = _timed(seed_way, picked)
    # Batched decoding's real use, the whole test split at once (the seed's way would take hours).
    _, split_seconds = _timed(translator.translate, sources)
    transformer = _transformer_timings(
        transformer_model or str(WORK / "transformer-model"), picked, sources
    )
    seed_outputs = translator.translate(sources)
    return {
        "sentences": len(picked),
        "batched_seconds": batched_seconds,
        "seed_way_seconds": seed_seconds,
        "same_strings": one_at_a_time == batched,
        "split_sentences": len(sources),
        "split_batched_seconds": split_seconds,
        "transformer_batched_seconds": transformer["transformer_batched_seconds"],
        "transformer_split_seconds": transformer["transformer_split_seconds"],
        "transformer_model": str(transformer_model or "this benchmark's"),
        # Decoding time grows with the characters emitted: a weak model that repeats itself to
        # the length cap decodes far more of them than a trained one.
        "mean_output_characters": statistics.mean(len(o) for o in seed_outputs),
        "transformer_mean_output_characters": transformer["transformer_mean_output_characters"],
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


WORKERS: dict[str, Callable[..., dict]] = {
    "ours": worker_ours,
    "seed": worker_seed,
    "transformer": worker_transformer,
    "decode": worker_decode,
    "peak": worker_peak_gflops,
}
