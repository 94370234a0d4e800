"""The references of a split: each distinct English sentence with all its French translations,
against which a translation of it is scored."""

from __future__ import annotations

from collections.abc import Iterable

from charmt.data.pairs import Pair


def group_references(pairs: Iterable[Pair]) -> dict[str, list[str]]:
    """Each distinct English sentence with all its French references, in first-seen order."""
    references: dict[str, list[str]] = {}
    for pair in pairs:
        references.setdefault(pair.source, []).append(pair.target)
    return references
