"""The champion policy: every evaluated translator becomes a version of one registered model, and
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

Registering a run's logged translator as a version is MLflow plumbing
(``charmt.tracking.registry``). Anyone then loads the champion by name:
``charmt translate --model models:/<name>@champion``,
``mlflow models serve -m models:/<name>@champion``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from charmt import tracking
from charmt.data.pairs import Pair
from charmt.errors import CharmtError
from charmt.evaluation.scoring import ScoredSplit, Translate, score_split

CHAMPION = "champion"
PRIMARY_METRIC = "char_accuracy"
# A version's PRIMARY_METRIC on one test split: this prefix and the split's digest.
SCORE_TAG = "test_score."
# Promotion re-reads the registry until the alias rests on the best version it sees; each round
# is needed only when another evaluation moved the alias or registered a version meanwhile.
MAX_ROUNDS = 20


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


def primary_score(translate: Translate, test_pairs: Sequence[Pair]) -> float:
    """``PRIMARY_METRIC`` of ``translate`` on ``test_pairs`` (``score_split``), as versions are
    compared: rounded to 4 digits."""
    return primary_of(score_split(translate, test_pairs, (PRIMARY_METRIC,)))


def primary_of(scored: ScoredSplit) -> float:
    """``PRIMARY_METRIC`` of a scored split, rounded as versions are compared."""
    return round(scored.scores[PRIMARY_METRIC], 4)


def split_digest(test_pairs: Sequence[Pair]) -> str:
    """A short digest of a test split's pairs: versions scored on equal splits compare."""
    text = "".join(f"{pair.source}\t{pair.target}\n" for pair in test_pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def current_champion(name: str) -> ModelVersion | None:
    """The version that holds the ``champion`` alias, or None."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in error.message.lower():
            return None
        raise


def _load(uri: str) -> Translate:
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
    value = primary_score(_load(f"models:/{version.name}/{version.version}"), test_pairs)
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
    new_score: float,
    test_pairs: Sequence[Pair],
    evaluation: Mapping[str, Any],
) -> Promotion:
    """Register run ``run_id``'s translator as a version of ``name`` with ``new_score``, its
    :func:`primary_score` on ``test_pairs``, and leave ``champion`` on the best version scored on
    them; the decision. ``name`` None: nothing.

    Needs the tracking URI configured (``charmt.tracking``). Every version is scored by
    :func:`primary_score`, with the same default decoding the served model uses.
    """
    if name is None:
        return Promotion(None, decision="registration off (registry.model_name is null)")
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
    version = tracking.register_version(run_id, name, evaluation)
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
