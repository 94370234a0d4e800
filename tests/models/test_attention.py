"""The attention architecture: built, trained, decoded, saved and served like the Keras example's
model."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from decoding_check import assert_batched_equals_one_sentence_decoding
from tiny_task import reversal_pairs

from charmt.cli.main import main as cli_main
from charmt.data.pairs import build_vocabularies
from charmt.errors import CharmtError
from charmt.evaluation import metrics
from charmt.inference.translator import Translator
from charmt.models.architectures import architecture_of, build_model
from charmt.models.attention import decoder_step_model, encoder_model
from charmt.models.modeldir import INFO_FILE
from charmt.models.optimization import compile_model
from charmt.params import ModelParams

ARCHITECTURES = {
    "attention": ModelParams(architecture="attention"),
    "attention-additive-bidirectional": ModelParams(
        architecture="attention", attention="additive", bidirectional=True
    ),
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def attention_trained(request, tmp_path_factory):
    """A small attention model trained on the reversal task (as conftest's ``trained``)."""
    from charmt.training.fit import TrainParams, train_model

    pairs = reversal_pairs(900, seed=1)
    random.Random(2).shuffle(pairs)
    held_out, validation, train = pairs[:60], pairs[60:160], pairs[160:]
    vocabularies = build_vocabularies(train)
    params = TrainParams(latent_dim=32, batch_size=32, epochs=12, learning_rate=0.01, seed=3)
    result = train_model(
        train,
        validation,
        vocabularies,
        params,
        verbose=0,
        model_params=ARCHITECTURES[request.param],
    )
    translator = Translator.from_training(result.model, vocabularies, train)
    model_dir = tmp_path_factory.mktemp("attention") / "models"
    translator.save(model_dir)
    return translator, model_dir, held_out, ARCHITECTURES[request.param]


def test_encoder_padding_changes_nothing(attention_trained):
    translator, *_ = attention_trained
    model = translator.model
    encoder_ids = np.array([[4, 5, 6, 7], [8, 9, 5, 0]], dtype=np.int32)
    decoder_ids = np.array([[1, 4, 5, 6], [1, 7, 0, 0]], dtype=np.int32)
    more = ((0, 0), (0, 6))
    probabilities = model.predict([encoder_ids, decoder_ids], verbose=0)
    padded = model.predict([np.pad(encoder_ids, more), decoder_ids], verbose=0)
    # The masked rows (decoder padding) are not compared: nothing reads them.
    real = decoder_ids != 0
    np.testing.assert_allclose(padded[real], probabilities[real], rtol=1e-5, atol=1e-7)


def test_step_model_equals_training_model(attention_trained):
    translator, *_ = attention_trained
    model = translator.model
    encoder, step = encoder_model(model), decoder_step_model(model)
    assert step.get_layer("decoder_lstm") is model.get_layer("decoder_lstm")
    assert step.get_layer("attention") is model.get_layer("attention")
    encoder_ids = np.array([[4, 5, 6, 0], [7, 8, 9, 4]], dtype=np.int32)
    decoder_ids = np.array([[1, 6, 5], [1, 4, 9]], dtype=np.int32)
    full = model.predict([encoder_ids, decoder_ids], verbose=0)
    state_h, state_c, outputs = (np.asarray(t) for t in encoder(encoder_ids))
    for position in range(decoder_ids.shape[1]):
        probabilities, state_h, state_c = step.predict(
            [decoder_ids[:, position : position + 1], state_h, state_c, outputs, encoder_ids],
            verbose=0,
        )
        np.testing.assert_allclose(probabilities[:, 0], full[:, position], rtol=1e-5, atol=1e-6)


def test_batched_decoding_equals_one_sentence_at_a_time(attention_trained):
    translator, _, held_out, _ = attention_trained
    sources = [*sorted({p.source for p in held_out}, key=len)[::12], "abcdefghabc"]
    assert_batched_equals_one_sentence_decoding(translator, sources)


def test_attention_model_learns_the_task(attention_trained, trained):
    """On words it never saw, the attention model reverses well; a check that attention is
    wired to the right inputs, not a benchmark."""
    translator, _, held_out, _ = attention_trained
    sources = [p.source for p in held_out]
    references = [[p.target] for p in held_out]
    accuracy = metrics.char_accuracy(translator.translate(sources), references)
    assert accuracy > 0.8, accuracy


def test_saved_directory_records_and_restores_the_architecture(attention_trained, tmp_path):
    translator, model_dir, held_out, model_params = attention_trained
    info = json.loads((model_dir / INFO_FILE).read_text())
    assert ModelParams.from_dict(info["architecture"]) == model_params
    loaded = Translator.load(model_dir)
    assert architecture_of(loaded.model) == model_params
    sources = [p.source for p in held_out[:10]]
    assert loaded.translate(sources) == translator.translate(sources)


def test_a_model_json_that_contradicts_the_model_is_an_error(attention_trained, tmp_path):
    _, model_dir, _, _ = attention_trained
    copy = tmp_path / "models"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    info = json.loads((copy / INFO_FILE).read_text())
    info["architecture"] = {"architecture": "keras_example"}
    (copy / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(CharmtError, match="mixed up"):
        Translator.load(copy)
    # The name the Keras example's model had before is the same model: as contradictory.
    info["architecture"] = {"architecture": "seed"}
    (copy / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(CharmtError, match="mixed up"):
        Translator.load(copy)


def test_cli_translates_with_an_attention_model_greedy_and_beam(attention_trained, capsys):
    translator, model_dir, held_out, _ = attention_trained
    sources = [p.source for p in held_out[:4]]
    cli_main(["translate", "--model", str(model_dir), *sources])
    assert capsys.readouterr().out.splitlines() == translator.translate(sources)
    cli_main(["translate", "--model", str(model_dir), "--beam-width", "3", *sources])
    assert capsys.readouterr().out.splitlines() == translator.translate(sources, beam_width=3)


def test_keras_example_model_directory_without_architecture_still_loads(trained, tmp_path):
    """Directories written before the attention model have no architecture in model.json."""
    copy = tmp_path / "models"
    copy.mkdir()
    for path in trained.model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    info = json.loads((copy / INFO_FILE).read_text())
    assert ModelParams.from_dict(info.pop("architecture")) == ModelParams()
    (copy / INFO_FILE).write_text(json.dumps(info))
    assert architecture_of(Translator.load(copy).model) == ModelParams()


def test_a_model_directory_that_names_the_keras_example_seed_still_loads(trained, tmp_path):
    """Directories written before the rename record ``"architecture": "seed"``: the same model."""
    copy = tmp_path / "models"
    copy.mkdir()
    for path in trained.model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    info = json.loads((copy / INFO_FILE).read_text())
    assert info["architecture"]["architecture"] == "keras_example"
    info["architecture"]["architecture"] = "seed"
    (copy / INFO_FILE).write_text(json.dumps(info))
    loaded = Translator.load(copy)
    assert architecture_of(loaded.model) == ModelParams()
    sources = [p.source for p in trained.held_out[:5]]
    assert loaded.translate(sources) == trained.translator.translate(sources)


def test_the_keras_example_architecture_is_the_keras_example_model():
    keras_example = build_model(12, 14, 16)
    assert keras_example.name == "charmt"
    assert [layer.name for layer in keras_example.layers] == [
        "encoder_ids",
        "decoder_ids",
        "encoder_one_hot",
        "decoder_one_hot",
        "encoder_lstm",
        "decoder_lstm",
        "next_char",
    ]
    assert architecture_of(keras_example) == ModelParams()


def test_attention_model_compiles_and_counts_more_parameters():
    keras_example = build_model(12, 14, 16)
    attention = build_model(12, 14, 16, model_params=ModelParams(architecture="attention"))
    compile_model(attention)
    assert attention.count_params() > keras_example.count_params()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"architecture": "lstm"}, "model.architecture"),
        ({"architecture": "attention", "attention": "general"}, "model.attention"),
        ({"bidirectional": True}, "needs model.architecture: attention"),
        ({"architecture": "attention", "bidirectional": "yes"}, "true or false"),
        ({"depth": 2}, "unknown model params"),
        ("attention", "must be a mapping"),
    ],
)
def test_bad_model_params_are_clear_errors(values, message):
    with pytest.raises(CharmtError, match=message):
        ModelParams.from_dict(values)


