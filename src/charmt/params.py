"""params.yaml: the one place that declares every knob, its type and its allowed values.

Each section is one pydantic model: its fields' types, bounds and defaults are the schema, and
the same class is what the code reads (``TrainParams``, ``ModelParams``); the field types, which
say in words what they allow, come from ``charmt.fields``. Types are strict:
``epochs: true`` is not 1 and ``"3"`` is not 3.

Each stage loads the sections it reads with ``read`` before it does any work (and before
it imports TensorFlow), so a mistyped value fails in well under a second with one line that names
the key, the value and what is allowed, instead of minutes later or with a traceback.

This module must stay cheap to import: the standard library, PyYAML and pydantic only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from charmt.errors import CharmtError
from charmt.fields import (
    Allowed,
    AtLeastOne,
    AtLeastZero,
    Flag,
    Fraction,
    NonNegative,
    Positive,
    Sha256,
    Text,
    choice,
    optional,
    words_of,
)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# model.architecture's values (charmt.models.architectures holds the code of each), each with the
# model keys it reads besides architecture and dropout.
ARCHITECTURES: dict[str, frozenset[str]] = {
    "keras_example": frozenset(),
    "attention": frozenset({"attention", "bidirectional"}),
    "transformer": frozenset({"layers", "width", "heads", "feed_forward", "max_length"}),
}
# Names older charmt used -> today's, for the same model: refused in params.yaml (with the new
# name), translated when an older models/ directory's model.json is read.
RENAMED_ARCHITECTURES = {"seed": "keras_example"}
# Luong's dot score (keras.layers.Attention) or Bahdanau's additive one (AdditiveAttention).
ATTENTION_SCORES = ("dot", "additive")
OPTIMIZERS = ("rmsprop", "adam", "adamw")
# constant: train.learning_rate throughout (with train.decay, Keras 2's inverse-time decay).
# inverse_sqrt: linear warm-up to train.learning_rate over train.warmup_steps, then
# learning_rate * sqrt(warmup_steps / step) (Vaswani et al. 2017).
SCHEDULES = ("constant", "inverse_sqrt")
# What picks the epoch that is kept (and stops early): the lowest val_loss, or the highest
# greedy-decoding score on the validation sentences.
SELECT_BY = ("val_loss", "chrf", "char_accuracy")


def is_beam_width(width: object, maximum: int | None = None) -> bool:
    """Whether ``width`` is a beam width: an integer (not a bool) from 1 (greedy decoding) up to
    ``maximum``, if one is given. The one rule for the translator, its decoders and the served
    model, which also caps it."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        return False
    return maximum is None or width <= maximum


