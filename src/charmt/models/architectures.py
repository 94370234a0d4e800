"""The architectures by name: the one place that chooses between them.

``model.architecture`` (params.yaml) names an ``Architecture`` (``charmt.models.interface``) of
one module: ``keras_example``, ``attention`` or ``transformer``. A built or loaded model is
recognised from its layers (``architecture_of``). Everything else (training, decoding, the model
directory, the translator) goes through the functions here and never asks which one it has.
"""

from __future__ import annotations

import keras

from charmt.errors import CharmtError
from charmt.models import attention, keras_example, transformer
from charmt.models.interface import Architecture, DecoderStep, SentenceStep
from charmt.params import PRECISIONS, ModelParams

# In the order of charmt.params.ARCHITECTURES, which lists the names for params.yaml's checks
# (that module loads no TensorFlow); a test holds the two together.
BY_NAME: dict[str, Architecture] = {
    module.ARCHITECTURE.name: module.ARCHITECTURE
    for module in (keras_example, attention, transformer)
}


def named(name: str) -> Architecture:
    """The architecture that ``model.architecture: name`` selects."""
    return BY_NAME[name]


def built_as(model: keras.Model) -> Architecture:
    """The architecture of a built or loaded model, read from its layers."""
    for architecture in BY_NAME.values():
        if architecture.recognises(model):
            return architecture
    raise ValueError(f"{model.name!r} is not a model of any charmt architecture")


def architecture_of(model: keras.Model) -> ModelParams:
    """The ``model`` params a built (or loaded) model has, read from its layers."""
    return built_as(model).params_of(model)


def build_model(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    latent_dim: int = 256,
    precision: str = "float32",
    model_params: ModelParams | None = None,
) -> keras.Model:
    """The training model of ``model_params`` (default: the Keras example's):
    (encoder ids, decoder input ids) -> next-character probabilities."""
    if precision not in PRECISIONS:
        raise CharmtError(
            f"train.training_precision must be one of {PRECISIONS}, got {precision!r}"
        )
    model_params = model_params or ModelParams()
    return named(model_params.architecture).build(
        source_vocabulary_size, target_vocabulary_size, latent_dim, precision, model_params
    )


def check_fits(model_params: ModelParams, longest_source: int, longest_target: int) -> None:
    """Refuse training data the architecture of ``model_params`` cannot learn (a Transformer's
    positions), naming the fix, before any training."""
    named(model_params.architecture).check_fits(model_params, longest_source, longest_target)


def vocabulary_sizes(model: keras.Model) -> tuple[int, int]:
    """The (source, target) vocabulary sizes ``model`` was built for; ValueError: not a charmt
    model."""
    return built_as(model).vocabulary_sizes(model)


def max_positions(model: keras.Model) -> int | None:
    """The longest sequence ``model`` can read or write (its learned positions); None: any."""
    return built_as(model).max_positions(model)


def decoder_step(model: keras.Model) -> DecoderStep:
    """The batched one-step decoder of ``model``'s architecture, for the compiled loops."""
    return built_as(model).decoder_step(model)


def sentence_step(model: keras.Model) -> SentenceStep:
    """The one-sentence ``predict`` step of ``model``'s architecture, the Keras example's way."""
    return built_as(model).sentence_step(model)
