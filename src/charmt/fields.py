"""The field types of params.yaml's sections, each carrying its allowed values in words.

A section's field is a pydantic type (``Annotated``) plus an ``Allowed`` that says, in the words a
reader of params.yaml uses, what the field accepts: ``charmt.params`` puts those words in its
one-line error (``train.batch_size = 0; must be an integer >= 1``) instead of pydantic's.

This module must stay cheap to import (the standard library and pydantic only): every stage
checks its params with it before it imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints
from pydantic.fields import FieldInfo

__all__ = [
    "Allowed",
    "AtLeastOne",
    "AtLeastZero",
    "Flag",
    "Fraction",
    "NonNegative",
    "Positive",
    "Sha256",
    "Text",
    "choice",
    "integer",
    "number",
    "optional",
    "words_of",
]


@dataclass(frozen=True)
class Allowed:
    """A type's allowed values in words, for the one-line error; rides in its ``Annotated``."""

    words: str


def words_of(field: FieldInfo) -> str:
    """The allowed values of a section's field, in words."""
    return next(m.words for m in field.metadata if isinstance(m, Allowed))


def _words(kind: Any) -> str:
    return next(m.words for m in getattr(kind, "__metadata__", ()) if isinstance(m, Allowed))


def integer(minimum: int) -> Any:
    """An integer >= ``minimum`` (strict: not a bool, a float or a string)."""
    return Annotated[int, Field(ge=minimum), Allowed(f"an integer >= {minimum}")]


def number(low: float, high: float | None = None, *, open_low: bool = False) -> Any:
    """A finite number in [low, high), or (low, high) with ``open_low``; high None: no bound.

    An integer stays an integer (``decay: 0`` is logged as 0, not 0.0).
    """
    bounds = Field(gt=low) if open_low else Field(ge=low)
    left = "(" if open_low else "["
    right = f"{high})" if high is not None else "inf)"
    finite = Annotated[float, Field(allow_inf_nan=False)]
    return Annotated[
        int | finite, bounds, Field(lt=high), Allowed(f"a finite number in {left}{low}, {right}")
    ]


def choice(options: Iterable[str]) -> Any:
    """One of ``options``."""
    options = tuple(options)
    return Annotated[Literal[options], Allowed(f"one of {', '.join(options)}")]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


def optional(kind: Any) -> Any:
    """``kind``'s values or null."""
    return Annotated[kind | None, Allowed(f"null or {_words(kind)}")]


AtLeastOne = integer(1)
AtLeastZero = integer(0)
Fraction = number(0, 1)
NonNegative = number(0)
Positive = number(0, open_low=True)
Flag = Annotated[bool, Allowed("true or false")]
Text = Annotated[str, AfterValidator(_not_blank), Allowed("a non-empty string")]
# Rust's regex (pydantic's): `$` is the end of the text, so a trailing newline does not match.
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"), Allowed("64 hex digits")]