class Section(BaseModel):
    """One section of params.yaml: strict types, no unknown keys, immutable.

    Constructing one directly checks its values too; ``model_construct`` does not (tests build
    odd ones on purpose).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def from_dict(cls, values: Any, path: str = "params.yaml") -> Self:
        """The section from its params.yaml values, checked, defaults filled in: how a params
        file (``read``), a model's recorded architecture or a benchmark's keys become params.

        Raises ``CharmtError`` naming the key, its value and what is allowed.
        """
        name = next(name for name, section in SCHEMA.items() if section is cls)
        return _validated(cls, name, values, path)


class DataParams(Section):
    url: Text
    sha256: optional(Sha256) = None
    # null or "all": the whole file.
    num_samples: Annotated[
        Literal["all"] | AtLeastOne | None,
        Allowed("an integer >= 1, or null (or all) for the whole file"),
    ]


class PreprocessParams(Section):
    validation_fraction: Fraction
    test_fraction: Fraction
    seed: AtLeastZero
    # Validation and test sentences come from the first N pairs, so larger profiles score on
    # the same test sentences; null: from all pairs read.
    held_out_pairs: optional(AtLeastOne) = None

    @model_validator(mode="after")
    def _something_left_to_train_on(self) -> Self:
        held_out = self.validation_fraction + self.test_fraction
        if held_out >= 1:
            raise ValueError(
                f"preprocess.validation_fraction + preprocess.test_fraction = "
                f"{self.validation_fraction!r} + {self.test_fraction!r} = "
                f"{held_out:g}; must be below 1 so that something is left to train on"
            )
        return self


class ModelParams(Section):
    """The ``model`` section of params.yaml; the defaults are the Keras example's model."""

    architecture: choice(ARCHITECTURES) = "keras_example"
    # attention only: how a decoder output is scored against each encoder output.
    attention: choice(ATTENTION_SCORES) = "dot"
    # attention only: a bidirectional encoder of latent_dim / 2 units each way, so its
    # concatenated states still fit the decoder's latent_dim.
    bidirectional: Flag = False
    # The share of units dropped while training. LSTMs: on each LSTM's inputs, never on its
    # recurrent state, so the fused cuDNN kernel stays usable. transformer: after the embeddings,
    # each attention and each feed-forward block.
    dropout: Fraction = 0.0
    # transformer only: encoder layers (and as many decoder layers), model width, attention
    # heads (width must divide by them), feed-forward width, and the most positions it learns:
    # every training sentence (+1 for <start>/<end>) and every translation must fit.
    layers: AtLeastOne = 2
    width: AtLeastOne = 128
    heads: AtLeastOne = 4
    feed_forward: AtLeastOne = 512
    max_length: AtLeastOne = 256

    @model_validator(mode="before")
    @classmethod
    def _not_a_renamed_architecture(cls, values: Any) -> Any:
        old = values.get("architecture") if isinstance(values, dict) else None
        if isinstance(old, str) and old in RENAMED_ARCHITECTURES:
            new = RENAMED_ARCHITECTURES[old]
            raise ValueError(
                f"model.architecture: {old} is now called {new} (the same model); set "
                f"model.architecture: {new}"
            )
        return values

    @model_validator(mode="after")
    def _bidirectional_needs_attention(self) -> Self:
        uses = ARCHITECTURES[self.architecture]
        if self.bidirectional and "bidirectional" not in uses:
            raise ValueError(
                f"model.bidirectional = True needs model.architecture: attention, not "
                f"{self.architecture!r} (its encoder is unidirectional)"
            )
        if "heads" in uses and self.width % self.heads:
            raise ValueError(
                f"model.width = {self.width} must be a multiple of model.heads = {self.heads} "
                "(each head gets width / heads dimensions)"
            )
        return self

    def relevant(self) -> ModelParams:
        """The same architecture with the keys it does not use at their defaults, so that two
        params that build the same network compare equal."""
        defaults = ModelParams()
        used = {"architecture", "dropout", *ARCHITECTURES[self.architecture]}
        values = {key: getattr(self if key in used else defaults, key) for key in self.model_fields}
        return ModelParams(**values)


class TrainParams(Section):
    """The ``train`` section of params.yaml; the defaults reproduce the Keras example."""

    # The LSTMs' units (the transformer's width is model.width).
    latent_dim: AtLeastOne = 256
    batch_size: AtLeastOne = 64
    epochs: AtLeastOne = 100
    optimizer: choice(OPTIMIZERS) = "rmsprop"
    learning_rate: Positive = 0.001
    schedule: choice(SCHEDULES) = "constant"
    warmup_steps: AtLeastOne = 1000
    decay: NonNegative = 0.0
    # rmsprop only
    rho: Fraction = 0.9
    momentum: Fraction = 0.0
    centered: Flag = False
    # adam and adamw only; weight_decay: adamw only (decoupled, Loshchilov and Hutter 2019)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    weight_decay: NonNegative = 0.004
    epsilon: Positive = 1e-07
    # Share of each target's probability spread over the other characters (0: plain
    # cross-entropy). Its val_loss is not comparable with a run without it.
    label_smoothing: Fraction = 0.0
    training_precision: choice(PRECISIONS) = "float32"
    keep_best: Flag = True
    select_by: choice(SELECT_BY) = "val_loss"
    # chrf / char_accuracy: decode the validation sentences every this many epochs (and at the
    # last); the epochs between are not candidates.
    select_every: AtLeastOne = 1
    early_stopping_patience: optional(AtLeastOne) = None
    sort_chunk_batches: AtLeastOne = 32
    seed: AtLeastZero = 42

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if self.decay > 0 and self.schedule != "constant":
            raise ValueError(
                f"train.decay = {self.decay!r} is the constant schedule's inverse-time decay; "
                f"with train.schedule: {self.schedule} set train.decay: 0"
            )
        return self


