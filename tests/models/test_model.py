"""The model: masked padding, the inference models sharing its layers, input dropout."""

import numpy as np
import pytest
from keras import layers
from tiny_task import reversal_pairs

from charmt.data.pairs import build_vocabularies
from charmt.errors import CharmtError
from charmt.inference.translator import Translator
from charmt.models import attention, keras_example, transformer
from charmt.models.architectures import BY_NAME, architecture_of, build_model
from charmt.models.keras_example import decoder_step_model, encoder_model
from charmt.models.optimization import compile_model
from charmt.params import ARCHITECTURES, ModelParams, TrainParams
from charmt.training.fit import train_model


@pytest.fixture(scope="module")
def model():
    model = build_model(12, 14, latent_dim=16)
    compile_model(model)
    return model


def test_extra_padding_changes_neither_loss_nor_encoder_states(model):
    encoder_ids = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], dtype=np.int32)
    decoder_ids = np.array([[1, 4, 5, 6], [1, 7, 0, 0]], dtype=np.int32)
    targets = np.array([[4, 5, 6, 2], [7, 2, 0, 0]], dtype=np.int32)
    more = ((0, 0), (0, 5))

    loss, accuracy = model.evaluate([encoder_ids, decoder_ids], targets, verbose=0)
    padded_loss, padded_accuracy = model.evaluate(
        [np.pad(encoder_ids, more), np.pad(decoder_ids, more)], np.pad(targets, more), verbose=0
    )
    assert padded_loss == pytest.approx(loss, rel=1e-6)
    assert padded_accuracy == pytest.approx(accuracy, rel=1e-6)

    encoder = encoder_model(model)
    for state, padded_state in zip(
        encoder(encoder_ids), encoder(np.pad(encoder_ids, more)), strict=True
    ):
        np.testing.assert_allclose(np.asarray(state), np.asarray(padded_state), rtol=1e-6)


def test_loss_counts_real_characters_only(model):
    # Two rows: the second is the first plus padding in the targets. If padding were scored, the
    # mean loss of the padded batch would differ from the unpadded one.
    encoder_ids = np.array([[4, 5]], dtype=np.int32)
    decoder_ids = np.array([[1, 4]], dtype=np.int32)
    targets = np.array([[4, 2]], dtype=np.int32)
    probabilities = np.asarray(model.predict([encoder_ids, decoder_ids], verbose=0))
    expected = -np.mean(np.log(probabilities[0, [0, 1], [4, 2]]))
    loss, _ = model.evaluate(
        [np.pad(encoder_ids, ((0, 0), (0, 3))), np.pad(decoder_ids, ((0, 0), (0, 3)))],
        np.pad(targets, ((0, 0), (0, 3))),
        verbose=0,
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_inference_models_share_the_trained_layers(model):
    encoder, step = encoder_model(model), decoder_step_model(model)
    assert encoder.get_layer("encoder_lstm") is model.get_layer("encoder_lstm")
    assert step.get_layer("decoder_lstm") is model.get_layer("decoder_lstm")
    # One step from the encoder's states equals the training model's first output.
    encoder_ids = np.array([[4, 5, 6]], dtype=np.int32)
    start = np.array([[1]], dtype=np.int32)
    states = [np.asarray(s) for s in encoder(encoder_ids)]
    probabilities, _, _ = step.predict([start, *states], verbose=0)
    full = model.predict([encoder_ids, start], verbose=0)
    np.testing.assert_allclose(probabilities, full, rtol=1e-5, atol=1e-7)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(CharmtError, match="training_precision"):
        build_model(5, 5, 4, precision="float8")


DROPOUT = {
    "keras_example": ModelParams(dropout=0.3),
    "attention": ModelParams(architecture="attention", dropout=0.3),
    "attention-bidirectional": ModelParams(
        architecture="attention", bidirectional=True, dropout=0.3
    ),
}


def _lstms(model):
    for layer in model.layers:
        if isinstance(layer, layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        elif isinstance(layer, layers.LSTM):
            yield layer


@pytest.mark.parametrize("model_params", DROPOUT.values(), ids=DROPOUT.keys())
def test_dropout_is_on_each_lstms_inputs_only_and_read_back(model_params):
    model = build_model(12, 14, latent_dim=16, model_params=model_params)
    lstms = list(_lstms(model))
    assert len(lstms) == (3 if model_params.bidirectional else 2)
    # recurrent_dropout 0 keeps the fused cuDNN kernel usable on a GPU.
    assert all((lstm.dropout, lstm.recurrent_dropout) == (0.3, 0) for lstm in lstms)
    assert architecture_of(model) == model_params
    assert architecture_of(build_model(12, 14, latent_dim=16)).dropout == 0

    encoder_ids = np.array([[4, 5, 6, 7]], dtype=np.int32)
    decoder_ids = np.array([[1, 4, 5, 6]], dtype=np.int32)
    inference = [np.asarray(model([encoder_ids, decoder_ids])) for _ in range(2)]
    training = np.asarray(model([encoder_ids, decoder_ids], training=True))
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(training, inference[0])


def test_a_model_trained_with_dropout_saves_and_translates_without_it(tmp_path):
    pairs = reversal_pairs(120, seed=2)
    train, validation = pairs[20:], pairs[:20]
    vocabularies = build_vocabularies(train)
    model_params = ModelParams(architecture="attention", dropout=0.5)
    params = TrainParams(latent_dim=16, batch_size=16, epochs=2, seed=1)
    result = train_model(
        train, validation, vocabularies, params, verbose=0, model_params=model_params
    )
    translator = Translator.from_training(result.model, vocabularies, train)
    translator.save(tmp_path / "model")
    loaded = Translator.load(tmp_path / "model")  # checks model.json against the layers
    assert architecture_of(loaded.model) == model_params
    sources = [p.source for p in validation]
    # Decoding runs the cells with training=False: no dropout, the same output every time.
    assert (
        loaded.translate(sources) == translator.translate(sources) == translator.translate(sources)
    )


def test_every_architecture_of_the_params_is_registered_under_its_name():
    """params.yaml's names (charmt.params, no TensorFlow) and the registry's stay one list."""
    assert tuple(BY_NAME) == tuple(ARCHITECTURES)
    modules = (keras_example, attention, transformer)
    assert [module.ARCHITECTURE for module in modules] == list(BY_NAME.values())


@pytest.mark.parametrize(
    "model_params",
    [
        ModelParams(),
        ModelParams(architecture="attention", attention="additive", bidirectional=True),
        ModelParams(architecture="transformer", layers=1, width=8, heads=2, feed_forward=16),
    ],
    ids=["keras_example", "attention", "transformer"],
)
def test_each_model_is_recognised_by_its_own_architecture_only(model_params):
    model = build_model(12, 14, latent_dim=16, model_params=model_params)
    assert [name for name, kind in BY_NAME.items() if kind.recognises(model)] == [
        model_params.architecture
    ]
    assert architecture_of(model) == model_params
