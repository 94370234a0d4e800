"""The prepared split files the preprocess stage writes: ``<split>.tsv``, ``English<TAB>French``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from charmt.data.pairs import Pair, parse_file
from charmt.errors import CharmtError
from charmt.io.atomic import atomic_path

# The prepared splits are written by the preprocess stage; a broken line means someone edited one.
# `dvc repro` re-runs a stage whose outputs changed; `dvc checkout` restores them from the cache.
PREPARED_FIX = (
    "the file was edited or damaged; restore it with `dvc checkout {directory}` or re-run the "
    "preprocess stage (dvc repro preprocess)"
)


def split_file(prepared_dir: str | os.PathLike[str], name: str) -> Path:
    """Where split ``name`` (train, validation, test) of a prepared directory is."""
    return Path(prepared_dir) / f"{name}.tsv"


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[Pair]) -> None:
    """Write pairs as ``English<TAB>French`` lines, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as out:
        for pair in pairs:
            out.write(f"{pair.source}\t{pair.target}\n")


def load_split(prepared_dir: str | os.PathLike[str], name: str) -> list[Pair]:
    """One split written by the preprocess stage (``charmt.pipeline.preprocess``)."""
    path = split_file(prepared_dir, name)
    if not path.is_file():
        raise CharmtError(f"{path}: no such file; run the preprocess stage first (dvc repro)")
    return list(parse_file(path, PREPARED_FIX.format(directory=prepared_dir)))
