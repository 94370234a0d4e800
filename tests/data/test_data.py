"""Tests for charmt.data: reading fra.txt (pairs) and splitting by English sentence (splits); the
values they take are checked by charmt.params, tested here on the keys they come from. The
prepared files and the preprocess stage's ``prepare``: tests/pipeline/test_preprocess.py."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from charmt.data.pairs import Pair, parse_line, read_pairs
from charmt.data.splits import SPLITS, split_pairs
from charmt.errors import CharmtError
from charmt.params import read
from charmt.pipeline.preprocess import SECTIONS

ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def read_stage_params(tmp_path: Path, data: dict | None = None, **preprocess) -> None:
    """Read the preprocess stage's params (charmt.params.read, as the stage does) with these
    values over valid ones: the one place the values prepare and split_pairs take are checked."""
    values = {
        "data": {"url": "fra.txt", "num_samples": 10, **(data or {})},
        "preprocess": {"validation_fraction": 0.1, "test_fraction": 0.1, "seed": 0, **preprocess},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    read(path, *SECTIONS)


def many_translations(n_sources: int = 40) -> list[Pair]:
    """Pairs in which most English sentences have several French translations."""
    pairs = []
    for i in range(n_sources):
        for j in range(1 + i % 3):
            pairs.append(Pair(f"Sentence {i}.", f"Phrase {i} v{j}."))
    return pairs


# --- parse_line / read_pairs ---------------------------------------------------------------------


def test_parse_line_two_and_three_columns() -> None:
    assert parse_line("Go.\tVa !\n", "f:1") == Pair("Go.", "Va !")
    assert parse_line(f"Go.\tVa !\t{ATTRIBUTION}\n", "f:1") == Pair("Go.", "Va !")


def test_parse_line_blank_is_none() -> None:
    assert parse_line("\n", "f:1") is None
    assert parse_line("   \r\n", "f:1") is None


@pytest.mark.parametrize(
    "form",
    [
        "Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n",
        f"Go.\tVa !\t{ATTRIBUTION}\nHi.\tSalut !\t{ATTRIBUTION}\nRun!\tCours !\t{ATTRIBUTION}\n",
        "Go.\tVa !\r\nHi.\tSalut !\r\nRun!\tCours !\r\n",
    ],
    ids=["two-columns", "three-columns", "crlf"],
)
def test_read_pairs_both_published_forms(tmp_path: Path, form: str) -> None:
    raw = write(tmp_path / "fra.txt", form)
    assert read_pairs(raw) == [Pair("Go.", "Va !"), Pair("Hi.", "Salut !"), Pair("Run!", "Cours !")]


def test_read_pairs_ignores_blank_lines(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", "\nGo.\tVa !\n\n   \nHi.\tSalut !\n\n")
    assert read_pairs(raw) == [Pair("Go.", "Va !"), Pair("Hi.", "Salut !")]


@pytest.mark.parametrize(
    "bad_line",
    [
        "Just English.",
        "One.\tUn.\tattribution\textra",
        "\tFrench only.",
        "English only.\t",
        "   \tRien.",
    ],
    ids=["one-field", "four-fields", "empty-english", "empty-french", "blank-english"],
)
def test_malformed_line_names_file_line_and_content(tmp_path: Path, bad_line: str) -> None:
    # Line 4 is the bad one; the blank line 2 still counts as a line of the file.
    raw = write(tmp_path / "my-fra.txt", f"Go.\tVa !\n\nHi.\tSalut !\n{bad_line}\nRun!\tCours !\n")
    with pytest.raises(CharmtError) as caught:
        read_pairs(raw)
    message = str(caught.value)
    assert "my-fra.txt" in message
    assert ":4" in message
    for field in bad_line.split("\t"):
        assert field.strip() in message


def test_nfc_normalisation(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", "Cafe\u0301?\tCafe\u0301 ?\n")
    (pair,) = read_pairs(raw)
    assert pair.source == "Caf\u00e9?"
    assert pair.target == "Caf\u00e9 ?"
    assert len(pair.target) == 6


def test_limit_keeps_first_pairs_in_file_order(tmp_path: Path) -> None:
    lines = [f"E{i}.\tF{i}." for i in range(10)]
    lines.insert(3, "")
    raw = write(tmp_path / "fra.txt", "\n".join(lines) + "\n")
    assert read_pairs(raw, limit=4) == [Pair(f"E{i}.", f"F{i}.") for i in range(4)]
    assert len(read_pairs(raw, limit=100)) == 10


def test_limit_stops_before_later_problems(tmp_path: Path) -> None:
    raw = write(tmp_path / "fra.txt", "Go.\tVa !\nHi.\tSalut !\nbroken line\n")
    assert read_pairs(raw, limit=2) == [Pair("Go.", "Va !"), Pair("Hi.", "Salut !")]


@pytest.mark.parametrize("limit", [0, -3])
def test_non_positive_limit_rejected(tmp_path: Path, limit: int) -> None:
    # The key and the value, as the message names them (a bare "0" is in pytest's temp path).
    with pytest.raises(CharmtError, match=rf"data\.num_samples = {limit}; must be an integer"):
        read_stage_params(tmp_path, {"num_samples": limit})


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "fra.txt"
    with pytest.raises(CharmtError, match="no such file") as caught:
        read_pairs(missing)
    assert str(missing) in str(caught.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    raw = tmp_path / "latin1.txt"
    raw.write_bytes("Coffee.\tCafé.\n".encode("latin-1"))
    with pytest.raises(CharmtError, match="UTF-8") as caught:
        read_pairs(raw)
    assert "latin1.txt" in str(caught.value)


def test_file_without_pairs(tmp_path: Path) -> None:
    raw = write(tmp_path / "empty.txt", "\n\n")
    with pytest.raises(CharmtError, match=r"empty\.txt"):
        read_pairs(raw)


# --- split_pairs ---------------------------------------------------------------------------------


def test_split_keeps_each_english_sentence_in_one_split() -> None:
    pairs = many_translations()
    splits = split_pairs(pairs, 0.2, 0.2, seed=7)
    assert set(splits) == set(SPLITS)
    sources = {name: {p.source for p in split} for name, split in splits.items()}
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    # Every pair lands in exactly one split.
    every = [p for split in splits.values() for p in split]
    assert Counter(every) == Counter(pairs)
    assert all(splits[name] for name in SPLITS)


def test_split_is_deterministic_for_a_seed() -> None:
    pairs = many_translations()
    assert split_pairs(pairs, 0.2, 0.1, seed=3) == split_pairs(list(pairs), 0.2, 0.1, seed=3)
    assert split_pairs(pairs, 0.2, 0.1, seed=3) != split_pairs(pairs, 0.2, 0.1, seed=4)


@pytest.mark.parametrize(("validation", "test"), [(0.1, 0.1), (0.25, 0.15), (0.0, 0.3), (0.3, 0)])
def test_split_fractions_count_distinct_english_sentences(validation: float, test: float) -> None:
    pairs = many_translations(40)
    splits = split_pairs(pairs, validation, test, seed=11)
    n_sources = len({p.source for p in pairs})
    for name, fraction in (("validation", validation), ("test", test)):
        distinct = len({p.source for p in splits[name]})
        assert abs(distinct - n_sources * fraction) <= 1
    distinct_train = len({p.source for p in splits["train"]})
    assert abs(distinct_train - n_sources * (1 - validation - test)) <= 2


@pytest.mark.parametrize(
    ("validation", "test"), [(-0.1, 0.1), (0.1, -0.1), (1.0, 0.0), (0.0, 1.0), (0.6, 0.5)]
)
def test_split_rejects_invalid_fractions(tmp_path: Path, validation: float, test: float) -> None:
    with pytest.raises(CharmtError, match="fraction"):
        read_stage_params(tmp_path, validation_fraction=validation, test_fraction=test)


def test_split_with_too_few_sentences_for_train() -> None:
    pairs = [Pair("One.", "Un."), Pair("Two.", "Deux.")]
    with pytest.raises(CharmtError, match="train"):
        split_pairs(pairs, 0.45, 0.45, seed=0)


def adjacent_translations(count: int, seed: int = 0) -> list[Pair]:
    """``count`` pairs in fra.txt's order (shorter English first), several translations each."""
    rng = random.Random(seed)
    pairs = []
    for number in range(count):
        source = f"S{number // 3:04d}."  # three translations per English sentence, adjacent
        pairs.append(Pair(source, f"F{number}{rng.choice('abc')}."))
    return pairs


