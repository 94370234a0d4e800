"""The preprocess stage's work (charmt.pipeline.preprocess.prepare): fra.txt read, split, the
vocabularies built, the prepared directory written all at once, and its figures; the prepared
split files read back (charmt.data.prepared)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from test_data import adjacent_translations, read_stage_params, write

from charmt.data.pairs import Pair, read_pairs
from charmt.data.prepared import load_split
from charmt.data.splits import SPLITS, split_pairs
from charmt.data.vocabulary import VOCABULARIES_FILE, Vocabularies, Vocabulary
from charmt.errors import CharmtError
from charmt.pipeline.preprocess import prepare

SMALL = (
    "Go.\tVa !\n"
    "Go.\tMarche.\n"
    "Hi.\tSalut !\n"
    "\n"
    "Run!\tCours !\n"
    "Run!\tCourez !\n"
    "Wow!\tÇa alors !\n"
    "Help!\tÀ l'aide !\n"
    "I won.\tJ'ai gagné.\n"
    "Who ran?\tQui a couru ?\n"
    "Wait here.\tAttends ici.\n"
    "Cafe\u0301 time.\tL'heure du cafe\u0301.\n"
)
SMALL_PAIRS = [  # SMALL as read: blank line dropped, accents composed.
    Pair("Go.", "Va !"),
    Pair("Go.", "Marche."),
    Pair("Hi.", "Salut !"),
    Pair("Run!", "Cours !"),
    Pair("Run!", "Courez !"),
    Pair("Wow!", "Ça alors !"),
    Pair("Help!", "À l'aide !"),
    Pair("I won.", "J'ai gagné."),
    Pair("Who ran?", "Qui a couru ?"),
    Pair("Wait here.", "Attends ici."),
    Pair("Caf\u00e9 time.", "L'heure du caf\u00e9."),
]


def test_prepare_writes_outputs_and_statistics(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", SMALL)
    out = tmp_path / "prepared"
    stats = prepare(raw, out, num_samples=1000, validation_fraction=0.2, test_fraction=0.2, seed=1)

    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{name}.tsv" for name in SPLITS] + [VOCABULARIES_FILE]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    # Hand-computed figures over the whole file (11 pairs, composed 'é').
    assert stats["pairs_read"] == 11
    # English lengths 3+3+3+4+4+4+5+6+8+10+10, French 4+7+7+7+8+10+10+11+13+12+16.
    assert stats["source_length"] == {"max": 10, "mean": round(60 / 11, 2)}
    assert stats["target_length"] == {"max": 16, "mean": round(105 / 11, 2)}

    loaded = {name: load_split(out, name) for name in SPLITS}
    assert Counter(p for split in loaded.values() for p in split) == Counter(SMALL_PAIRS)
    for name in SPLITS:
        assert stats[name] == {
            "pairs": len(loaded[name]),
            "distinct_sources": len({p.source for p in loaded[name]}),
        }
    assert sum(stats[name]["distinct_sources"] for name in SPLITS) == 9
    assert stats["validation"]["distinct_sources"] == 2  # round(9 * 0.2)
    assert stats["test"]["distinct_sources"] == 2

    train_source_chars = {c for p in loaded["train"] for c in p.source}
    train_target_chars = {c for p in loaded["train"] for c in p.target}
    assert stats["source_vocabulary_size"] == 4 + len(train_source_chars)
    assert stats["target_vocabulary_size"] == 4 + len(train_target_chars)
    json.loads((out / VOCABULARIES_FILE).read_text(encoding="utf-8"))


def test_prepare_everything_in_train(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", "ab\tcd\nba\tdc\nab\tce\n")
    stats = prepare(raw, tmp_path / "out", 1000, 0.0, 0.0, seed=0)
    assert stats["pairs_read"] == 3
    assert stats["train"] == {"pairs": 3, "distinct_sources": 2}
    assert stats["validation"] == {"pairs": 0, "distinct_sources": 0}
    assert stats["test"] == {"pairs": 0, "distinct_sources": 0}
    assert stats["source_vocabulary_size"] == 4 + 2  # a, b
    assert stats["target_vocabulary_size"] == 4 + 3  # c, d, e
    assert stats["source_length"] == {"max": 2, "mean": 2.0}
    vocabularies = Vocabularies.load(tmp_path / "out" / VOCABULARIES_FILE)
    assert vocabularies.source.chars == ("a", "b")
    assert vocabularies.target.chars == ("c", "d", "e")


def test_prepare_num_samples_limits_pairs(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", SMALL)
    stats = prepare(raw, tmp_path / "out", 4, 0.0, 0.0, seed=0)
    assert stats["pairs_read"] == 4
    assert load_split(tmp_path / "out", "train") == SMALL_PAIRS[:4]


def test_load_split_round_trips_the_split(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", SMALL)
    prepare(raw, tmp_path / "out", 1000, 0.2, 0.2, seed=5)
    expected = split_pairs(read_pairs(raw), 0.2, 0.2, seed=5)
    for name in SPLITS:
        assert load_split(tmp_path / "out", name) == expected[name]
    # The decomposed accent was written composed.
    everything = "".join((tmp_path / "out" / f"{n}.tsv").read_text("utf-8") for n in SPLITS)
    assert "\u0301" not in everything
    assert "Café time." in everything


def test_vocabulary_comes_from_train_split_only(tmp_path: Path) -> None:
    # One English sentence (and its French) has characters found nowhere else.
    lines = [f"Sentence {i}.\tPhrase {i}." for i in range(10)] + ["Zqx.\tWkj."]
    random.Random(0).shuffle(lines)
    raw = write(tmp_path / "fra.txt", "\n".join(lines) + "\n")
    found = 0
    for seed in range(40):
        out = tmp_path / f"out{seed}"
        prepare(raw, out, 1000, 0.2, 0.2, seed=seed)
        vocabularies = Vocabularies.load(out / VOCABULARIES_FILE)
        train = load_split(out, "train")
        assert vocabularies.source == Vocabulary.build(p.source for p in train)
        assert vocabularies.target == Vocabulary.build(p.target for p in train)
        if Pair("Zqx.", "Wkj.") in load_split(out, "test"):
            found += 1
            assert vocabularies.source.unknown_chars("Zqx.") == {"Z", "q", "x"}
            assert vocabularies.target.unknown_chars("Wkj.") == {"W", "k", "j"}
    assert found > 0


def test_failing_prepare_leaves_no_out_dir(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", "Go.\tVa !\nbroken\n")
    out = tmp_path / "prepared"
    with pytest.raises(CharmtError, match=r"fra\.txt:2"):
        prepare(raw, out, 1000, 0.1, 0.1, seed=0)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fra.txt"]


def test_failing_prepare_keeps_previous_outputs(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", SMALL)
    out = tmp_path / "prepared"
    prepare(raw, out, 1000, 0.2, 0.2, seed=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write(raw, SMALL + "broken\n")
    with pytest.raises(CharmtError):
        prepare(raw, out, 1000, 0.2, 0.2, seed=0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_load_split_missing(tmp_path: Path) -> None:
    with pytest.raises(CharmtError, match=r"validation\.tsv"):
        load_split(tmp_path, "validation")


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0c"])
def test_load_split_round_trips_unusual_line_separators(tmp_path: Path, separator: str) -> None:
    raw = write(tmp_path / "fra.txt", f"Go.\tVa !\nOne{separator}two.\tUn deux.\n")
    prepare(raw, tmp_path / "out", 1000, 0.0, 0.0, seed=0)
    assert load_split(tmp_path / "out", "train") == read_pairs(raw)


def test_prepare_reads_the_whole_file_with_null_or_all(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", SMALL)
    for num_samples in (None, "all"):
        stats = prepare(raw, tmp_path / "out", num_samples, 0.0, 0.0, seed=0)
        assert stats["pairs_read"] == len(SMALL_PAIRS)
    with pytest.raises(CharmtError, match=r"data\.num_samples.*'many'"):
        read_stage_params(tmp_path, {"num_samples": "many"})


def test_prepare_counts_pairs_dropped_for_the_fixed_held_out_split(tmp_path: Path) -> None:
    # The sentences of the first 100 pairs come back later with other translations.
    first = adjacent_translations(100)
    pairs = first + [Pair(p.source, f"{p.target} bis") for p in first]
    pairs += adjacent_translations(400)[200:]
    raw = write(tmp_path / "fra.txt", "".join(f"{p.source}\t{p.target}\n" for p in pairs))
    stats = prepare(raw, tmp_path / "out", None, 0.2, 0.2, seed=1, held_out_pairs=100)
    splits = {name: stats[name]["pairs"] for name in SPLITS}
    assert stats["pairs_dropped"] == 400 - sum(splits.values()) > 0
    default = prepare(raw, tmp_path / "default", 100, 0.2, 0.2, seed=1, held_out_pairs=100)
    assert "pairs_dropped" not in default
    assert load_split(tmp_path / "out", "test") == load_split(tmp_path / "default", "test")
