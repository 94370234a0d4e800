"""Training: the tiny model learns, keep_best keeps the best epoch, bad runs fail clearly."""

import math

import keras
import pytest
from projects import PROJECT
from tiny_task import reversal_pairs

from charmt.data.batches import EncodedPairs, LengthBatches, to_dataset
from charmt.data.pairs import Pair, build_vocabularies
from charmt.errors import CharmtError
from charmt.models.optimization import build_optimizer
from charmt.params import read
from charmt.training.fit import (
    HISTORY_COLUMNS,
    TrainParams,
    train_model,
)


def test_validation_loss_falls_and_held_out_words_are_reversed(trained):
    history = trained.result.history
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    # The default (select_by val_loss) decodes nothing: no row has the translation scores.
    decoded = {"val_chrf", "val_char_accuracy", "val_decode_seconds"}
    assert all(set(row) == set(HISTORY_COLUMNS) - decoded for row in history)
    assert min(row["val_loss"] for row in history) < 0.3 * history[0]["val_loss"]

    outputs = trained.translator.translate([p.source for p in trained.held_out])
    exact = sum(o == p.target for o, p in zip(outputs, trained.held_out, strict=True))
    # Chance is ~0 (a 2-7 letter word over 8 letters); the trained model gets most right.
    assert exact / len(trained.held_out) > 0.5


def test_summary_reports_the_best_epoch(trained):
    summary = trained.result.summary
    best = min(trained.result.history, key=lambda row: row["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best_val_loss"] == best["val_loss"]
    assert summary["selected_by"] == "val_loss"
    assert summary["kept_epoch"] == best["epoch"]
    assert summary["validation_decode_seconds"] == 0
    assert "best_val_chrf" not in summary and "best_val_char_accuracy" not in summary
    assert summary["final_val_loss"] == trained.result.history[-1]["val_loss"]
    assert summary["epochs_run"] == 25
    assert summary["samples_per_second"] > 0
    assert 0 < summary["trainable_parameter_count"] < summary["parameter_count"]


# Validation asks for the reversed word with every letter shifted by one (a->b, ..., h->a): the
# better the model learns the training task (plain reversal), the more confidently it predicts the
# letter validation does not want, so val_loss rises after the first epochs and the best epoch is
# never the last. That is what lets the test tell keep_best true from false.
SHIFTED = str.maketrans("abcdefgh", "bcdefgha")


def _small_run(keep_best: bool):
    pairs = reversal_pairs(200, seed=5)
    train = pairs[40:]
    validation = [Pair(p.source, p.target.translate(SHIFTED)) for p in pairs[:40]]
    vocabularies = build_vocabularies(train)
    params = TrainParams(
        latent_dim=16, batch_size=16, epochs=6, learning_rate=0.02, keep_best=keep_best, seed=1
    )
    result = train_model(train, validation, vocabularies, params, verbose=0)
    batches = LengthBatches(EncodedPairs.encode(validation, vocabularies), 16, shuffle=False)
    loss = result.model.evaluate(to_dataset(batches), verbose=0, return_dict=True)["loss"]
    return result, loss


@pytest.mark.parametrize("keep_best", [True, False])
def test_keep_best_chooses_the_saved_weights(keep_best):
    result, loss = _small_run(keep_best)
    losses = [row["val_loss"] for row in result.history]
    assert len(losses) == 6  # the history covers every epoch either way
    # The precondition that makes the two settings differ, by construction (see SHIFTED).
    assert result.best_epoch < len(losses)
    assert min(losses) < 0.9 * losses[-1]
    expected = min(losses) if keep_best else losses[-1]
    assert loss == pytest.approx(expected, rel=1e-5)


def test_extra_callbacks_see_each_recorded_epoch_and_can_stop_training():
    # What bench/quality.py relies on: a callback that scores after each recorded epoch and
    # stops training on a budget.
    pairs = reversal_pairs(100, seed=8)
    vocabularies = build_vocabularies(pairs)
    rows, seen = [], []

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(rows[-1]["epoch"])
            if len(seen) == 2:
                self.model.stop_training = True

    params = TrainParams(latent_dim=8, batch_size=16, epochs=5)
    result = train_model(
        pairs[20:],
        pairs[:20],
        vocabularies,
        params,
        on_epoch=rows.append,
        verbose=0,
        callbacks=[StopAfterTwo()],
    )
    assert seen == [1, 2]
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_nan_loss_stops_with_a_clear_error():
    pairs = reversal_pairs(100, seed=6)
    vocabularies = build_vocabularies(pairs)
    # Unchecked on purpose: TrainParams(learning_rate=math.inf) itself is refused.
    params = TrainParams.model_construct(
        latent_dim=8, batch_size=16, epochs=3, learning_rate=math.inf
    )
    with pytest.raises(CharmtError, match=r"NaN.*train\.learning_rate"):
        train_model(pairs[20:], pairs[:20], vocabularies, params, verbose=0)


def test_empty_validation_split_is_a_clear_error():
    pairs = reversal_pairs(20, seed=7)
    vocabularies = build_vocabularies(pairs)
    with pytest.raises(CharmtError, match="validation_fraction"):
        train_model(pairs, [], vocabularies, TrainParams(epochs=1), verbose=0)


def test_params_reject_unknown_and_invalid_values():
    with pytest.raises(CharmtError, match=r"unknown train params.*'epoch'"):
        TrainParams.from_dict({"epoch": 3})
    with pytest.raises(CharmtError, match=r"train\.batch_size"):
        TrainParams.from_dict({"batch_size": 0})
    assert TrainParams.from_dict({"epochs": 3}).epochs == 3


def seed_train_params(source: str) -> TrainParams:
    if source == "TrainParams()":
        return TrainParams()
    # As stages/train.py reads them.
    return read(PROJECT / "params.yaml", "train")["train"]


@pytest.mark.parametrize("source", ["TrainParams()", "params.yaml"])
def test_default_params_give_the_seeds_optimizer(source):
    optimizer = build_optimizer(seed_train_params(source))
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    config = optimizer.get_config()
    # A plain float: decay 0.0 means a constant rate, no schedule.
    assert isinstance(config["learning_rate"], float)
    assert config["learning_rate"] == pytest.approx(0.001)
    assert (config["rho"], config["momentum"], config["centered"]) == (0.9, 0.0, False)
    assert config["epsilon"] == pytest.approx(1e-7)


def test_training_compiles_the_optimizer_of_its_params(trained):
    # The session's trained model used learning_rate 0.005 (conftest), not the default.
    config = trained.result.model.optimizer.get_config()
    expected = build_optimizer(
        TrainParams(latent_dim=64, batch_size=32, epochs=25, learning_rate=0.005, seed=3)
    ).get_config()
    assert config["learning_rate"] == pytest.approx(0.005)
    for key in ("rho", "momentum", "epsilon", "centered"):
        assert config[key] == expected[key]
