"""The tiny task the tests train on: the target is the source written backwards, over a small
alphabet. It is learnable in seconds, and held-out sources are words the model never saw, so
translating them right means the model learned the task, not the examples."""

from __future__ import annotations

import random

from charmt.data.pairs import Pair


def reversal_pairs(count: int, seed: int, alphabet: str = "abcdefgh") -> list[Pair]:
    """``count`` distinct words of 2-7 letters, each paired with itself reversed."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))))
    return [Pair(word, word[::-1]) for word in sorted(words)]
