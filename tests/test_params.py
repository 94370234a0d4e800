"""Params: every stage checks the params it reads before any work, in one line, writing nothing.

The table runs each stage script as DVC would, on a params.yaml with one bad value, in an empty
directory: exit status 1, one line on stderr naming the key and the value, no file written.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pydantic
import pytest
import yaml
from commands import subprocess_env
from projects import PROJECT

from charmt.errors import CharmtError
from charmt.fields import words_of
from charmt.params import (
    SCHEMA,
    ModelParams,
    RegistryParams,
    TrainParams,
    read,
)

STAGE_ARGS = {
    "download": ["--out", "raw/fra.txt"],
    "preprocess": ["--raw", "fra.txt", "--out", "prepared", "--metrics", "data.json"],
    "train": [
        "--prepared",
        "prepared",
        "--model",
        "models",
        "--history",
        "history.csv",
        "--metrics",
        "train.json",
        "--checkpoints",
        "checkpoints",
    ],
    "evaluate": [
        "--prepared",
        "prepared",
        "--model",
        "models",
        "--metrics",
        "eval.json",
        "--samples",
        "samples.tsv",
        "--promotion",
        "promotion.json",
    ],
}

# (stage, section, key, bad value, words the message must hold besides the key and value)
BAD = [
    ("download", "data", "sha256", "abc123", "64 hex digits"),
    ("download", "data", "sha256", "g" * 64, "64 hex digits"),
    ("download", "data", "url", "", "non-empty"),
    ("preprocess", "data", "num_samples", 0, ">= 1"),
    ("preprocess", "data", "num_samples", 2.5, "integer"),
    ("preprocess", "data", "num_samples", True, "integer"),
    ("preprocess", "preprocess", "validation_fraction", 1.0, "[0, 1)"),
    ("preprocess", "preprocess", "test_fraction", -0.1, "[0, 1)"),
    ("preprocess", "preprocess", "validation_fraction", 0.6, "below 1"),  # + test 0.4 (below)
    ("preprocess", "preprocess", "seed", "forty-two", "integer"),
    ("train", "train", "batch_size", 0, ">= 1"),
    ("train", "train", "latent_dim", 12.0, "integer"),
    ("train", "train", "epochs", True, "integer"),
    ("train", "train", "learning_rate", 0, "(0,"),
    ("train", "train", "learning_rate", math.inf, "finite"),
    ("train", "train", "learning_rate", math.nan, "finite"),
    ("train", "train", "learning_rate", "1e-3", "number"),  # YAML reads 1e-3 as a string
    ("train", "train", "rho", 1.5, "[0, 1)"),
    ("train", "train", "training_precision", "float64", "mixed_bfloat16"),
    ("train", "train", "keep_best", "yes please", "true or false"),
    ("train", "train", "early_stopping_patience", 0, "null or"),
    ("train", "train", "epoch", 3, "unknown train params"),
    ("train", "tracking", "experiment_name", "", "non-empty"),
    ("train", "registry", "model_name", 7, "null or"),
    ("evaluate", "evaluate", "batch_size", -1, ">= 1"),
    ("evaluate", "evaluate", "length_margin", None, "integer"),
    ("evaluate", "evaluate", "beam_size", 4, "unknown evaluate params"),
    ("evaluate", "evaluate", "beam_width", 0, ">= 1"),
    ("evaluate", "evaluate", "length_alpha", -0.5, "[0, inf)"),
    ("train", "model", "architecture", "lstm", "one of keras_example, attention, transformer"),
    ("train", "model", "bidirectional", True, "needs model.architecture: attention"),
    ("preprocess", "data", "num_samples", 0, "or null (or all)"),
    ("preprocess", "preprocess", "held_out_pairs", 0, "null or"),
    # A mistake in a section the stage does not read is still caught by whichever stage runs.
    ("download", "train", "batch_sizes", 64, "unknown train params"),
]


def _write_params(directory, section, key, value):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params.setdefault(section, {})[key] = value
    if (section, key) == ("preprocess", "validation_fraction") and value == 0.6:
        params["preprocess"]["test_fraction"] = 0.4
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize(("stage", "section", "key", "value", "words"), BAD)
def test_stage_refuses_a_bad_param_in_one_line_and_writes_nothing(
    tmp_path, stage, section, key, value, words
):
    _write_params(tmp_path, section, key, value)
    done = subprocess.run(
        [sys.executable, str(PROJECT / "stages" / f"{stage}.py"), *STAGE_ARGS[stage]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: params.yaml: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"{section}.{key}" in done.stderr
    if (section, key, value) != ("preprocess", "validation_fraction", 0.6):
        assert f"= {value!r}" in done.stderr
    assert words in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_project_params_are_valid():
    sections = read(PROJECT / "params.yaml", *SCHEMA)
    assert {name: type(section) for name, section in sections.items()} == SCHEMA
    assert (
        sections["train"].epochs
        == yaml.safe_load((PROJECT / "params.yaml").read_text())["train"]["epochs"]
    )


def test_train_defaults_are_the_schema_defaults():
    assert SCHEMA["train"].from_dict({}) == TrainParams()


def test_every_section_and_key_of_the_project_params_is_in_the_schema_and_kept_as_written():
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert set(params) == set(SCHEMA)
    for name, values in params.items():
        # Nothing coerced: what MLflow logs and checkpoints fingerprint is what the file says.
        checked = SCHEMA[name].from_dict(values).model_dump()
        assert checked == values, name
        assert [type(v) for v in checked.values()] == [type(v) for v in values.values()], name


def test_the_defaults_are_the_keras_examples():
    assert TrainParams().model_dump() == {
        "latent_dim": 256,
        "batch_size": 64,
        "epochs": 100,
        "optimizer": "rmsprop",
        "learning_rate": 0.001,
        "schedule": "constant",
        "warmup_steps": 1000,
        "decay": 0.0,
        "rho": 0.9,
        "momentum": 0.0,
        "centered": False,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "weight_decay": 0.004,
        "epsilon": 1e-07,
        "label_smoothing": 0.0,
        "training_precision": "float32",
        "keep_best": True,
        "select_by": "val_loss",
        "select_every": 1,
        "early_stopping_patience": None,
        "sort_chunk_batches": 32,
        "seed": 42,
    }
    assert ModelParams().model_dump() == {
        "architecture": "keras_example",
        "attention": "dot",
        "bidirectional": False,
        "dropout": 0.0,
        "layers": 2,
        "width": 128,
        "heads": 4,
        "feed_forward": 512,
        "max_length": 256,
    }


@pytest.mark.parametrize("name", list(SCHEMA))
def test_every_key_says_what_it_allows(name):
    for key, field in SCHEMA[name].model_fields.items():
        assert words_of(field), f"{name}.{key}"


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("train", {"epochs": 0}, "train.epochs = 0; must be an integer >= 1"),
        ("train", {"epochs": True}, "train.epochs = True; must be an integer >= 1"),
        ("train", {"epochs": "3"}, "train.epochs = '3'; must be an integer >= 1"),
        ("train", {"epochs": 3.0}, "train.epochs = 3.0; must be an integer >= 1"),
        ("train", {"rho": True}, "train.rho = True; must be a finite number in [0, 1)"),
        ("train", {"decay": math.inf}, "train.decay = inf; must be a finite number in [0, inf)"),
        ("train", {"epsilon": 0.0}, "train.epsilon = 0.0; must be a finite number in (0, inf)"),
        # Two mistakes: the first in the section's order is named, as before.
        ("train", {"seed": -1, "batch_size": 0}, "train.batch_size = 0; must be an integer >= 1"),
        (
            "train",
            {"zeta": 1, "alpha": 2, "epochs": 0},
            "unknown train params ['alpha', 'zeta']: train.alpha = 2 is not a known key; "
            "allowed: latent_dim, batch_size, epochs, optimizer, learning_rate, schedule, "
            "warmup_steps, decay, rho, momentum, centered, beta_1, beta_2, weight_decay, epsilon, "
            "label_smoothing, training_precision, keep_best, select_by, select_every, "
            "early_stopping_patience, sort_chunk_batches, seed",
        ),
        ("train", {"select_by": "bleu"}, "train.select_by = 'bleu'; must be one of val_loss, chrf"),
        (
            "train",
            {"schedule": "inverse_sqrt", "decay": 0.1},
            "train.decay = 0.1 is the constant schedule's inverse-time decay",
        ),
        (
            "model",
            {"architecture": "transformer", "width": 100, "heads": 8},
            "model.width = 100 must be a multiple of model.heads = 8",
        ),
        ("model", {"dropout": 1.0}, "model.dropout = 1.0; must be a finite number in [0, 1)"),
        ("tracking", {}, "tracking.experiment_name is missing; set it to a non-empty string"),
        (
            "tracking",
            {"experiment_name": " "},
            "tracking.experiment_name = ' '; must be a non-empty",
        ),
        # A trailing newline is not a digit (pydantic's `$` is the end of the text).
        (
            "data",
            {"url": "x", "sha256": "a" * 64 + "\n", "num_samples": 1},
            f"data.sha256 = {'a' * 64 + chr(10)!r}; must be null or 64 hex digits",
        ),
        (
            "model",
            {"bidirectional": True},
            "model.bidirectional = True needs model.architecture: attention, not "
            "'keras_example' (its encoder is unidirectional)",
        ),
        # The Keras example's model was called seed: the old name says the new one.
        (
            "model",
            {"architecture": "seed"},
            "model.architecture: seed is now called keras_example (the same model); set "
            "model.architecture: keras_example",
        ),
        (
            "preprocess",
            {"validation_fraction": 0.5, "test_fraction": 0.5, "seed": 1},
            "preprocess.validation_fraction + preprocess.test_fraction = 0.5 + 0.5 = 1; "
            "must be below 1 so that something is left to train on",
        ),
    ],
)
def test_errors_are_one_line_in_the_words_of_params_yaml(name, values, message):
    with pytest.raises(CharmtError) as error:
        SCHEMA[name].from_dict(values)
    assert str(error.value).startswith(f"params.yaml: {message}")
    assert "\n" not in str(error.value) and "pydantic" not in str(error.value)


def test_numbers_keep_their_type():
    # decay: 0 is logged to MLflow as 0, as written, not 0.0.
    assert SCHEMA["train"].from_dict({"decay": 0, "learning_rate": 1}).decay == 0
    assert type(SCHEMA["train"].from_dict({"decay": 0}).decay) is int
    assert type(SCHEMA["train"].from_dict({"decay": 0.5}).decay) is float


def test_built_directly_the_params_are_still_checked_and_frozen():
    with pytest.raises(pydantic.ValidationError):
        TrainParams(epochs=True)
    with pytest.raises(pydantic.ValidationError):
        TrainParams(epoch=3)
    with pytest.raises(pydantic.ValidationError):
        ModelParams(bidirectional=True)
    params = TrainParams(epochs=3)
    with pytest.raises(pydantic.ValidationError):
        params.epochs = 4
    assert params == TrainParams.from_dict({"epochs": 3})
    assert hash(ModelParams()) == hash(ModelParams.from_dict({}))


def test_model_params_round_trip_through_a_dict():
    # The translator's info file stores model_dump() and reads it back with from_dict.
    model_params = ModelParams(architecture="attention", attention="additive", bidirectional=True)
    assert ModelParams.from_dict(model_params.model_dump()) == model_params


def test_registry_section_is_optional_and_accepts_a_name_or_null(tmp_path):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params.pop("registry", None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert read(path, "registry") == {"registry": RegistryParams(model_name=None)}
    assert SCHEMA["registry"].from_dict({"model_name": "charmt"}).model_name == "charmt"


def test_a_missing_required_key_is_named():
    with pytest.raises(CharmtError, match=r"data\.num_samples is missing"):
        SCHEMA["data"].from_dict({"url": "x"})


def test_a_missing_section_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: {url: x, num_samples: 3}\n")
    with pytest.raises(CharmtError, match="section 'tracking' is missing"):
        read(path, "tracking")


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: [3\n")
    with pytest.raises(CharmtError) as error:
        read(path, "train")
    assert "\n" not in str(error.value) and "not valid YAML" in str(error.value)
