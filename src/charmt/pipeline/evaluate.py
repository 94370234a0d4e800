"""The evaluate stage: the trained model decodes the test split once (greedy, or beam search),
scored; the figures and every sentence are logged into the model's MLflow run; the model is
registered and the ``champion`` alias moves when it beats the current champion
(``charmt.pipeline.promotion``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charmt.params import EvaluateParams, read

if TYPE_CHECKING:
    from charmt.data.pairs import Pair
    from charmt.evaluation.scoring import Evaluation
    from charmt.inference.translator import Translator

# The params.yaml sections the stage reads.
SECTIONS = ("evaluate", "tracking", "registry")


@dataclass(frozen=True)
class Outputs:
    """Where the stage writes: the figures (JSON), every test sentence (TSV), the registry's
    decision (JSON)."""

    metrics: Path
    samples: Path
    promotion: Path


def run(params_file: str | os.PathLike[str], prepared: Path, model: Path, outputs: Outputs) -> None:
    """Read the stage's params, then evaluate the model saved in ``model`` on the test split of
    ``prepared``, log, promote, and write ``outputs``."""
    params = read(params_file, *SECTIONS)
    options: EvaluateParams = params["evaluate"]

    # Imported once the params are known to be good: a mistake fails before TensorFlow loads.
    import mlflow

    from charmt import tracking
    from charmt.data.prepared import load_split
    from charmt.evaluation.scoring import SAMPLE_COLUMNS, evaluate
    from charmt.inference.translator import Translator
    from charmt.io.atomic import write_json, write_table
    from charmt.pipeline import promotion as policy

    tracking.check_reachable()
    translator = Translator.load(model)
    test_pairs = load_split(prepared, "test")
    run_id = tracking.read_run_id(model)  # before the evaluation, so a bad one fails fast
    result = evaluate(
        translator,
        test_pairs,
        batch_size=options.batch_size,
        length_margin=options.length_margin,
        beam_width=options.beam_width,
        length_alpha=options.length_alpha,
    )
    write_table(outputs.samples, result.samples, SAMPLE_COLUMNS, delimiter="\t")
    write_json(outputs.metrics, result.metrics)

    logged_params = tracking.flatten({"evaluate": options.model_dump()})
    with tracking.evaluation_run(params["tracking"].experiment_name, run_id, logged_params):
        tracking.write(mlflow.log_params, logged_params)
        tracking.write(mlflow.set_tag, "decoding", result.metrics["decoding"])
        tracking.log_summary(result.metrics)
        tracking.log_artifact(outputs.samples)
        score = _promotion_score(translator, options, result, test_pairs)
        decision = policy.promote(
            run_id, params["registry"].model_name, score, test_pairs, result.metrics
        )
        policy.log_promotion(decision)
    write_json(outputs.promotion, decision.as_dict())
    print(json.dumps(result.metrics, indent=2))
    print(decision.decision)


def _promotion_score(
    translator: Translator, options: EvaluateParams, result: Evaluation, test_pairs: list[Pair]
) -> float:
    """The model's ``PRIMARY_METRIC`` on the test split as every version is scored: with the
    served model's default decoding. That is the evaluation's own decoding unless evaluate's
    options differ from the defaults (beam search, another batch size or length margin); only
    then is the test split decoded a second time."""
    from charmt.inference.translator import DEFAULT_BATCH_SIZE, DEFAULT_LENGTH_MARGIN
    from charmt.pipeline.promotion import primary_of, primary_score

    served_default = (
        options.beam_width == 1
        and options.batch_size == DEFAULT_BATCH_SIZE
        and options.length_margin == DEFAULT_LENGTH_MARGIN
    )
    if served_default:
        return primary_of(result.scored)
    return primary_score(translator.translate, test_pairs)
