"""Sentence pairs: reading Tatoeba's ``fra.txt``, splitting it, and the prepared split files.

``fra.txt`` has one pair a line, English TAB French, and in newer releases a third column with the
pair's attribution. The file is ordered shortest English sentence first, so its first N pairs are
the short sentences the model handles best.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from charmt.data.vocabulary import VOCABULARIES_FILE, Vocabularies
from charmt.errors import CharmtError
from charmt.io.atomic import atomic_dir, atomic_path
from charmt.text import normalize

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Pair:
    """One English sentence and one of its French translations."""

    source: str
    target: str


RAW_FIX = "fix or delete the line, or point data.url at an unmodified fra-eng.zip"
# The prepared splits are written by the preprocess stage; a broken line means someone edited one.
# `dvc repro` re-runs a stage whose outputs changed; `dvc checkout` restores them from the cache.
PREPARED_FIX = (
    "the file was edited or damaged; restore it with `dvc checkout {directory}` or re-run the "
    "preprocess stage (dvc repro preprocess)"
)


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


def _parse_file(path: Path, fix: str = RAW_FIX) -> Iterator[Pair]:
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
    """The first ``limit`` pairs (all when ``None``) of a ``fra.txt`` in either published form."""
    path = Path(path)
    if limit is not None and limit < 1:
        raise CharmtError(f"data.num_samples must be a positive number of pairs, got {limit}")
    if not path.is_file():
        raise CharmtError(f"{path}: no such file; run the download stage first (dvc repro)")
    pairs = list(itertools.islice(_parse_file(path), limit))
    if not pairs:
        raise CharmtError(f"{path}: no sentence pairs found; is it really fra.txt?")
    return pairs


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
    """
    for name, fraction in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0 <= fraction < 1:
            raise CharmtError(f"preprocess.{name} must be in [0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise CharmtError(
            "preprocess.validation_fraction + preprocess.test_fraction must be below 1, got "
            f"{validation_fraction} + {test_fraction}"
        )
    if held_out_pairs is not None and not (isinstance(held_out_pairs, int) and held_out_pairs >= 1):
        raise CharmtError(
            f"preprocess.held_out_pairs must be a positive number of pairs or null, "
            f"got {held_out_pairs!r}"
        )
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


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[Pair]) -> None:
    """Write pairs as ``English<TAB>French`` lines, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as out:
        for pair in pairs:
            out.write(f"{pair.source}\t{pair.target}\n")


def build_vocabularies(pairs: Iterable[Pair]) -> Vocabularies:
    """Both vocabularies of ``pairs`` (the training split: other characters become unknown)."""
    pairs = list(pairs)
    return Vocabularies.build((p.source for p in pairs), (p.target for p in pairs))


def group_references(pairs: Iterable[Pair]) -> dict[str, list[str]]:
    """Each distinct English sentence with all its French references, in first-seen order."""
    references: dict[str, list[str]] = {}
    for pair in pairs:
        references.setdefault(pair.source, []).append(pair.target)
    return references


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


def prepare(
    raw: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    num_samples: int | str | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    held_out_pairs: int | None = None,
) -> dict[str, object]:
    """The preprocess stage: read, split, build vocabularies, write ``out_dir``; its statistics.

    ``num_samples`` ``None`` or ``"all"`` reads the whole file. ``held_out_pairs``: see
    ``split_pairs``. ``out_dir`` gets ``train.tsv``, ``validation.tsv``, ``test.tsv`` and
    ``vocabularies.json`` (built from the train split only), all at once or not at all.
    """
    if num_samples == "all":
        num_samples = None
    if num_samples is not None and (
        isinstance(num_samples, bool) or not isinstance(num_samples, int)
    ):
        raise CharmtError(
            f"data.num_samples must be a positive number of pairs, or null (or all) for the "
            f"whole file, got {num_samples!r}"
        )
    pairs = read_pairs(raw, num_samples)
    splits = split_pairs(pairs, validation_fraction, test_fraction, seed, held_out_pairs)
    vocabularies = build_vocabularies(splits["train"])
    with atomic_dir(out_dir) as tmp:
        for name, split in splits.items():
            write_pairs(tmp / f"{name}.tsv", split)
        vocabularies.save(tmp / VOCABULARIES_FILE)
    stats = split_statistics(len(pairs), splits)
    dropped = len(pairs) - sum(len(split) for split in splits.values())
    if dropped:  # only with held_out_pairs below the pairs read
        stats["pairs_dropped"] = dropped
    stats["source_vocabulary_size"] = vocabularies.source.size
    stats["target_vocabulary_size"] = vocabularies.target.size
    return stats


def load_split(prepared_dir: str | os.PathLike[str], name: str) -> list[Pair]:
    """One split written by ``prepare``."""
    path = Path(prepared_dir) / f"{name}.tsv"
    if not path.is_file():
        raise CharmtError(f"{path}: no such file; run the preprocess stage first (dvc repro)")
    return list(_parse_file(path, PREPARED_FIX.format(directory=prepared_dir)))
