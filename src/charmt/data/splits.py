"""Splitting sentence pairs into train, validation and test, grouped by English sentence."""

from __future__ import annotations

import random
from collections.abc import Sequence

from charmt.data.pairs import Pair
from charmt.errors import CharmtError

SPLITS = ("train", "validation", "test")


def split_pairs(
    pairs: Sequence[Pair],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    held_out_pairs: int | None = None,
) -> dict[str, list[Pair]]:
    """Split pairs into train, validation and test, grouped by English sentence.

    Tatoeba often gives several French translations of one English sentence; all of them land in
    the same split, so validation and test sentences are never seen in training. The fractions
    apply to distinct English sentences. The same pairs, fractions and seed give the same split.

    With ``held_out_pairs`` N below the number of pairs, validation and test sentences are drawn
    from the first N pairs only, exactly as if only those had been read, and every later pair
    trains, except later translations of a held-out sentence, which are dropped (kept out of
    training, and out of the held-out splits so that their references stay the same). So a run
    on more data scores on the same test sentences, with the same references, as a run on N.

    The fractions and ``held_out_pairs`` are checked by ``charmt.params.PreprocessParams``.
    """
    pool = len(pairs) if held_out_pairs is None else min(held_out_pairs, len(pairs))
    # first-seen order: deterministic
    sources = list(dict.fromkeys(pair.source for pair in pairs[:pool]))
    random.Random(seed).shuffle(sources)
    n_validation = round(len(sources) * validation_fraction)
    n_test = round(len(sources) * test_fraction)
    split_of = {source: "validation" for source in sources[:n_validation]}
    split_of.update({source: "test" for source in sources[n_validation : n_validation + n_test]})
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs[:pool]:
        splits[split_of.get(pair.source, "train")].append(pair)
    splits["train"] += [pair for pair in pairs[pool:] if pair.source not in split_of]
    if not splits["train"]:
        raise CharmtError(f"the train split is empty: {len(sources)} English sentences are too few")
    return splits
