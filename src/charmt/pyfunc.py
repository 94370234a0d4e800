"""The MLflow ``translator`` model: English strings in, French strings out.

Built from MLflow artifacts (the saved ``models/`` directory), never from pickled objects: MLflow
logs this file as "model from code" and runs it when loading, and ``load_context`` loads the Keras
model with Keras' safe mode in whatever process serves it.
"""

from __future__ import annotations

from typing import Any

import mlflow.models
import mlflow.pyfunc

ARTIFACT = "translator"


class TranslatorModel(mlflow.pyfunc.PythonModel):
    """English strings in, French strings out: ``predict(["Go."]) -> ["Va !"]``.

    The type hints of ``predict`` give the model its ``[string] -> [string]`` signature; the
    logged input example adds the one param, ``beam_width`` (1, the default: greedy decoding).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from charmt.translator import Translator

        self.translator = Translator.load(context.artifacts[ARTIFACT])

    def predict(self, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
        beam_width = int((params or {}).get("beam_width", 1))
        return self.translator.translate(model_input, beam_width=beam_width)


# Models from code: this is the object MLflow serves when it loads the logged file.
mlflow.models.set_model(TranslatorModel())
