"""bench/run.py's summary: from what its workers measured to the results' sections (training,
decoding, work, growth), with the epoch times and the FLOPs counted the same way for every way.

No TensorFlow here: the driver computes this after its workers have run.
"""

from __future__ import annotations

import statistics

from bench.profiles import pipeline_defaults


def _lstm_step_flops(inputs: int, softmax_vocab: int = 0) -> int:
    # Four gates, multiply-add: 8 * (inputs + units) * units; on the decoder also the softmax
    # layer, 2 * units * vocabulary.
    latent = pipeline_defaults()[1].latent_dim
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


def _training_way(measured: dict) -> dict:
    """One training way's worker output, with its epoch time by the rules above in front."""
    epoch = steady(measured["epoch_train_seconds"])
    return {
        "seconds_per_epoch": epoch,
        "median_seconds_per_epoch": median_epoch(measured["epoch_train_seconds"]),
        "samples_per_second": measured["train_pairs"] / epoch,
        **measured,
    }


def training(seed: dict, ours: dict, transformer: dict) -> dict:
    """The training section: the three ways and their ratios."""
    ways = {"seed": _training_way(seed), "ours": _training_way(ours)}
    ways["transformer"] = _training_way(transformer)
    ours_epoch = ways["ours"]["seconds_per_epoch"]
    return {
        **ways,
        "speedup": ways["seed"]["seconds_per_epoch"] / ours_epoch,
        # Above 1: the Transformer trains faster than charmt's seed model.
        "transformer_vs_ours": ours_epoch / ways["transformer"]["seconds_per_epoch"],
    }


def decoding(decode: dict) -> dict:
    """The decoding section: the decode worker's timings as sentences per second, and ratios."""
    picked, split = decode["sentences"], decode["split_sentences"]
    d = {
        **decode,
        "seed_way_sentences_per_second": picked / decode["seed_way_seconds"],
        "batched_sentences_per_second": picked / decode["batched_seconds"],
        "split_batched_sentences_per_second": split / decode["split_batched_seconds"],
        "transformer_batched_sentences_per_second": picked / decode["transformer_batched_seconds"],
        "transformer_split_sentences_per_second": split / decode["transformer_split_seconds"],
    }
    d["speedup"] = d["batched_sentences_per_second"] / d["seed_way_sentences_per_second"]
    # The target: at least 1/3 of the seed model's greedy sentences/s, on the whole split.
    d["transformer_vs_ours"] = (
        d["transformer_split_sentences_per_second"] / d["split_batched_sentences_per_second"]
    )
    return d


def work(train, training_section: dict, peak: dict) -> dict:
    """The work section: the LSTM ways' GFLOP per epoch over ``train`` and their GFLOP/s against
    this CPU's matmul peak."""
    flops = training_flops(train)
    seed_flops = training_flops(train, padded=True)
    seed_epoch = training_section["seed"]["seconds_per_epoch"]
    ours_epoch = training_section["ours"]["seconds_per_epoch"]
    return {
        "training_gflop_per_epoch": flops / 1e9,
        "ours_gflops_achieved": flops / ours_epoch / 1e9,
        "seed_useful_gflops": flops / seed_epoch / 1e9,
        "seed_padded_gflop_per_epoch": seed_flops / 1e9,
        "seed_executed_gflops": seed_flops / seed_epoch / 1e9,
        "cpu_peak_gflops": peak["gflops"],
        "cpu_peak_how": f"float32 {peak['matmul_n']}x{peak['matmul_n']} tf.matmul, 10 repeats",
    }


def growth(measured: dict[int, dict]) -> dict:
    """The growth section: charmt's epoch time and memory at each number of pairs."""
    return {
        str(n): {
            "train_pairs": g["train_pairs"],
            "train_characters": g["train_characters"],
            "seconds_per_epoch": steady(g["epoch_train_seconds"]),
            "peak_rss_mib": g["peak_rss_mib"],
        }
        for n, g in measured.items()
    }
