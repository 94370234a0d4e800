"""params.yaml: the one place that declares every knob, its type and its allowed values.

Each stage loads the sections it reads with ``load_sections`` before it does any work (and before
it imports TensorFlow), so a mistyped value fails in well under a second with one line that names
the key, the value and what is allowed, instead of minutes later or with a traceback.

This module must stay cheap to import: the standard library and PyYAML only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from charmt.errors import CharmtError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
ARCHITECTURES = ("seed", "attention")
# Luong's dot score (keras.layers.Attention) or Bahdanau's additive one (AdditiveAttention).
ATTENTION_SCORES = ("dot", "additive")

_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One key of a section: a test of its value, the allowed values in words, and a default.

    A key without a default must be present.
    """

    accepts: Callable[[Any], bool]
    allowed: str
    default: Any = _REQUIRED


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python; `epochs: true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(minimum: int, default: Any = _REQUIRED) -> Key:
    """An integer >= ``minimum``."""
    return Key(lambda v: _is_int(v) and v >= minimum, f"an integer >= {minimum}", default)


def number(
    low: float, high: float | None = None, *, open_low: bool = False, default: Any = _REQUIRED
) -> Key:
    """A finite number in [low, high), or (low, high) with ``open_low``; high None: no bound."""

    def accepts(value: Any) -> bool:
        if not _is_number(value):
            return False
        above = value > low if open_low else value >= low
        return above and (high is None or value < high)

    left = "(" if open_low else "["
    right = f"{high})" if high is not None else "inf)"
    return Key(accepts, f"a finite number in {left}{low}, {right}", default)


def boolean(default: Any = _REQUIRED) -> Key:
    """true or false."""
    return Key(lambda v: isinstance(v, bool), "true or false", default)


def choice(options: Iterable[str], default: Any = _REQUIRED) -> Key:
    """One of ``options``."""
    options = tuple(options)
    return Key(lambda v: v in options, f"one of {', '.join(options)}", default)


def text(default: Any = _REQUIRED) -> Key:
    """A non-empty string."""
    return Key(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string", default)


def optional(key: Key) -> Key:
    """``key``'s values or null; null is the default."""
    return Key(lambda v: v is None or key.accepts(v), f"null or {key.allowed}", None)


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "url": text(),
        "sha256": optional(
            Key(lambda v: isinstance(v, str) and bool(_SHA256.fullmatch(v)), "64 hex digits")
        ),
        # null or "all": the whole file.
        "num_samples": Key(
            lambda v: v is None or v == "all" or (_is_int(v) and v >= 1),
            "an integer >= 1, or null (or all) for the whole file",
        ),
    },
    "preprocess": {
        "validation_fraction": number(0, 1),
        "test_fraction": number(0, 1),
        "seed": integer(0),
        # Validation and test sentences come from the first N pairs, so larger profiles score on
        # the same test sentences; null: from all pairs read.
        "held_out_pairs": optional(integer(1)),
    },
    # The defaults are the seed's model; they are also ModelParams' defaults.
    "model": {
        "architecture": choice(ARCHITECTURES, "seed"),
        "attention": choice(ATTENTION_SCORES, "dot"),
        "bidirectional": boolean(False),
    },
    # The defaults reproduce the seed; they are also TrainParams' defaults.
    "train": {
        "latent_dim": integer(1, 256),
        "batch_size": integer(1, 64),
        "epochs": integer(1, 100),
        "learning_rate": number(0, open_low=True, default=0.001),
        "decay": number(0, default=0.0),
        "rho": number(0, 1, default=0.9),
        "momentum": number(0, 1, default=0.0),
        "epsilon": number(0, open_low=True, default=1e-07),
        "centered": boolean(False),
        "training_precision": choice(PRECISIONS, "float32"),
        "keep_best": boolean(True),
        "early_stopping_patience": optional(integer(1)),
        "sort_chunk_batches": integer(1, 32),
        "seed": integer(0, 42),
    },
    "evaluate": {
        "batch_size": integer(1),
        "length_margin": integer(0),
        # 1: greedy decoding, as the seed; above 1: beam search of that width.
        "beam_width": integer(1, 1),
        # Beam search picks the highest log-probability / length ** length_alpha.
        "length_alpha": number(0, default=1.0),
    },
    "tracking": {
        "experiment_name": text(),
    },
    # The MLflow Model Registry name the trained translator is registered under; null: none.
    "registry": {
        "model_name": optional(text()),
    },
}


def _check_section(name: str, values: Any, path: str) -> dict[str, Any]:
    """``values`` checked against ``SCHEMA[name]``, with defaults filled in."""
    if not isinstance(values, dict):
        raise CharmtError(f"{path}: section {name!r} is missing or not a mapping")
    keys = SCHEMA[name]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        first = unknown[0]
        raise CharmtError(
            f"{path}: unknown {name} params {unknown}: {name}.{first} = {values[first]!r} is not "
            f"a known key; allowed: {', '.join(keys)}"
        )
    checked: dict[str, Any] = {}
    for key, spec in keys.items():
        if key not in values:
            if spec.default is _REQUIRED:
                raise CharmtError(f"{path}: {name}.{key} is missing; set it to {spec.allowed}")
            checked[key] = spec.default
            continue
        value = values[key]
        if not spec.accepts(value):
            raise CharmtError(f"{path}: {name}.{key} = {value!r}; must be {spec.allowed}")
        checked[key] = value
    if name == "model" and checked["bidirectional"] and checked["architecture"] != "attention":
        raise CharmtError(
            f"{path}: model.bidirectional = True needs model.architecture: attention, not "
            f"{checked['architecture']!r} (the seed's model is unidirectional)"
        )
    if name == "preprocess":
        held_out = checked["validation_fraction"] + checked["test_fraction"]
        if held_out >= 1:
            raise CharmtError(
                f"{path}: preprocess.validation_fraction + preprocess.test_fraction = "
                f"{checked['validation_fraction']!r} + {checked['test_fraction']!r} = "
                f"{held_out:g}; must be below 1 so that something is left to train on"
            )
    return checked


def check_section(name: str, values: Any, path: str = "params.yaml") -> dict[str, Any]:
    """One section checked against the schema; defaults filled in.

    Raises ``CharmtError`` naming the key, its value and what is allowed.
    """
    if name not in SCHEMA:
        raise ValueError(f"no params section {name!r} in the schema")
    return _check_section(name, values, path)


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """The whole params file as a dict, unchecked (``load_sections`` checks)."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharmtError(f"{path}: no such file; run from the project root") from None
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())
        raise CharmtError(f"{path}: not valid YAML: {message}") from None
    if not isinstance(params, dict):
        raise CharmtError(f"{path}: expected a mapping of sections (data, train, ...)")
    return params


_OPTIONAL = ("model", "registry")


def load_sections(path: str | os.PathLike[str], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The sections ``names`` of the params file at ``path``, each checked, defaults filled in.

    Every section that is present is checked too (unknown keys, wrong values): a mistake anywhere
    in params.yaml is reported by whichever stage runs first. The ``model`` and ``registry``
    sections are optional (all defaults).
    """
    params = load_params(path)
    names = list(names)
    for name in SCHEMA:
        if name in params and name not in names:
            _check_section(name, params[name], str(path))
    return {
        name: _check_section(name, params.get(name, {} if name in _OPTIONAL else None), str(path))
        for name in names
    }


def section(params: dict[str, Any], name: str, path: str = "params.yaml") -> dict[str, Any]:
    """One section of params, checked against the schema; defaults filled in."""
    return check_section(name, params.get(name), path)


@dataclass(frozen=True)
class TrainParams:
    """The ``train`` section of params.yaml; the defaults (``SCHEMA["train"]``) reproduce the seed.

    Constructing it directly does not check values (tests build odd ones on purpose);
    ``from_dict`` does.
    """

    latent_dim: int = 256
    batch_size: int = 64
    epochs: int = 100
    learning_rate: float = 0.001
    decay: float = 0.0
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-07
    centered: bool = False
    training_precision: str = "float32"
    keep_best: bool = True
    early_stopping_patience: int | None = None
    sort_chunk_batches: int = 32
    seed: int = 42

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str = "params.yaml") -> TrainParams:
        """Params from a params.yaml section, checked; missing keys take their defaults."""
        return cls(**check_section("train", values, path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelParams:
    """The ``model`` section of params.yaml; the defaults (``SCHEMA["model"]``) are the seed's."""

    architecture: str = "seed"
    # attention only: how a decoder output is scored against each encoder output.
    attention: str = "dot"
    # attention only: a bidirectional encoder of latent_dim / 2 units each way, so its
    # concatenated states still fit the decoder's latent_dim.
    bidirectional: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, path: str = "params.yaml") -> ModelParams:
        """Params from a params.yaml section (``None``: the defaults), checked."""
        if values is not None and not isinstance(values, dict):
            raise CharmtError(
                f"{path}: model must be a mapping (architecture: ...), got {values!r}"
            )
        return cls(**check_section("model", values or {}, path))
