"""Optimization: the optimizer of the train params, the learning-rate schedules, label smoothing."""

import math

import keras
import numpy as np
import pytest

from charmt.models.architectures import build_model
from charmt.models.optimization import (
    InverseSqrtSchedule,
    SmoothedSparseCrossentropy,
    build_optimizer,
    compile_model,
    loss_for,
)
from charmt.params import TrainParams


def test_decay_is_keras2_inverse_time_decay():
    schedule = build_optimizer(TrainParams(learning_rate=0.01, decay=0.5))._learning_rate
    for step in (0, 1, 10):
        assert float(schedule(step)) == pytest.approx(0.01 / (1 + 0.5 * step))
    constant = build_optimizer(TrainParams(learning_rate=0.01))
    assert float(constant.learning_rate) == pytest.approx(0.01)


def test_adam_and_adamw_take_their_params():
    params = dict(learning_rate=0.002, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    adam = build_optimizer(TrainParams(optimizer="adam", **params))
    adamw = build_optimizer(TrainParams(optimizer="adamw", weight_decay=0.01, **params))
    assert type(adam) is keras.optimizers.Adam
    assert type(adamw) is keras.optimizers.AdamW
    for optimizer in (adam, adamw):
        config = optimizer.get_config()
        assert config["learning_rate"] == pytest.approx(0.002)
        assert (config["beta_1"], config["beta_2"]) == (0.8, 0.99)
        assert config["epsilon"] == pytest.approx(1e-6)
    assert adamw.get_config()["weight_decay"] == pytest.approx(0.01)


def test_inverse_sqrt_warms_up_linearly_then_decays():
    schedule = build_optimizer(
        TrainParams(optimizer="adam", learning_rate=0.01, schedule="inverse_sqrt", warmup_steps=100)
    )._learning_rate
    assert isinstance(schedule, InverseSqrtSchedule)
    # Keras passes the iterations done so far: iteration i is step i + 1.
    for iterations, expected in [(0, 0.01 / 100), (49, 0.005), (99, 0.01), (399, 0.005)]:
        assert float(schedule(iterations)) == pytest.approx(expected, rel=1e-6)
    for iterations in (150, 1000, 5000):
        step = iterations + 1
        assert float(schedule(iterations)) == pytest.approx(0.01 * math.sqrt(100 / step), rel=1e-6)


def _smoothed(targets, smoothing, vocabulary):
    return (1 - smoothing) * np.eye(vocabulary)[targets] + smoothing / vocabulary


def test_smoothed_loss_of_a_perfect_prediction_is_the_targets_entropy():
    vocabulary, s = 5, 0.1
    targets = np.array([[1, 3, 4]])
    # Under smoothing the best possible prediction is the smoothed target itself; its loss is
    # that distribution's entropy, above 0.
    perfect = _smoothed(targets, s, vocabulary).astype("float32")
    high, low = 1 - s + s / vocabulary, s / vocabulary
    entropy = -(high * math.log(high) + (vocabulary - 1) * low * math.log(low))
    loss = float(SmoothedSparseCrossentropy(s)(targets, perfect))
    assert loss > 0
    assert loss == pytest.approx(entropy, rel=1e-5)
    # A confident one-hot prediction scores worse than the smoothed one.
    confident = np.eye(vocabulary, dtype="float32")[targets] * 0.99 + 0.01 / vocabulary
    assert float(SmoothedSparseCrossentropy(s)(targets, confident)) > loss


def test_no_smoothing_is_the_seeds_loss():
    assert loss_for(0.0) == "sparse_categorical_crossentropy"
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(6), size=(2, 4)).astype("float32")
    targets = rng.integers(0, 6, size=(2, 4))
    plain = keras.losses.SparseCategoricalCrossentropy()(targets, probabilities)
    assert float(SmoothedSparseCrossentropy(0.0)(targets, probabilities)) == pytest.approx(
        float(plain), rel=1e-6
    )


def test_smoothed_loss_counts_real_characters_only():
    model = build_model(12, 14, latent_dim=16)
    compile_model(model, TrainParams(label_smoothing=0.2))
    encoder_ids = np.array([[4, 5]], dtype=np.int32)
    decoder_ids = np.array([[1, 4]], dtype=np.int32)
    targets = np.array([[4, 2]], dtype=np.int32)
    probabilities = np.asarray(model.predict([encoder_ids, decoder_ids], verbose=0))[0]
    smoothed = _smoothed(targets[0], 0.2, 14)
    expected = -np.mean(np.sum(smoothed * np.log(probabilities), axis=-1))
    pad = ((0, 0), (0, 3))
    loss, _ = model.evaluate(
        [np.pad(encoder_ids, pad), np.pad(decoder_ids, pad)], np.pad(targets, pad), verbose=0
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_a_saved_model_reloads_its_schedule_and_loss_in_safe_mode(tmp_path):
    params = TrainParams(
        optimizer="adamw", schedule="inverse_sqrt", warmup_steps=7, label_smoothing=0.1
    )
    model = build_model(12, 14, latent_dim=8)
    compile_model(model, params)
    ids = np.array([[4, 5, 6]], dtype=np.int32)
    model.train_on_batch([ids, ids], ids)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.optimizer) is keras.optimizers.AdamW
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, InverseSqrtSchedule)
    assert schedule.get_config() == {"learning_rate": 0.001, "warmup_steps": 7}
    assert isinstance(loaded.loss, SmoothedSparseCrossentropy)
    assert loaded.loss.label_smoothing == 0.1
    assert int(loaded.optimizer.iterations) == 1
