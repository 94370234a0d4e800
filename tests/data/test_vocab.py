"""Tests for charmt.data.vocabulary: character ids, special tokens, the vocabularies file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charmt.data.vocabulary import (
    END,
    PAD,
    SPECIAL_TOKENS,
    START,
    UNKNOWN,
    Vocabularies,
    Vocabulary,
)
from charmt.errors import CharmtError

TEXTS = ["Bonjour !", "Ça va ?", "l'été, déjà"]


def test_special_ids_are_reserved() -> None:
    assert PAD == 0  # Keras masks id 0
    assert len({PAD, START, END, UNKNOWN}) == 4
    vocabulary = Vocabulary.build(TEXTS)
    ids = {i for text in TEXTS for i in vocabulary.encode(text)}
    assert min(ids) >= len(SPECIAL_TOKENS)
    assert not ids & {PAD, START, END, UNKNOWN}
    assert max(ids) < vocabulary.size


def test_size_counts_specials_and_distinct_characters() -> None:
    vocabulary = Vocabulary.build(["abca", "cab", ""])
    assert vocabulary.size == len(SPECIAL_TOKENS) + 3
    assert len(set(vocabulary.encode("abc"))) == 3


def test_build_does_not_depend_on_text_order() -> None:
    assert Vocabulary.build(["xyz", "abc"]) == Vocabulary.build(["cba", "zyx"])


@pytest.mark.parametrize("text", [*TEXTS, "", "à l'été", "   "])
def test_encode_decode_round_trip(text: str) -> None:
    vocabulary = Vocabulary.build(TEXTS)
    assert vocabulary.decode(vocabulary.encode(text)) == text


def test_unseen_characters_are_unknown() -> None:
    vocabulary = Vocabulary.build(["abc"])
    ids = vocabulary.encode("aXbé")
    assert ids[1] == UNKNOWN
    assert ids[3] == UNKNOWN
    assert ids[0] != UNKNOWN
    assert ids[2] != UNKNOWN
    assert vocabulary.unknown_chars("aXbéX") == {"X", "é"}
    assert vocabulary.unknown_chars("cab") == set()


def test_decode_stops_at_end_and_skips_specials() -> None:
    vocabulary = Vocabulary.build(["abc"])
    a, b, c = vocabulary.encode("abc")
    assert vocabulary.decode([START, a, PAD, b, UNKNOWN, c, END, a, b]) == "abc"
    assert vocabulary.decode([END, a]) == ""
    assert vocabulary.decode([START, PAD, PAD]) == ""


def test_vocabularies_save_load_round_trip(tmp_path: Path) -> None:
    vocabularies = Vocabularies(Vocabulary.build(["Hello\tthere", "x y"]), Vocabulary.build(TEXTS))
    path = tmp_path / "sub" / "vocabularies.json"
    vocabularies.save(path)
    loaded = Vocabularies.load(path)
    assert loaded == vocabularies
    for text in TEXTS:
        assert loaded.target.encode(text) == vocabularies.target.encode(text)
    assert loaded.source.encode("Hello there") == vocabularies.source.encode("Hello there")


def test_single_vocabulary_json_round_trip() -> None:
    vocabulary = Vocabulary.build(TEXTS)
    data = json.loads(json.dumps(vocabulary.to_json()))
    assert Vocabulary.from_json(data) == vocabulary


GOOD = {"special_tokens": list(SPECIAL_TOKENS), "chars": ["a", "b"]}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        json.dumps({"source": GOOD}),
        json.dumps({"target": GOOD}),
        json.dumps([GOOD, GOOD]),
        json.dumps({"source": GOOD, "target": {**GOOD, "special_tokens": ["<pad>", "<s>"]}}),
        json.dumps({"source": {"chars": ["a"]}, "target": GOOD}),
        json.dumps({"source": {**GOOD, "chars": "ab"}, "target": GOOD}),
    ],
    ids=[
        "not-json",
        "empty",
        "no-target",
        "no-source",
        "list",
        "wrong-specials",
        "no-specials",
        "chars-not-list",
    ],
)
def test_load_corrupt_file_names_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "my-vocabularies.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CharmtError) as caught:
        Vocabularies.load(path)
    assert str(path) in str(caught.value)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "vocabularies.json"
    with pytest.raises(CharmtError, match="no such file") as caught:
        Vocabularies.load(path)
    assert str(path) in str(caught.value)


def test_load_source_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "vocabularies.json"
    path.write_text(json.dumps({"source": ["a"], "target": GOOD}), encoding="utf-8")
    with pytest.raises(CharmtError, match=r"vocabularies\.json"):
        Vocabularies.load(path)


def test_load_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "vocabularies.json"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(CharmtError, match=r"vocabularies\.json"):
        Vocabularies.load(path)
