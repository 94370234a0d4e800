"""The model registry: every evaluated translator becomes a version of one registered model, and
the alias ``champion`` marks the best of them, judged on the same test pairs.

The champion is the best version scored on *this* pipeline's test split. Each version carries
its score on every test split it was scored on, as the tag ``test_score.<split digest>``. Two
versions may have been evaluated on different splits (other data, other seeds), so their recorded
scores are not comparable: a champion with no score on this split is loaded and scored on the
same test pairs as the new version, with the same decoding, and tagged with it.

Promotion converges, so that it holds under parallel evaluations (``dvc queue start -j 2``) and
on a tracking server, where no file lock reaches: after tagging its version, each evaluation
points the alias at the best of all versions scored on its split (ties keep the older), then
reads the registry again and repeats while the alias is not on the best of what it now sees.
Whatever the interleaving, the last evaluation to move the alias sees every version registered
before it, so once all have finished the champion is the best of them.

The comparison uses ``char_accuracy`` (``charmt.evaluation.metrics``): exact matches are near zero
for this small model, and corpus BLEU is coarse on a few hundred short sentences, while
char_accuracy moves with every character a model gets right. A tie keeps the current champion.

Anyone then loads the champion by name: ``charmt translate --model models:/<name>@champion``,
``mlflow models serve -m models:/<name>@champion``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from charmt import tracking
from charmt.data.pairs import Pair, group_references
from charmt.errors import CharmtError
from charmt.evaluation import metrics

if TYPE_CHECKING:
    from charmt.inference.translator import Translator

CHAMPION = "champion"
PRIMARY_METRIC = "char_accuracy"
# The logged model that is registered: strings in, strings out (charmt.serving.pyfunc).
LOGGED_MODEL = tracking.TRANSLATOR_MODEL
# A version's PRIMARY_METRIC on one test split: this prefix and the split's digest.
SCORE_TAG = "test_score."
# Promotion re-reads the registry until the alias rests on the best version it sees; each round
# is needed only when another evaluation moved the alias or registered a version meanwhile.
MAX_ROUNDS = 20
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


def split_digest(test_pairs: Sequence[Pair]) -> str:
    """A short digest of a test split's pairs: versions scored on equal splits compare."""
    text = "".join(f"{pair.source}\t{pair.target}\n" for pair in test_pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _logged_translator_uri(run: mlflow.entities.Run) -> str:
    """The run's completely logged translator (newest first); never a half-logged one."""
    models = tracking.ready_models(run, LOGGED_MODEL)
    if not models:
        raise CharmtError(
            f"MLflow run {run.info.run_id} has no completely logged {LOGGED_MODEL!r} model (none "
            "is READY); if its training lost the tracking server or was interrupted while "
            "logging, run `charmt log-training` first"
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


def _split_score(version: ModelVersion, tag: str, test_pairs: Sequence[Pair]) -> float:
    """``version``'s score on this split: its tag, else scored now and tagged."""
    if tag in version.tags:
        return float(version.tags[tag])
    value = score(_load(f"models:/{version.name}/{version.version}"), test_pairs)
    client = mlflow.MlflowClient()
    tracking.write(client.set_model_version_tag, version.name, version.version, tag, str(value))
    return value


def _best_scored(name: str, tag: str) -> int:
    """The best version of ``name`` scored on the split of ``tag``; a tie keeps the older."""
    scored = {
        int(version.version): float(version.tags[tag])
        for version in mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
        if tag in version.tags
    }
    return max(scored, key=lambda number: (scored[number], -number))


def converge_champion(name: str, tag: str) -> int:
    """Point ``champion`` at the best version scored on ``tag``'s split, re-reading the registry
    after each move until the alias rests on the best of what it sees; that version."""
    client = mlflow.MlflowClient()
    for _ in range(MAX_ROUNDS):
        best = _best_scored(name, tag)
        current = current_champion(name)
        if current is not None and int(current.version) == best:
            return best
        tracking.write(client.set_registered_model_alias, name, CHAMPION, str(best))
    raise CharmtError(
        f"the {CHAMPION} alias of {name} kept moving for {MAX_ROUNDS} rounds while this "
        "evaluation promoted; re-run the evaluate stage once the other evaluations have finished"
    )


def promote(
    run_id: str,
    name: str | None,
    translator: Translator,
    test_pairs: Sequence[Pair],
    evaluation: Mapping[str, Any],
) -> Promotion:
    """Register run ``run_id``'s translator as a version of ``name``, score it on
    ``test_pairs`` and leave ``champion`` on the best version scored on them; the decision.
    ``name`` None: nothing.

    Needs the tracking URI configured (``charmt.tracking``). Every version is scored by
    :func:`score`, with the same default decoding the served model uses.
    """
    if name is None:
        return Promotion(None, decision="registration off (registry.model_name is null)")
    new_score = score(translator.translate, test_pairs)
    try:
        return _promote(run_id, name, new_score, test_pairs, evaluation)
    except MlflowException as error:
        if not tracking.permission_denied(error):
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user"
        return Promotion(
            name,
            score=new_score,
            decision=(
                f"not permitted: {user} may not register versions of {name} or move its "
                f"{CHAMPION} alias (HTTP 403); the run and its evaluation are complete, and a "
                f"maintainer promotes its model with `dvc repro -f -s evaluate`"
            ),
        )


def _promote(
    run_id: str,
    name: str,
    new_score: float,
    test_pairs: Sequence[Pair],
    evaluation: Mapping[str, Any],
) -> Promotion:
    tag = SCORE_TAG + split_digest(test_pairs)
    version = register(run_id, name, evaluation)
    number = int(version.version)
    client = mlflow.MlflowClient()
    tracking.write(client.set_model_version_tag, name, version.version, tag, str(new_score))
    before = current_champion(name)
    promotion = Promotion(name, number, score=new_score)
    if before is not None:
        promotion.champion_version = int(before.version)
        promotion.champion_score = (
            new_score if int(before.version) == number else _split_score(before, tag, test_pairs)
        )
    champion = converge_champion(name, tag)
    promotion.promoted = champion == number and promotion.champion_version != number
    if before is None:
        promotion.decision = f"version {number} is the first champion of {name}"
    elif int(before.version) == number:
        promotion.decision = f"version {number} is already the champion"
    else:
        verdict = "beats" if new_score > promotion.champion_score else "does not beat"
        promotion.decision = (
            f"version {number} ({PRIMARY_METRIC} {new_score}) {verdict} champion version "
            f"{before.version} ({promotion.champion_score}) on this test split"
        )
    if champion not in (number, promotion.champion_version):
        promotion.decision += (
            f"; the champion is now version {champion}, the best of the versions scored on "
            "this test split (evaluated meanwhile)"
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
