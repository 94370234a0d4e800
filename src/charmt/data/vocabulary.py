"""Character vocabularies: characters to integer ids and back.

Ids 0-3 are reserved: padding (0, so that Keras masks it), start, end, and unknown. A vocabulary
is built from the training split only; any other character maps to the unknown id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from charmt.errors import CharmtError
from charmt.io.atomic import write_json

# The file both the prepared data and a model directory keep their vocabularies in.
VOCABULARIES_FILE = "vocabularies.json"
PAD, START, END, UNKNOWN = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<start>", "<end>", "<unk>")


@dataclass(frozen=True)
class Vocabulary:
    """An ordered set of characters; character ``chars[i]`` has id ``i + len(SPECIAL_TOKENS)``."""

    chars: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = {char: i for i, char in enumerate(self.chars, start=len(SPECIAL_TOKENS))}
        object.__setattr__(self, "_ids", ids)

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        """The sorted set of characters in ``texts``."""
        return cls(tuple(sorted({char for text in texts for char in text})))

    @property
    def size(self) -> int:
        """Number of ids, special tokens included."""
        return len(SPECIAL_TOKENS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; unseen characters become ``UNKNOWN``."""
        return [self._ids.get(char, UNKNOWN) for char in text]

    def unknown_chars(self, text: str) -> set[str]:
        """The characters of ``text`` that this vocabulary does not have."""
        return {char for char in text if char not in self._ids}

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ``ids``, stopping at ``END`` and skipping the other special tokens."""
        chars = []
        offset = len(SPECIAL_TOKENS)
        for i in ids:
            if i == END:
                break
            if i >= offset:
                chars.append(self.chars[i - offset])
        return "".join(chars)

    def to_json(self) -> dict[str, object]:
        return {"special_tokens": list(SPECIAL_TOKENS), "chars": list(self.chars)}

    @classmethod
    def from_json(cls, data: dict[str, object], where: str = "vocabulary") -> Vocabulary:
        if data.get("special_tokens") != list(SPECIAL_TOKENS) or not isinstance(
            data.get("chars"), list
        ):
            raise CharmtError(
                f"{where}: not a charmt vocabulary (expected special_tokens {list(SPECIAL_TOKENS)} "
                "and a chars list); re-run the preprocess stage"
            )
        return cls(tuple(data["chars"]))


@dataclass(frozen=True)
class Vocabularies:
    """The source (English) and target (French) vocabularies of one model."""

    source: Vocabulary
    target: Vocabulary

    @classmethod
    def build(cls, sources: Iterable[str], targets: Iterable[str]) -> Vocabularies:
        """Both vocabularies: the characters of ``sources`` (English) and ``targets`` (French)."""
        return cls(Vocabulary.build(sources), Vocabulary.build(targets))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, {"source": self.source.to_json(), "target": self.target.to_json()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabularies:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                Vocabulary.from_json(data["source"], f"{path} (source)"),
                Vocabulary.from_json(data["target"], f"{path} (target)"),
            )
        except FileNotFoundError:
            raise CharmtError(f"{path}: no such file; run the preprocess stage first") from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CharmtError(f"{path}: not a charmt vocabularies file ({error})") from None