class EvaluateParams(Section):
    batch_size: AtLeastOne
    length_margin: AtLeastZero
    # 1: greedy decoding, as the Keras example; above 1: beam search of that width.
    beam_width: AtLeastOne = 1
    # Beam search picks the highest log-probability / length ** length_alpha.
    length_alpha: NonNegative = 1.0


class TrackingParams(Section):
    experiment_name: Text
    # MLflow's system metrics (CPU, memory; GPU with pynvml) in each training run, every 10 s.
    system_metrics: Flag = True


class RegistryParams(Section):
    # The MLflow Model Registry name the trained translator is registered under; null: none.
    model_name: optional(Text) = None


SCHEMA: dict[str, type[Section]] = {
    "data": DataParams,
    "preprocess": PreprocessParams,
    "model": ModelParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "tracking": TrackingParams,
    "registry": RegistryParams,
}


def _problem(model: type[Section], name: str, values: dict, error: ValidationError) -> str:
    """What ``error`` found wrong with ``values``, in the words of params.yaml."""
    fields = model.model_fields
    unknown = sorted((key for key in values if key not in fields), key=str)
    if unknown:
        first = unknown[0]
        return (
            f"unknown {name} params {unknown}: {name}.{first} = {values[first]!r} is not "
            f"a known key; allowed: {', '.join(fields)}"
        )
    order = list(fields)
    keys = [e["loc"][0] for e in error.errors() if e["loc"] and e["loc"][0] in fields]
    if keys:  # the first key in the section's order, as a reader goes down the file
        key = min(keys, key=order.index)
        if key not in values:
            return f"{name}.{key} is missing; set it to {words_of(fields[key])}"
        return f"{name}.{key} = {values[key]!r}; must be {words_of(fields[key])}"
    # A check across keys (a model validator): its ValueError says it all.
    return "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in error.errors())


_S = TypeVar("_S", bound=Section)


def _validated(model: type[_S], name: str, values: Any, path: str) -> _S:
    if values is None:
        raise CharmtError(f"{path}: section {name!r} is missing")
    if not isinstance(values, dict):
        raise CharmtError(f"{path}: section {name!r} must be a mapping of keys, got {values!r}")
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise CharmtError(f"{path}: {_problem(model, name, values, error)}") from None


def _read_file(path: Path) -> dict[str, Any]:
    """The whole params file as a mapping of sections, unchecked."""
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


# Sections that may be left out of params.yaml (all defaults).
_OPTIONAL = ("model", "registry")


def read(path: str | os.PathLike[str] = "params.yaml", *names: str) -> dict[str, Section]:
    """The one way to read params: the sections ``names`` of the params file at ``path``, each
    checked and typed (``DataParams``, ``TrainParams``, ...), defaults filled in.

    Every section that is present is checked too (unknown keys, wrong values): a mistake anywhere
    in params.yaml is reported by whichever stage runs first. The ``model`` and ``registry``
    sections are optional (all defaults).
    """
    path = Path(path)
    params = _read_file(path)
    for name in SCHEMA:
        if name in params and name not in names:
            SCHEMA[name].from_dict(params[name], str(path))
    return {
        name: SCHEMA[name].from_dict(params.get(name, {} if name in _OPTIONAL else None), str(path))
        for name in names
    }
