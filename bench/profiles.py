"""The settings the benchmarks train with: the pipeline's defaults (bench/run.py), the
Transformer profiles of docs/models.md and bench/quality.py's configurations, as params.yaml keys.

Light on purpose (no TensorFlow): the drivers read these before any worker runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.harness import HERE

if TYPE_CHECKING:
    from charmt.params import ModelParams, TrainParams

# bench/quality.py's split fractions and seed (its test split is the first --base-pairs pairs').
PREPROCESS = {"validation_fraction": 0.1, "test_fraction": 0.1, "seed": 42}
# The Transformer profiles of docs/models.md, as params.yaml keys: the README's `dvc exp run -S`
# lines set exactly these (tests/test_docs.py checks), so a row here is a measurement of the line.
TRANSFORMER = {
    "model.architecture": "transformer",
    "model.layers": 2,
    "model.width": 128,
    "model.heads": 4,
    "model.feed_forward": 512,
    "model.dropout": 0.1,
    "train.optimizer": "adam",
    "train.beta_2": 0.98,
    "train.learning_rate": 0.002,
    "train.schedule": "inverse_sqrt",
    "train.warmup_steps": 1000,
    "train.label_smoothing": 0.1,
    "train.select_by": "char_accuracy",
}
PROFILES = {
    # 10,000 pairs: an epoch over all pairs takes 8-13 minutes on these 2 cores, so a quick
    # profile of all pairs would be one epoch, most of it warm-up.
    "quick": {**TRANSFORMER, "train.warmup_steps": 250, "train.epochs": 8},
    # 5 epochs: what fits in an hour here (each epoch over all pairs: ~10 minutes quiet).
    "quality": {**TRANSFORMER, "data.num_samples": None, "train.epochs": 5},
}
# bench/quality.py's rows: name -> (all pairs?, params.yaml keys, early stopping?)
# The rows keep the names "seed" and "seed-all-pairs" (the recorded tables use them) for the
# architecture now called keras_example.
CONFIGURATIONS = {
    "seed": (False, {"model.architecture": "keras_example"}, False),
    "attention": (False, {"model.architecture": "attention"}, True),
    "attention-all-pairs": (True, {"model.architecture": "attention"}, True),
    "seed-all-pairs": (True, {"model.architecture": "keras_example"}, True),
    # The two profiles: quick (10,000 pairs) and quality (all pairs).
    "transformer": (False, PROFILES["quick"], False),
    "transformer-all-pairs": (True, PROFILES["quality"], False),
}


def sections(keys: dict) -> tuple[dict, dict]:
    """The (model, train) sections of params.yaml keys; data.* keys are the row's data."""
    model = {k.split(".", 1)[1]: v for k, v in keys.items() if k.startswith("model.")}
    train = {k.split(".", 1)[1]: v for k, v in keys.items() if k.startswith("train.")}
    return model, train


def pipeline_defaults() -> tuple[dict, TrainParams]:
    """The pipeline's preprocess section (params.yaml) and the default ``TrainParams``: what
    bench/run.py's ways all train with."""
    # From charmt.params, not charmt.training.fit: the driver stays free of TensorFlow.
    from charmt.params import TrainParams, read

    preprocess = read(HERE.parent / "params.yaml", "preprocess")["preprocess"]
    return preprocess.model_dump(), TrainParams()


def transformer_keys(epochs: int) -> dict:
    """bench/run.py's Transformer: the profile's params.yaml keys (``TRANSFORMER``, so it
    measures the model that bench/quality.py scores), for ``epochs`` epochs and judged at the
    last one, like the other ways; batch_size, latent_dim and seed stay the defaults."""
    # keep_best False: the last epoch, like for like with the LSTM ways. With it, the profile's
    # select_by char_accuracy would only decode the validation split after every epoch to pick
    # nothing; val_loss skips that decoding (not in train_seconds, but it costs the run time).
    return {
        **TRANSFORMER,
        "train.epochs": epochs,
        "train.keep_best": False,
        "train.select_by": "val_loss",
    }


def transformer_params(epochs: int) -> tuple[ModelParams, TrainParams]:
    """``transformer_keys`` as (``ModelParams``, ``TrainParams``)."""
    from charmt.params import ModelParams, TrainParams

    model, train = sections(transformer_keys(epochs))
    return ModelParams.from_dict(model), TrainParams.from_dict(train)
