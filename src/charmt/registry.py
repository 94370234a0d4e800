"""The model registry: every evaluated translator becomes a version of one registered model, and
the alias ``champion`` marks the best of them, judged on the same test pairs.

The alias moves to a new version only when it beats the current champion on *this* pipeline's
test split. Two versions may have been evaluated on different splits (other data, other seeds),
so their recorded scores are not comparable: the current champion is loaded and scored again on
the same test pairs as the new version, with the same decoding, before they are compared.

The comparison uses ``char_accuracy`` (``charmt.metrics``): exact matches are near zero for this
small model, and corpus BLEU is coarse on a few hundred short sentences, while char_accuracy
moves with every character a model gets right. A tie keeps the current champion.

Anyone then loads the champion by name: ``charmt translate --model models:/<name>@champion``,
``mlflow models serve -m models:/<name>@champion``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from charmt import metrics, tracking
from charmt.data import Pair, group_references
from charmt.errors import CharmtError

if TYPE_CHECKING:
    from charmt.translator import Translator

CHAMPION = "champion"
PRIMARY_METRIC = "char_accuracy"
# The logged model that is registered: strings in, strings out (charmt.pyfunc).
LOGGED_MODEL = "translator"
# Provenance copied from the training run's tags onto the version.
PROVENANCE_TAGS = ("git_commit", "git_dirty", "dvc_experiment")


@dataclass
class Promotion:
    """What the registry step did: the content of ``metrics/promotion.json``."""

    model_name: str | None
    version: int | None = None
    metric: str = PRIMARY_METRIC
    score: float | None = None
    champion_version: int | None = None  # the champion before this decision
    champion_score: float | None = None  # that champion, scored on the same test pairs
    promoted: bool = False
    decision: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(translate: Callable[[list[str]], list[str]], test_pairs: Sequence[Pair]) -> float:
    """``char_accuracy`` of ``translate`` on the distinct test sources, against all references."""
    references = group_references(test_pairs)
    sources = list(references)
    outputs = list(translate(sources))
    return round(metrics.char_accuracy(outputs, [references[s] for s in sources]), 4)


def _logged_translator_uri(run: mlflow.entities.Run) -> str:
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND name = '{LOGGED_MODEL}'",
        output_format="list",
    )
    if not models:
        raise CharmtError(
            f"MLflow run {run.info.run_id} has no logged {LOGGED_MODEL!r} model; if its training "
            "lost the tracking server, run `charmt log-training` first"
        )
    return f"models:/{models[0].model_id}"


def register(run_id: str, name: str, evaluation: Mapping[str, Any]) -> ModelVersion:
    """The version of ``name`` holding run ``run_id``'s translator, registered if it is new.

    Tagged with the evaluation metrics and the training's git commit and DVC experiment. A run
    evaluated again (say, with another evaluate.batch_size) keeps its one version.
    """
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    tags = {key: str(value) for key, value in evaluation.items()}
    tags.update({key: run.data.tags[key] for key in PROVENANCE_TAGS if key in run.data.tags})
    existing = client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'")
    if existing:
        version = existing[0]
        for key, value in tags.items():
            tracking.write(client.set_model_version_tag, name, version.version, key, value)
        return client.get_model_version(name, version.version)
    return tracking.write(mlflow.register_model, _logged_translator_uri(run), name, tags=tags)


def current_champion(name: str) -> ModelVersion | None:
    """The version that holds the ``champion`` alias, or None."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in error.message.lower():
            return None
        raise


def _load(uri: str) -> Callable[[list[str]], list[str]]:
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as error:
        raise CharmtError(
            f"cannot load the current champion {uri} to compare with it ({error}); fix or "
            f"delete the alias (MlflowClient().delete_registered_model_alias) and re-run evaluate"
        ) from None
    return lambda sentences: list(model.predict(sentences))


def promote(
    run_id: str,
    name: str | None,
    translator: Translator,
    test_pairs: Sequence[Pair],
    evaluation: Mapping[str, Any],
) -> Promotion:
    """Register run ``run_id``'s translator as a version of ``name`` and move ``champion`` to it
    if it beats the current champion on ``test_pairs``; the decision. ``name`` None: nothing.

    Needs the tracking URI configured (``charmt.tracking``). Both models are scored by
    :func:`score` with the same default decoding the served model uses.
    """
    if name is None:
        return Promotion(None, decision="registration off (registry.model_name is null)")
    version = register(run_id, name, evaluation)
    number = int(version.version)
    champion = current_champion(name)
    new_score = score(translator.translate, test_pairs)
    promotion = Promotion(name, number, score=new_score)
    if champion is None:
        promotion.promoted = True
        promotion.decision = f"version {number} is the first champion of {name}"
    elif int(champion.version) == number:
        promotion.champion_version, promotion.champion_score = number, new_score
        promotion.decision = f"version {number} is already the champion"
    else:
        promotion.champion_version = int(champion.version)
        promotion.champion_score = score(_load(f"models:/{name}@{CHAMPION}"), test_pairs)
        promotion.promoted = new_score > promotion.champion_score
        verdict = "beats" if promotion.promoted else "does not beat"
        promotion.decision = (
            f"version {number} ({PRIMARY_METRIC} {new_score}) {verdict} champion version "
            f"{champion.version} ({promotion.champion_score}) on this test split"
        )
    if promotion.promoted:
        tracking.write(
            mlflow.MlflowClient().set_registered_model_alias, name, CHAMPION, str(number)
        )
    return promotion


def log_promotion(promotion: Promotion) -> None:
    """Record the decision and both scores in the active MLflow run (``promotion.*``)."""
    figures = {
        "promotion.score": promotion.score,
        "promotion.champion_score": promotion.champion_score,
        "promotion.promoted": float(promotion.promoted),
    }
    tracking.write(
        mlflow.log_metrics, {key: value for key, value in figures.items() if value is not None}
    )
    tags = {
        "promotion.model_name": promotion.model_name,
        "promotion.version": promotion.version,
        "promotion.champion_version": promotion.champion_version,
        "promotion.decision": promotion.decision,
    }
    tracking.write(
        mlflow.set_tags, {key: str(value) for key, value in tags.items() if value is not None}
    )
