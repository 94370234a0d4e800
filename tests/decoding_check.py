"""The check every architecture's batched decoder must pass: it gives, row for row, what the
Keras example's one-sentence-at-a-time decoder gives."""

from __future__ import annotations

from typing import Any


def assert_batched_equals_one_sentence_decoding(translator: Any, sources: list[str]) -> None:
    """The batched greedy decoder gives, row for row, what the Keras example's
    one-sentence-at-a-time decoder gives, for ``sources`` of different lengths in one batch (any
    architecture)."""
    import numpy as np

    from charmt.data.batches import pad
    from charmt.inference.decoding import GreedyDecoder, OneSentenceDecoder

    assert len({len(s) for s in sources}) >= 4
    max_length = translator.max_target_length + 11
    encoded = [np.array(translator.vocabularies.source.encode(s), dtype=np.int32) for s in sources]
    batched = GreedyDecoder(translator.model)(pad(encoded), max_length)
    decode_like_seed = OneSentenceDecoder(translator.model)
    target = translator.vocabularies.target
    for row, ids in zip(batched, encoded, strict=True):
        one_at_a_time = decode_like_seed(ids, max_length)
        assert target.decode(row) == target.decode(one_at_a_time)
        assert list(row[: len(one_at_a_time)]) == one_at_a_time
