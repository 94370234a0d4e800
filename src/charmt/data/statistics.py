"""The figures of a split (``metrics/data.json``): pairs, distinct sources, sentence lengths."""

from __future__ import annotations

from charmt.data.pairs import Pair


def split_statistics(pairs_read: int, splits: dict[str, list[Pair]]) -> dict[str, object]:
    """The figures of ``metrics/data.json``: pairs and distinct sources per split, lengths."""
    stats: dict[str, object] = {"pairs_read": pairs_read}
    for name, pairs in splits.items():
        stats[name] = {"pairs": len(pairs), "distinct_sources": len({p.source for p in pairs})}
    every = [pair for pairs in splits.values() for pair in pairs]
    for side in ("source", "target"):
        lengths = [len(getattr(pair, side)) for pair in every]
        stats[f"{side}_length"] = {
            "max": max(lengths),
            "mean": round(sum(lengths) / len(lengths), 2),
        }
    return stats
