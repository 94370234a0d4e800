"""The Transformer: built, trained, resumed, decoded, saved and served like the LSTMs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import tensorflow as tf
from commands import predict_in_fresh_process
from decoding_check import assert_batched_equals_one_sentence_decoding
from tiny_task import reversal_pairs

from charmt.cli.main import main as cli_main
from charmt.data.batches import pad
from charmt.data.pairs import Pair, build_vocabularies
from charmt.errors import CharmtError
from charmt.evaluation import metrics
from charmt.inference.decoding import BeamDecoder, GreedyDecoder
from charmt.inference.translator import Translator
from charmt.models.architectures import architecture_of, build_model, decoder_step
from charmt.models.modeldir import INFO_FILE
from charmt.params import ModelParams
from charmt.training.checkpoint import Checkpoints

ARCHITECTURE = ModelParams(
    architecture="transformer", layers=1, width=32, heads=4, feed_forward=64, max_length=32
)


def _params(**overrides):
    from charmt.training.fit import TrainParams

    values = dict(batch_size=32, epochs=20, learning_rate=0.003, seed=3)
    return TrainParams(**{**values, **overrides})


@pytest.fixture(scope="module")
def transformer_trained(tmp_path_factory):
    """A small Transformer trained on the reversal task (as conftest's ``trained``)."""
    from charmt.training.fit import train_model

    pairs = reversal_pairs(900, seed=1)
    random.Random(2).shuffle(pairs)
    held_out, validation, train = pairs[:60], pairs[60:160], pairs[160:]
    vocabularies = build_vocabularies(train)
    result = train_model(
        train, validation, vocabularies, _params(), verbose=0, model_params=ARCHITECTURE
    )
    translator = Translator.from_training(result.model, vocabularies, train)
    model_dir = tmp_path_factory.mktemp("transformer") / "models"
    translator.save(model_dir)
    return translator, model_dir, held_out


def test_padding_changes_nothing(transformer_trained):
    """More padding on either side leaves every real position's probabilities unchanged."""
    translator, *_ = transformer_trained
    model = translator.model
    encoder_ids = np.array([[4, 5, 6, 7], [8, 9, 5, 0]], dtype=np.int32)
    decoder_ids = np.array([[1, 4, 5, 6], [1, 7, 0, 0]], dtype=np.int32)
    probabilities = model.predict([encoder_ids, decoder_ids], verbose=0)
    padded = model.predict(
        [np.pad(encoder_ids, ((0, 0), (0, 6))), np.pad(decoder_ids, ((0, 0), (0, 3)))], verbose=0
    )
    real = decoder_ids != 0
    np.testing.assert_allclose(padded[:, :4][real], probabilities[real], rtol=1e-4, atol=1e-6)


def test_cached_step_equals_the_training_model(transformer_trained):
    """Feeding the target one character at a time through the KV-cached step gives the
    teacher-forced model's probabilities at every position."""
    translator, *_ = transformer_trained
    model = translator.model
    step = decoder_step(model)
    encoder_ids = np.array([[4, 5, 6, 0], [7, 8, 9, 4]], dtype=np.int32)
    decoder_ids = np.array([[1, 6, 5, 4, 3], [1, 4, 9, 8, 7]], dtype=np.int32)
    full = model.predict([encoder_ids, decoder_ids], verbose=0)
    state, memory = step.start(tf.constant(encoder_ids))
    for position in range(decoder_ids.shape[1]):
        probabilities, state = step(
            tf.constant(decoder_ids[:, position]), tf.constant(position), state, memory
        )
        np.testing.assert_allclose(probabilities, full[:, position], rtol=1e-4, atol=1e-6)
    assert state[0].shape[1] == decoder_ids.shape[1]  # the cache grew one step per call


def test_batched_decoding_equals_recomputing_the_prefix_one_sentence_at_a_time(
    transformer_trained,
):
    translator, _, held_out = transformer_trained
    sources = [*sorted({p.source for p in held_out}, key=len)[::12], "abcdefghabc"]
    assert_batched_equals_one_sentence_decoding(translator, sources)


def test_beam_width_one_is_greedy_and_batched_beam_is_per_sentence(transformer_trained):
    translator, _, held_out = transformer_trained
    encoded = [
        np.array(translator.vocabularies.source.encode(p.source), dtype=np.int32)
        for p in held_out[:8]
    ]
    greedy = GreedyDecoder(translator.model)(pad(encoded), 20)
    np.testing.assert_array_equal(BeamDecoder(translator.model, 1)(pad(encoded), 20), greedy)
    beam = BeamDecoder(translator.model, 3)
    target = translator.vocabularies.target
    for row, ids in zip(beam(pad(encoded), 20), encoded, strict=True):
        (alone,) = beam(ids[None, :], 20)
        assert target.decode(row) == target.decode(alone)


def test_the_transformer_learns_the_task(transformer_trained):
    """On words it never saw, it reverses well: positions, masks and attention are wired right."""
    translator, _, held_out = transformer_trained
    sources = [p.source for p in held_out]
    accuracy = metrics.char_accuracy(translator.translate(sources), [[p.target] for p in held_out])
    assert accuracy > 0.7, accuracy


def test_saved_directory_records_and_restores_the_architecture(transformer_trained):
    translator, model_dir, held_out = transformer_trained
    info = json.loads((model_dir / INFO_FILE).read_text())
    assert ModelParams.from_dict(info["architecture"]) == ARCHITECTURE
    loaded = Translator.load(model_dir)
    assert architecture_of(loaded.model) == ARCHITECTURE
    sources = [p.source for p in held_out[:10]]
    assert loaded.translate(sources) == translator.translate(sources)
    assert loaded.translate(sources, beam_width=3) == translator.translate(sources, beam_width=3)


def test_cli_translates_greedy_and_beam(transformer_trained, capsys):
    translator, model_dir, held_out = transformer_trained
    sources = [p.source for p in held_out[:4]]
    cli_main(["translate", "--model", str(model_dir), *sources])
    assert capsys.readouterr().out.splitlines() == translator.translate(sources)
    cli_main(["translate", "--model", str(model_dir), "--beam-width", "3", *sources])
    assert capsys.readouterr().out.splitlines() == translator.translate(sources, beam_width=3)


def test_a_sentence_beyond_its_positions_is_cut_and_translations_stop_there(
    transformer_trained, caplog
):
    translator, *_ = transformer_trained
    assert translator.output_cap(1000) == ARCHITECTURE.max_length
    long_source = "abcdefgh" * 10  # 80 characters, 32 positions
    with caplog.at_level("WARNING"):
        (translation,) = translator.translate([long_source], length_margin=1000)
    assert "longer than the longest training sentence" in caplog.text
    assert len(translation) <= ARCHITECTURE.max_length


def test_training_data_longer_than_its_positions_is_a_clear_error():
    from charmt.training.fit import train_model

    pairs = [Pair("abc", "cba"), Pair("a" * 40, "b" * 40)]
    with pytest.raises(CharmtError, match=r"model.max_length = 32 .* at least 51"):
        train_model(pairs, pairs, build_vocabularies(pairs), _params(), model_params=ARCHITECTURE)


def test_width_must_divide_by_heads():
    with pytest.raises(CharmtError, match=r"multiple of model\.heads"):
        ModelParams.from_dict({"architecture": "transformer", "width": 30, "heads": 4})


def test_more_layers_and_width_mean_more_parameters():
    small = build_model(12, 14, model_params=ARCHITECTURE)
    bigger = build_model(
        12, 14, model_params=ARCHITECTURE.model_copy(update={"layers": 2, "width": 64})
    )
    assert bigger.count_params() > small.count_params()
    assert architecture_of(bigger).layers == 2


def test_an_interrupted_run_resumes_as_if_it_never_stopped(tmp_path):
    from charmt.training.fit import train_model

    pairs = reversal_pairs(240, seed=11)
    train, validation = pairs[:200], pairs[200:]
    vocabularies = build_vocabularies(train)

    def fit(checkpoints=None, interrupt_after=None):
        def on_epoch(row):
            if row["epoch"] == interrupt_after:
                raise KeyboardInterrupt

        return train_model(
            train,
            validation,
            vocabularies,
            _params(epochs=4, batch_size=16),
            on_epoch=on_epoch,
            verbose=0,
            checkpoints=checkpoints,
            checkpoint_extra={"run_id": "abc"},
            model_params=ARCHITECTURE,
        )

    plain = fit()
    with pytest.raises(KeyboardInterrupt):
        fit(Checkpoints(tmp_path, "key"), interrupt_after=2)
    resumed = fit(Checkpoints(tmp_path, "key"))
    assert resumed.resumed_epochs == 2
    for mine, theirs in zip(resumed.history, plain.history, strict=True):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)
    for mine, theirs in zip(resumed.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.e2e
def test_the_logged_translator_loads_and_predicts_in_a_fresh_process(
    transformer_trained, mlflow_store
):
    from charmt import tracking
    from charmt.serving.publish import log_trained_model

    translator, model_dir, held_out = transformer_trained
    store = mlflow_store
    with tracking.start_run("charmt-test") as run:
        log_trained_model(translator, model_dir)
    sources = [p.source for p in held_out[:5]]
    greedy, beam = predict_in_fresh_process(
        f"runs:/{run.info.run_id}/translator",
        store,
        [{"sources": sources, "frame": False, "params": p} for p in (None, {"beam_width": 3})],
    )
    assert greedy == translator.translate(sources)
    assert beam == translator.translate(sources, beam_width=3)


@pytest.mark.e2e
def test_pipeline_trains_a_transformer_kept_by_chrf_and_evaluates_it(tmp_path):
    """dvc repro with the Transformer profile's knobs on tiny data: the params reach the model,
    the kept epoch is the one of the best validation chrF, and evaluate, MLflow, the registry and
    the CLI all work with it."""
    import csv

    import mlflow
    from commands import run
    from projects import TINY_PARAMS, make_project, tiny_zip

    params = {
        **TINY_PARAMS,
        "model": {**ARCHITECTURE.model_dump(), "dropout": 0.1},
        "train": {
            **TINY_PARAMS["train"],
            "epochs": 4,
            "optimizer": "adam",
            "beta_2": 0.98,
            "learning_rate": 0.005,
            "schedule": "inverse_sqrt",
            "warmup_steps": 20,
            "label_smoothing": 0.1,
            "select_by": "chrf",
        },
    }
    project = make_project(tmp_path / "project", tiny_zip(), params, prepared=True)
    run(["dvc", "repro"], project)
    info = json.loads((project / "models" / INFO_FILE).read_text())
    assert ModelParams.from_dict(info["architecture"]) == ARCHITECTURE.model_copy(
        update={"dropout": 0.1}
    )
    with (project / "metrics/history.csv").open() as handle:
        history = list(csv.DictReader(handle))
    summary = json.loads((project / "metrics/train.json").read_text())
    scores = [float(row["val_chrf"]) for row in history]
    assert summary["selected_by"] == "chrf"
    assert summary["kept_epoch"] == 1 + scores.index(max(scores))
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert 0 <= evaluation["char_accuracy"] <= 1

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    logged = mlflow.get_run(run_id)
    assert logged.data.params["model.architecture"] == "transformer"
    assert logged.data.params["train.optimizer"] == "adam"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "val_chrf")]
    assert steps == [1, 2, 3, 4]
    promotion = json.loads((project / "metrics/promotion.json").read_text())
    assert promotion["promoted"] is True

    sources = ["abc", "hgfe"]
    output = run(["charmt", "translate", "--model", "models", *sources], project)
    assert output.splitlines() == Translator.load(project / "models").translate(sources)