def test_held_out_pairs_equal_to_the_data_is_todays_split() -> None:
    pairs = adjacent_translations(300)
    assert split_pairs(pairs, 0.1, 0.1, 7, held_out_pairs=300) == split_pairs(pairs, 0.1, 0.1, 7)
    assert split_pairs(pairs, 0.1, 0.1, 7, held_out_pairs=10_000) == split_pairs(pairs, 0.1, 0.1, 7)


def test_more_data_keeps_the_held_out_sentences_and_references() -> None:
    # 301 cuts the third group of translations of one English sentence, as a real file can.
    pairs = adjacent_translations(1200)
    small = split_pairs(pairs[:301], 0.1, 0.1, 7)
    large = split_pairs(pairs, 0.1, 0.1, 7, held_out_pairs=301)
    assert large["test"] == small["test"]
    assert large["validation"] == small["validation"]
    held_out = {p.source for name in ("validation", "test") for p in small[name]}
    assert not held_out & {p.source for p in large["train"]}
    assert large["train"][: len(small["train"])] == small["train"]
    # Every later pair trains, except later translations of held-out sentences.
    dropped = [p for p in pairs[301:] if p.source in held_out]
    assert len(large["train"]) == len(small["train"]) + 1200 - 301 - len(dropped)


@pytest.mark.parametrize("held_out_pairs", [0, -5, "first"])
def test_bad_held_out_pairs_is_a_clear_error(tmp_path: Path, held_out_pairs) -> None:
    with pytest.raises(CharmtError, match=r"preprocess\.held_out_pairs"):
        read_stage_params(tmp_path, held_out_pairs=held_out_pairs)
