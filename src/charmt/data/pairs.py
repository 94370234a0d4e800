"""Sentence pairs: one English sentence and one French translation, parsed from Tatoeba's
``fra.txt``.

``fra.txt`` has one pair a line, English TAB French, and in newer releases a third column with the
pair's attribution. The file is ordered shortest English sentence first, so its first N pairs are
the short sentences the model handles best.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from charmt.data.vocabulary import Vocabularies
from charmt.errors import CharmtError
from charmt.text import normalize


@dataclass(frozen=True)
class Pair:
    """One English sentence and one of its French translations."""

    source: str
    target: str


RAW_FIX = "fix or delete the line, or point data.url at an unmodified fra-eng.zip"


def parse_line(line: str, where: str, fix: str = RAW_FIX) -> Pair | None:
    """Parse one line of ``fra.txt``; ``None`` for a blank line.

    ``where`` (``file:line``) and ``fix`` (what to do) go into the error message of a malformed
    line.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    fields = text.split("\t")
    if len(fields) not in (2, 3) or not fields[0].strip() or not fields[1].strip():
        raise CharmtError(
            f"{where}: malformed line {text[:200]!r}: expected 'English<TAB>French' or "
            f"'English<TAB>French<TAB>attribution' with non-empty sentences; {fix}"
        )
    # NFC so that 'é' typed as one code point or as 'e' + accent is one character to the model.
    source, target = (normalize(field.strip()) for field in fields[:2])
    return Pair(source, target)


def parse_file(path: Path, fix: str = RAW_FIX) -> Iterator[Pair]:
    """The pairs of a ``fra.txt``-shaped file, line by line (lines end at ``\n`` only)."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                pair = parse_line(line, f"{path}:{number}", fix)
                if pair is not None:
                    yield pair
    except UnicodeDecodeError as error:
        what = "is it really fra.txt?" if fix == RAW_FIX else fix
        raise CharmtError(f"{path}: not UTF-8 text ({error}); {what}") from None


def read_pairs(path: str | os.PathLike[str], limit: int | None = None) -> list[Pair]:
    """The first ``limit`` pairs (all when ``None``) of a ``fra.txt`` in either published form.

    ``limit`` is ``data.num_samples``, checked by ``charmt.params.DataParams``.
    """
    path = Path(path)
    if not path.is_file():
        raise CharmtError(f"{path}: no such file; run the download stage first (dvc repro)")
    pairs = list(itertools.islice(parse_file(path), limit))
    if not pairs:
        raise CharmtError(f"{path}: no sentence pairs found; is it really fra.txt?")
    return pairs


def build_vocabularies(pairs: Iterable[Pair]) -> Vocabularies:
    """Both vocabularies of ``pairs`` (the training split: other characters become unknown)."""
    pairs = list(pairs)
    return Vocabularies.build((p.source for p in pairs), (p.target for p in pairs))
