"""The registry and the champion policy (charmt.pipeline.promotion): every evaluated model becomes
a version; ``champion`` moves only to a better one,
judged by scoring the current champion on the same test pairs; the champion loads by name."""

import threading
from pathlib import Path

import mlflow
import pytest

from charmt import tracking
from charmt.cli import main as cli
from charmt.errors import CharmtError
from charmt.pipeline import promotion as policy
from charmt.serving.publish import log_trained_model

NAME = "charmt-test-translator"
EXPERIMENT = "charmt-test"


def small_model(trained, directory: Path, **params):
    """Another model of the same task, trained on the same pairs with ``params``, saved."""
    from charmt.inference.translator import Translator
    from charmt.training.fit import TrainParams, train_model

    vocabularies = trained.translator.vocabularies
    settings = TrainParams(batch_size=32, seed=5, **params)
    result = train_model(trained.train, trained.train[:50], vocabularies, settings, verbose=0)
    translator = Translator.from_training(result.model, vocabularies, trained.train)
    translator.save(directory / "models")
    return translator, directory / "models"


@pytest.fixture(scope="module")
def weak(trained, tmp_path_factory):
    """A poor model of the same task: one epoch, a tiny state. Saved as a models/ directory."""
    return small_model(
        trained, tmp_path_factory.mktemp("weak"), latent_dim=8, epochs=1, learning_rate=0.001
    )


def train_and_evaluate(translator, model_dir: Path, test_pairs) -> tuple[str, policy.Promotion]:
    """What the train and evaluate stages do with MLflow for a model already trained."""
    with tracking.start_run(EXPERIMENT) as run:
        # Only the translator is registered; the Keras model would only cost time here.
        log_trained_model(translator, model_dir, skip={"model"})
    score = policy.primary_score(translator.translate, test_pairs)
    evaluation = {"char_accuracy": score}
    with tracking.resume_run(EXPERIMENT, run.info.run_id):
        promotion = policy.promote(run.info.run_id, NAME, score, test_pairs, evaluation)
        policy.log_promotion(promotion)
    return run.info.run_id, promotion


