"""bench/run.py's report: its results (bench/speed_summary.py's sections) as Markdown."""

from __future__ import annotations

from pathlib import Path


def _header(r: dict) -> list[str]:
    """The title, the machine, the data and how each way was trained and timed."""
    setup = r["setup"]
    profile = setup["transformer"]
    shape = ", ".join(
        f"{key.split('.', 1)[1]} {profile[key]}"
        for key in ("model.layers", "model.width", "model.heads", "model.feed_forward")
    )
    return [
        f"# Benchmark {r['date']}",
        "",
        f"{r['machine']['cpu_count']} CPUs, {r['machine']['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + ".",
        f"Data: first {setup['num_samples']} pairs of {Path(setup['data']).name} "
        f"({setup['train_pairs']} training pairs); latent {setup['latent_dim']}, "
        f"batch {setup['batch_size']}, {setup['epochs']} epochs each; "
        "epoch time = the fastest of epochs 2..N, training only (validation excluded); the "
        "median is in the next row, as these machines are shared and noisy.",
        f"charmt transformer: bench/quality.py's Transformer profile ({shape}; "
        f"{profile['train.optimizer']}, {profile['train.schedule']} schedule, label smoothing "
        f"{profile['train.label_smoothing']}), same splits, batch and epochs, judged at its last "
        "epoch; its greedy decoding is timed in the decoding process, right after charmt's.",
        "",
    ]


def _training_rows(r: dict) -> list[str]:
    """The table's head and its training rows: time, samples/s, memory, loss and quality."""
    t = r["training"]
    s, o, x = t["seed"], t["ours"], t["transformer"]
    median = "median_seconds_per_epoch"
    return [
        "| | seed's way | charmt | ratio | charmt transformer | transformer / charmt |",
        "|---|---|---|---|---|---|",
        f"| training s/epoch | {s['seconds_per_epoch']:.2f} | {o['seconds_per_epoch']:.2f} | "
        f"{t['speedup']:.2f}x | {x['seconds_per_epoch']:.2f} | "
        f"{t['transformer_vs_ours']:.2f}x as fast |",
        f"| median training s/epoch | {s[median]:.2f} | {o[median]:.2f} | "
        f"{s[median] / o[median]:.2f}x | {x[median]:.2f} | {o[median] / x[median]:.2f}x as fast |",
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
    ]


def _decoding_rows(d: dict) -> list[str]:
    """The table's decoding rows, then the lines on what was decoded."""
    decoded = d.get("transformer_model", "this benchmark's")
    return [
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
    ]


def _work_paragraph(w: dict) -> list[str]:
    """The LSTM ways' FLOPs against this CPU's peak."""
    return [
        "Work, the LSTM ways only (the seed's way and charmt; the Transformer's FLOPs are not "
        f"counted): {w['training_gflop_per_epoch']:.1f} GFLOP per training epoch over the real "
        f"characters (counted from the shapes); charmt achieves {w['ours_gflops_achieved']:.1f} "
        f"GFLOP/s, the seed's way {w['seed_useful_gflops']:.1f} useful GFLOP/s; this CPU peaks at "
        f"{w['cpu_peak_gflops']:.0f} GFLOP/s ({w['cpu_peak_how']}). Padded to the longest "
        f"sentence, the seed's way does {w['seed_padded_gflop_per_epoch']:.1f} GFLOP per epoch "
        f"({w['seed_padded_gflop_per_epoch'] / w['training_gflop_per_epoch']:.2f}x the real work) "
        f"at {w['seed_executed_gflops']:.1f} GFLOP/s.",
        "",
    ]


def _growth_table(growth: dict) -> list[str]:
    """charmt's epoch time and memory at each number of pairs."""
    lines = [
        "Growth (charmt, the faster of epochs 2 and 3):",
        "",
        "| num_samples | training pairs | characters | s/epoch | µs/character | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for n, g in growth.items():
        per_char = g["seconds_per_epoch"] / g["train_characters"] * 1e6
        lines.append(
            f"| {n} | {g['train_pairs']} | {g['train_characters']} | "
            f"{g['seconds_per_epoch']:.1f} | {per_char:.1f} | {g['peak_rss_mib']:.0f} |"
        )
    return lines


def markdown(r: dict) -> str:
    """A complete run's results file as Markdown."""
    lines = [
        *_header(r),
        *_training_rows(r),
        *_decoding_rows(r["decoding"]),
        *_work_paragraph(r["work"]),
        *_growth_table(r["growth"]),
        "",
        f"Benchmark ran {r['benchmark_seconds']} s.",
        "",
    ]
    return "\n".join(lines)
