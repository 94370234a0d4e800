"""bench/quality.py's report: its results (rows and their curves) as Markdown."""

from __future__ import annotations

from pathlib import Path


def _header(r: dict) -> list[str]:
    """The title, the run's label and machine, and how every row was set up."""
    s = r["setup"]
    return [
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
    ]


def _stopped_by(row: dict) -> str:
    if row["stopped_by"] == "budget" and row.get("budget_minutes"):
        return f"budget ({row['budget_minutes']:g} min)"
    return row["stopped_by"]


def _table(configurations: dict) -> list[str]:
    """A line per configuration and decoding (greedy, beam)."""
    lines = [
        "| configuration | train pairs | decoding | exact_match | char_accuracy | BLEU | chrF | "
        "train min | epochs (best) | stopped by | peak RSS MiB | sentences/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in configurations.items():
        for width, e in row["evaluations"].items():
            decoding = "greedy" if width == "1" else f"beam {width}"
            lines.append(
                f"| {name} | {row['train_pairs']} | {decoding} | {e['exact_match']:.3f} | "
                f"{e['char_accuracy']:.3f} | {e['bleu']:.1f} | {e['chrf']:.1f} | "
                f"{row['train_seconds'] / 60:.1f} | {row['epochs_run']} ({row['best_epoch']}) | "
                f"{_stopped_by(row)} | {row['peak_rss_mib']:.0f} | "
                f"{e['sentences_per_second']:.0f} |"
            )
    return lines


def _curves(configurations: dict, curve_every: int) -> list[str]:
    """The quality against training time of the rows that decoded every few epochs."""
    if not any(row["curve"] for row in configurations.values()):
        return []
    lines = [
        "",
        "## Quality against training time",
        "",
        "Greedy decoding of the same test sentences every few epochs (LSTM rows: every "
        f"{curve_every}; Transformer rows: every epoch), with the weights of that epoch "
        "(not the best so far).",
        "",
        "| configuration | epoch | train min | val_loss | exact_match | char_accuracy | BLEU "
        "| chrF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in configurations.items():
        for p in row["curve"]:
            lines.append(
                f"| {name} | {p['epoch']} | {p['train_seconds'] / 60:.1f} | "
                f"{p['val_loss']:.3f} | {p['exact_match']:.3f} | {p['char_accuracy']:.3f} | "
                f"{p['bleu']:.1f} | {p['chrf']:.1f} |"
            )
    return lines


def markdown(r: dict) -> str:
    """The results file as Markdown: the table, then the curves."""
    configurations = r["configurations"]
    lines = [
        *_header(r),
        *_table(configurations),
        *_curves(configurations, r["setup"]["curve_every"]),
        "",
        f"Benchmark ran {r['benchmark_seconds'] / 60:.0f} min.",
        "",
    ]
    return "\n".join(lines)
