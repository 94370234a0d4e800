"""The preprocess stage: the first ``data.num_samples`` pairs (null or all: every pair), split by
English sentence, the vocabularies of the train split, and the figures of the splits.

Loads no TensorFlow: a bad value or a broken ``fra.txt`` fails in well under a second.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from charmt.data.pairs import build_vocabularies, read_pairs
from charmt.data.prepared import split_file, write_pairs
from charmt.data.splits import split_pairs
from charmt.data.statistics import split_statistics
from charmt.data.vocabulary import VOCABULARIES_FILE
from charmt.io.atomic import atomic_dir, write_json
from charmt.params import read

# The params.yaml sections the stage reads.
SECTIONS = ("data", "preprocess")


def run(params_file: str | os.PathLike[str], raw: Path, out: Path, metrics: Path) -> dict:
    """Read the stage's params, prepare ``out`` from ``raw`` and write its figures to
    ``metrics``; the figures."""
    params = read(params_file, *SECTIONS)
    preprocess = params["preprocess"]
    stats = prepare(
        raw,
        out,
        num_samples=params["data"].num_samples,
        validation_fraction=preprocess.validation_fraction,
        test_fraction=preprocess.test_fraction,
        seed=preprocess.seed,
        held_out_pairs=preprocess.held_out_pairs,
    )
    write_json(metrics, stats)
    print(json.dumps(stats, indent=2))
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
    """Read, split, build vocabularies, write ``out_dir``; its statistics.

    The values are those of ``DataParams`` and ``PreprocessParams`` (checked there):
    ``num_samples`` ``None`` or ``"all"`` reads the whole file; ``held_out_pairs``: see
    ``split_pairs``. ``out_dir`` gets ``train.tsv``, ``validation.tsv``, ``test.tsv`` and
    ``vocabularies.json`` (built from the train split only), all at once or not at all.
    """
    pairs = read_pairs(raw, None if num_samples == "all" else num_samples)
    splits = split_pairs(pairs, validation_fraction, test_fraction, seed, held_out_pairs)
    vocabularies = build_vocabularies(splits["train"])
    with atomic_dir(out_dir) as tmp:
        for name, split in splits.items():
            write_pairs(split_file(tmp, name), split)
        vocabularies.save(tmp / VOCABULARIES_FILE)
    stats = split_statistics(len(pairs), splits)
    dropped = len(pairs) - sum(len(split) for split in splits.values())
    if dropped:  # only with held_out_pairs below the pairs read
        stats["pairs_dropped"] = dropped
    stats["source_vocabulary_size"] = vocabularies.source.size
    stats["target_vocabulary_size"] = vocabularies.target.size
    return stats
