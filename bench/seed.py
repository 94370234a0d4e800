"""The seed's way, as the Keras example wrote it, for side-by-side measurement.

One-hot float32 arrays of shape (pairs, longest sentence, vocabulary), padded with the one-hot
space character; "\\t" starts and "\\n" ends a target; `model.fit` on the arrays with categorical
cross-entropy; inference with an encoder model and a one-step decoder model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from charmt.data.pairs import Pair

START, END, SPACE = "\t", "\n", " "


class SeedData:
    """The seed's vocabularies and lengths, built from ``pairs``.

    The seed built them from all its data; the benchmark passes the train split only, as charmt
    builds its vocabularies, so both ways pad to the same longest training sentence.
    """

    def __init__(self, pairs: Sequence[Pair]) -> None:
        sources = [p.source for p in pairs]
        targets = [START + p.target + END for p in pairs]
        self.input_chars = sorted(set("".join(sources)) | {SPACE})
        self.target_chars = sorted(set("".join(targets)) | {SPACE})
        self.input_index = {c: i for i, c in enumerate(self.input_chars)}
        self.target_index = {c: i for i, c in enumerate(self.target_chars)}
        self.max_encoder_length = max(len(s) for s in sources)
        self.max_decoder_length = max(len(t) for t in targets)

    def arrays(self, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """encoder_input, decoder_input, decoder_target: dense one-hot, space-padded.

        For pairs outside the data the vocabularies came from (validation), an unseen character
        becomes a space and a sentence longer than the arrays is cut to fit.
        """
        n = len(pairs)
        encoder_input = np.zeros((n, self.max_encoder_length, len(self.input_chars)), "float32")
        decoder_input = np.zeros((n, self.max_decoder_length, len(self.target_chars)), "float32")
        decoder_target = np.zeros_like(decoder_input)
        space_in, space_out = self.input_index[SPACE], self.target_index[SPACE]
        for i, pair in enumerate(pairs):
            source = pair.source[: self.max_encoder_length]
            target = (START + pair.target + END)[: self.max_decoder_length]
            for t, char in enumerate(source):
                encoder_input[i, t, self.input_index.get(char, space_in)] = 1.0
            encoder_input[i, len(source) :, space_in] = 1.0
            for t, char in enumerate(target):
                decoder_input[i, t, self.target_index.get(char, space_out)] = 1.0
                if t > 0:
                    decoder_target[i, t - 1, self.target_index.get(char, space_out)] = 1.0
            decoder_input[i, len(target) :, self.target_index[SPACE]] = 1.0
            decoder_target[i, len(target) - 1 :, self.target_index[SPACE]] = 1.0
        return encoder_input, decoder_input, decoder_target


def build_seed_model(
    data: SeedData, latent_dim: int, optimizer: keras.optimizers.Optimizer
) -> keras.Model:
    """The seed's model, compiled with ``optimizer`` (charmt's, for like-for-like training)."""
    encoder_inputs = keras.Input(shape=(None, len(data.input_chars)))
    _, state_h, state_c = keras.layers.LSTM(latent_dim, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, len(data.target_chars)))
    decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_outputs = keras.layers.Dense(len(data.target_chars), activation="softmax")(
        decoder_outputs
    )
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(
        optimizer=optimizer,
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def seed_inference_models(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The seed's encoder model and one-step decoder model, from the trained layers."""
    encoder_inputs = model.input[0]
    _, state_h, state_c = model.layers[2].output
    encoder_model = keras.Model(encoder_inputs, [state_h, state_c])
    latent_dim = state_h.shape[-1]
    decoder_inputs = model.input[1]
    state_h_in = keras.Input(shape=(latent_dim,))
    state_c_in = keras.Input(shape=(latent_dim,))
    decoder_lstm, decoder_dense = model.layers[3], model.layers[4]
    outputs, h, c = decoder_lstm(decoder_inputs, initial_state=[state_h_in, state_c_in])
    decoder_model = keras.Model(
        [decoder_inputs, state_h_in, state_c_in], [decoder_dense(outputs), h, c]
    )
    return encoder_model, decoder_model


def seed_decode(model: keras.Model, data: SeedData, sources: Sequence[str]) -> list[str]:
    """The seed's greedy decoding, stepping all sentences together (rows are independent).

    Same output as the seed's sentence-at-a-time loop, far fewer `predict` calls: used to score the
    seed's model on a whole test split. Characters unseen by the seed's vocabulary become spaces.
    """
    encoder_model, decoder_model = seed_inference_models(model)
    n = len(sources)
    encoder_input = np.zeros((n, data.max_encoder_length, len(data.input_chars)), "float32")
    for i, source in enumerate(sources):
        source = source[: data.max_encoder_length]
        for t, char in enumerate(source):
            encoder_input[i, t, data.input_index.get(char, data.input_index[SPACE])] = 1.0
        encoder_input[i, len(source) :, data.input_index[SPACE]] = 1.0
    state_h, state_c = encoder_model.predict(encoder_input, verbose=0, batch_size=1024)
    token = np.zeros((n, 1, len(data.target_chars)), "float32")
    token[:, 0, data.target_index[START]] = 1.0
    outputs = [""] * n
    done = np.zeros(n, bool)
    for _ in range(data.max_decoder_length):
        probabilities, state_h, state_c = decoder_model.predict(
            [token, state_h, state_c], verbose=0, batch_size=1024
        )
        chosen = probabilities[:, -1, :].argmax(axis=-1)
        for i, index in enumerate(chosen):
            if not done[i]:
                char = data.target_chars[index]
                if char == END:
                    done[i] = True
                else:
                    outputs[i] += char
        if done.all():
            break
        token = np.zeros_like(token)
        token[np.arange(n), 0, chosen] = 1.0
    return outputs
