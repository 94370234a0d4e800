"""The MLflow ``translator`` model: English strings in, French strings out.

Built from MLflow artifacts (the saved ``models/`` directory), never from pickled objects: MLflow
logs this file as "model from code" and runs it when loading, and ``load_context`` loads the Keras
model with Keras' safe mode in whatever process serves it.

A request is checked before any work, and refused with a message that says what was wrong (an
``MlflowException`` with INVALID_PARAMETER_VALUE, which ``mlflow models serve`` answers with HTTP
400 while it keeps serving):

- ``beam_width`` (a param; 1, the default, is greedy decoding) from 1 to ``MAX_BEAM_WIDTH``;
- at most ``MAX_SENTENCES`` sentences per request, and at least one;
- each sentence a string of at most ``MAX_CHARACTERS`` characters;
- no control characters (tabs, newlines, NUL, ...: one request line is one sentence);
- only characters the model saw in training, once normalised to NFC as training text was (a
  decomposed 'é' is the 'é' of training): anything else would be read as "unknown" and give a
  translation that looks fine and is not. (``charmt translate`` on a ``models/`` directory
  translates such sentences anyway, with a warning on stderr; a served client would see no
  warning.)
"""

from __future__ import annotations

import unicodedata
from typing import Any

import mlflow.models
import mlflow.pyfunc
from mlflow.exceptions import MlflowException

from charmt.params import is_beam_width
from charmt.text import normalize

ARTIFACT = "translator"
# Bounds on one request, so that a client cannot make the server run out of memory or time: a
# larger job is split into several requests. Training sentences are far shorter (the default data
# has English sentences of at most 16 characters; the whole Tatoeba file, a few hundred).
MAX_SENTENCES = 1024
MAX_CHARACTERS = 1000
# Beam search costs about beam_width times greedy decoding; wider beams gain nothing here.
MAX_BEAM_WIDTH = 16
_CONTROL = ("Cc", "Cs")  # control characters and lone surrogates


def _refuse(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def check_request(sentences: Any, known: set[str]) -> list[str]:
    """``sentences``, normalised to NFC, if it is a request this model can answer; else an
    ``MlflowException`` (INVALID_PARAMETER_VALUE, HTTP 400) saying what is wrong and where."""

    if not isinstance(sentences, list):
        raise _refuse(
            f"expected a list of strings, got {type(sentences).__name__}; "
            'send {"inputs": ["Go.", "I\'m sorry."]}'
        )
    if not sentences:
        raise _refuse('no sentences to translate; send {"inputs": ["Go."]}')
    if len(sentences) > MAX_SENTENCES:
        raise _refuse(
            f"{len(sentences)} sentences in one request; at most {MAX_SENTENCES} are accepted: "
            "split them over several requests"
        )
    checked = []
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise _refuse(
                f"sentence {i} is {type(sentence).__name__} {sentence!r:.50}; every item must be "
                "a string"
            )
        if len(sentence) > MAX_CHARACTERS:
            raise _refuse(
                f"sentence {i} has {len(sentence)} characters; at most {MAX_CHARACTERS} are "
                "accepted (the model was trained on much shorter sentences)"
            )
        control = sorted({c for c in sentence if unicodedata.category(c) in _CONTROL})
        if control:
            codes = ", ".join(f"U+{ord(c):04X}" for c in control)
            raise _refuse(
                f"sentence {i} contains control characters ({codes}); send one sentence per "
                "item, without tabs or line breaks"
            )
        sentence = normalize(sentence)
        unknown = sorted(set(sentence) - known)
        if unknown:
            raise _refuse(
                f"sentence {i} contains characters never seen in training: {''.join(unknown)!r}; "
                "the translation would be unreliable. Remove or replace them"
            )
        checked.append(sentence)
    return checked


def check_beam_width(width: Any) -> int:
    """``width`` if it is a beam width the server accepts; else an ``MlflowException`` (400)."""
    if not is_beam_width(width, MAX_BEAM_WIDTH):
        raise _refuse(
            f"beam_width = {width!r}; must be an integer from 1 (greedy) to {MAX_BEAM_WIDTH}"
        )
    return width


class TranslatorModel(mlflow.pyfunc.PythonModel):
    """English strings in, French strings out: ``predict(["Go."]) -> ["Va !"]``.

    The type hints of ``predict`` give the model its ``[string] -> [string]`` signature; the
    logged input example adds the one param, ``beam_width`` (1, the default: greedy decoding).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from charmt.inference.translator import Translator

        self.translator = Translator.load(context.artifacts[ARTIFACT])
        self.known = set(self.translator.vocabularies.source.chars)

    def predict(self, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
        """Translations of ``model_input``, greedy or with ``params["beam_width"]``; a bad request
        raises an ``MlflowException`` (400)."""
        beam_width = check_beam_width((params or {}).get("beam_width", 1))
        return self.translator.translate(
            check_request(model_input, self.known), beam_width=beam_width
        )


# Models from code: this is the object MLflow serves when it loads the logged file.
mlflow.models.set_model(TranslatorModel())