def champion_version() -> int:
    return int(mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion").version)


def test_the_better_training_becomes_champion_the_worse_does_not(
    trained, weak, monkeypatch, capsys
):
    weak_translator, weak_dir = weak
    test_pairs = trained.held_out  # sources never seen in training
    strong_score = policy.primary_score(trained.translator.translate, test_pairs)
    weak_score = policy.primary_score(weak_translator.translate, test_pairs)
    assert strong_score > weak_score + 0.1, "the fixture models should differ clearly"

    # 1. A first, poor training: there is no champion yet, so it becomes one.
    _, first = train_and_evaluate(weak_translator, weak_dir, test_pairs)
    assert (first.version, first.promoted, first.champion_version) == (1, True, None)
    assert champion_version() == 1

    # 2. A better training: the champion is scored again on these pairs, and loses.
    monkeypatch.setenv("DVC_EXP_NAME", "better-exp")
    strong_run, second = train_and_evaluate(trained.translator, trained.model_dir, test_pairs)
    monkeypatch.delenv("DVC_EXP_NAME")
    assert (second.version, second.champion_version, second.promoted) == (2, 1, True)
    assert second.score == strong_score
    assert second.champion_score == weak_score
    assert champion_version() == 2

    # 3. A worse training after it: registered, but the alias stays.
    weak_run, third = train_and_evaluate(weak_translator, weak_dir, test_pairs)
    assert (third.version, third.champion_version, third.promoted) == (3, 2, False)
    assert (third.score, third.champion_score) == (weak_score, strong_score)
    assert "does not beat" in third.decision
    assert champion_version() == 2

    # The decision and both scores are in the evaluated run; provenance on the version.
    logged = mlflow.get_run(weak_run).data
    assert logged.metrics["promotion.promoted"] == 0.0
    assert logged.metrics["promotion.score"] == weak_score
    assert logged.metrics["promotion.champion_score"] == strong_score
    assert logged.tags["promotion.decision"] == third.decision
    version = mlflow.MlflowClient().get_model_version(NAME, "2")
    assert version.run_id == strong_run
    assert version.tags["char_accuracy"] == str(strong_score)
    assert len(version.tags["git_commit"]) == 40
    assert version.tags["dvc_experiment"] == "better-exp"

    # Evaluating a run again keeps its one version.
    with tracking.resume_run(EXPERIMENT, strong_run):
        again = policy.promote(strong_run, NAME, strong_score, test_pairs, {})
    assert (again.version, again.promoted) == (2, False)
    assert len(mlflow.MlflowClient().search_model_versions(f"name = '{NAME}'")) == 3

    # Anyone loads the champion by name, and gets the better model's translations.
    sources = sorted({pair.source for pair in test_pairs})
    capsys.readouterr()
    cli.main(["translate", "--model", f"models:/{NAME}@champion", *sources])
    printed = capsys.readouterr().out.splitlines()
    assert printed == trained.translator.translate(sources)
    assert printed != weak_translator.translate(sources)


def test_registration_off_registers_nothing(trained):
    with tracking.start_run(EXPERIMENT) as run:
        promotion = policy.promote(run.info.run_id, None, 0.0, [], {})
    assert (promotion.model_name, promotion.version, promotion.promoted) == (None, None, False)
    assert "off" in promotion.decision
    assert mlflow.search_registered_models() == []


def _logged_run(translator, model_dir: Path) -> str:
    with tracking.start_run(EXPERIMENT) as run:
        log_trained_model(translator, model_dir, skip={"model"})
    return run.info.run_id


def test_only_a_completely_logged_translator_is_registered(trained):
    """A translator whose logging was cut short stays PENDING; registration never takes it."""
    run_id = _logged_run(trained.translator, trained.model_dir)
    run = mlflow.get_run(run_id)
    (ready,) = tracking.ready_models(run, "translator")
    # A newer, half-logged translator of the same run (an interrupt while logging it again).
    pending = mlflow.initialize_logged_model(
        name="translator", source_run_id=run_id, experiment_id=run.info.experiment_id
    )
    assert str(pending.status) != "READY"
    version = tracking.register_version(run_id, NAME, {})
    assert version.source == f"models:/{ready.model_id}"

    # A run with no READY translator at all is refused, saying what to do.
    with tracking.start_run(EXPERIMENT) as half:
        mlflow.initialize_logged_model(
            name="translator", source_run_id=half.info.run_id, experiment_id=half.info.experiment_id
        )
    with pytest.raises(CharmtError, match=r"no completely logged 'translator'.*log-training"):
        tracking.register_version(half.info.run_id, NAME, {})


@pytest.fixture(scope="module")
def medium(trained, tmp_path_factory):
    """A model between ``weak`` and ``trained``: a few epochs of a small state."""
    return small_model(
        trained, tmp_path_factory.mktemp("medium"), latent_dim=24, epochs=6, learning_rate=0.005
    )


def test_parallel_promotions_leave_the_best_as_champion_whatever_the_interleaving(
    trained, weak, medium, monkeypatch
):
    """Two evaluations that both beat the champion read the registry, then both move the alias;
    the worse one writes last. The champion must still end on the better one."""
    test_pairs = trained.held_out
    scores = {
        "weak": policy.primary_score(weak[0].translate, test_pairs),
        "medium": policy.primary_score(medium[0].translate, test_pairs),
        "strong": policy.primary_score(trained.translator.translate, test_pairs),
    }
    assert scores["weak"] < scores["medium"] < scores["strong"], scores
    train_and_evaluate(*weak, test_pairs)  # version 1, the champion both evaluations beat
    runs = {
        "medium": _logged_run(*medium),
        "strong": _logged_run(trained.translator, trained.model_dir),
    }

    # Each evaluation's first move of the alias waits until both have decided (a barrier
    # between the read and the write, outside the store lock that the write takes); then the
    # strong one writes first and the medium one last.
    decided = threading.Barrier(2, timeout=120)
    strong_wrote = threading.Event()
    first_move = threading.local()
    write = tracking.write

    def interleaved(action, *args, **kwargs):
        if getattr(action, "__name__", "") != "set_registered_model_alias":
            return write(action, *args, **kwargs)
        who = threading.current_thread().name
        if not getattr(first_move, "done", False):
            first_move.done = True
            decided.wait()
            if who == "medium":
                assert strong_wrote.wait(120)
        result = write(action, *args, **kwargs)
        if who == "strong":
            strong_wrote.set()
        return result

    monkeypatch.setattr(tracking, "write", interleaved)
    promotions, errors = {}, []

    def evaluate(who: str) -> None:
        try:
            promotions[who] = policy.promote(
                runs[who], NAME, scores[who], test_pairs, {"char_accuracy": scores[who]}
            )
        except BaseException as error:  # reported below, with the thread's name
            errors.append(f"{who}: {error!r}")
            decided.abort()

    threads = [threading.Thread(target=evaluate, args=(who,), name=who) for who in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    strong_version = promotions["strong"].version
    assert champion_version() == strong_version
    # Every version carries its score on this split; the champion is the best of them.
    tag = policy.SCORE_TAG + policy.split_digest(test_pairs)
    tagged = {
        int(v.version): float(v.tags[tag])
        for v in mlflow.MlflowClient().search_model_versions(f"name = '{NAME}'")
    }
    assert max(tagged, key=lambda v: (tagged[v], -v)) == strong_version
    assert promotions["strong"].promoted