def test_bidirectional_needs_an_even_latent_dim():
    with pytest.raises(CharmtError, match="even"):
        build_model(5, 5, 7, model_params=ModelParams(architecture="attention", bidirectional=True))


@pytest.mark.e2e
def test_pipeline_trains_attention_and_evaluates_with_beam_search(tmp_path):
    """dvc repro with model.architecture attention, then evaluate.beam_width 3: the params reach
    the model, eval.json and MLflow (the re-evaluation in a child run, as the training run's
    params cannot change), and the logged translator decodes like the saved one."""
    import mlflow
    import yaml
    from commands import run
    from projects import TINY_PARAMS, make_project, tiny_zip

    params = {
        **TINY_PARAMS,
        "model": {"architecture": "attention", "bidirectional": True},
        "train": {**TINY_PARAMS["train"], "epochs": 2},
    }
    project = make_project(tmp_path / "project", tiny_zip(), params, prepared=True)
    run(["dvc", "repro"], project)
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert (evaluation["decoding"], evaluation["beam_width"]) == ("greedy", 1)
    info = json.loads((project / "models" / INFO_FILE).read_text())
    assert info["architecture"]["architecture"] == "attention"
    assert info["architecture"]["bidirectional"] is True

    values = yaml.safe_load((project / "params.yaml").read_text())
    values["evaluate"]["beam_width"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    output = run(["dvc", "repro"], project)
    assert "Running stage 'evaluate'" in output and "Running stage 'train'" not in output
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert (evaluation["decoding"], evaluation["beam_width"]) == ("beam", 3)

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    logged = mlflow.get_run(run_id)
    assert logged.data.params["model.architecture"] == "attention"
    assert logged.data.params["evaluate.beam_width"] == "1"
    assert logged.data.tags["decoding"] == "greedy"
    (child,) = mlflow.search_runs(
        experiment_names=["charmt"],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
        output_format="list",
    )
    assert child.data.params["evaluate.beam_width"] == "3"
    assert child.data.tags["decoding"] == "beam"
    assert child.data.metrics["char_accuracy"] == pytest.approx(evaluation["char_accuracy"])

    sources = ["abc", "hgfe", "abcdefg"]
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/translator")
    saved = Translator.load(project / "models")
    assert list(served.predict(sources)) == saved.translate(sources)
    assert list(served.predict(sources, params={"beam_width": 3})) == saved.translate(
        sources, beam_width=3
    )
