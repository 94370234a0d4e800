"""End to end, sharing through remotes: a bare git repository as the team's git remote and a
local-directory DVC remote, as a teammate's machine would see them.

- A fresh clone plus ``dvc pull`` has the prepared data and the model: ``charmt translate`` works
  at once and ``dvc repro`` has nothing to run.
- An experiment run in one clone and shared with ``dvc exp push`` + ``dvc push`` is listed with
  its params and metrics in another clone after ``dvc exp pull``, and ``dvc exp apply`` +
  ``dvc pull`` there restore its model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from commands import run, stdout_lines
from projects import TINY_PARAMS, git_commit, make_project, tiny_zip

pytestmark = pytest.mark.e2e

STAGES = ("download", "preprocess", "train", "evaluate")
EXPERIMENT = "longer-training"
EPOCHS = TINY_PARAMS["train"]["epochs"]


def ran(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def held_out_sources(project: Path) -> list[str]:
    """The distinct English sentences of the test split: never seen in training."""
    lines = (project / "data/prepared/test.tsv").read_text(encoding="utf-8").splitlines()
    return sorted({line.split("\t")[0] for line in lines if line})


def translate(project: Path, sentences: list[str]) -> list[str]:
    return stdout_lines(["charmt", "translate", *sentences], project)


def clone(origin: Path, directory: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(directory)], directory.parent)
    return directory


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> dict[str, Any]:
    """One teammate's project, run and published: git history to a bare repository (with
    dvc.lock, which pins every output) and data and models to a local-directory DVC remote."""
    root = tmp_path_factory.mktemp("remote")
    origin, storage = root / "origin.git", root / "dvc-storage"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(origin)], root)
    # Registration is not what this test is about: off, which also runs its null path.
    params = {**TINY_PARAMS, "registry": {"model_name": None}}
    # Download and preprocess already run and committed, as after a first `dvc repro`.
    project = make_project(root / "alice", tiny_zip(), params, prepared=True)
    run(["dvc", "remote", "add", "-d", "storage", str(storage)], project)
    run(["git", "remote", "add", "origin", str(origin)], project)

    assert ran(run(["dvc", "repro"], project)) == {"train", "evaluate"}
    git_commit(project, "Baseline run: dvc.lock and metrics")
    run(["git", "push", "-q", "origin", "HEAD:main"], project)
    run(["dvc", "push"], project)

    sentences = held_out_sources(project)
    return {
        "root": root,
        "origin": origin,
        "project": project,
        "sentences": sentences,
        "baseline": translate(project, sentences),
    }


def test_a_fresh_clone_pulls_data_and_model_and_translates_without_training(team):
    bob = clone(team["origin"], team["root"] / "bob")
    assert not (bob / "models").exists()
    run(["dvc", "pull"], bob)
    for output in ("data/raw/fra.txt", "data/prepared/test.tsv", "models/model.keras"):
        assert (bob / output).is_file(), output

    assert translate(bob, team["sentences"]) == team["baseline"]
    assert ran(run(["dvc", "repro"], bob)) == set()


def find_experiment(shown: Any, name: str) -> dict | None:
    """The ``dvc exp show --json`` record of experiment ``name``, wherever it nests."""
    if isinstance(shown, dict):
        if shown.get("name") == name and "data" in shown:
            return shown
        shown = list(shown.values())
    if isinstance(shown, list):
        for item in shown:
            found = find_experiment(item, name)
            if found:
                return found
    return None


def test_an_experiment_pushed_from_one_clone_is_listed_applied_and_used_in_another(team):
    alice = team["project"]
    epochs = EPOCHS + 4
    run(["dvc", "exp", "run", "-n", EXPERIMENT, "-S", f"train.epochs={epochs}"], alice)
    expected_metrics = json.loads((alice / "metrics/eval.json").read_text())
    expected = translate(alice, team["sentences"])
    assert expected != team["baseline"], "the experiment's model should translate differently"
    run(["dvc", "exp", "push", "origin", EXPERIMENT], alice)
    run(["dvc", "push"], alice)

    carol = clone(team["origin"], team["root"] / "carol")
    run(["dvc", "pull"], carol)
    assert translate(carol, team["sentences"]) == team["baseline"]

    run(["dvc", "exp", "pull", "origin", EXPERIMENT], carol)
    shown = json.loads("\n".join(stdout_lines(["dvc", "exp", "show", "--json"], carol)))
    record = find_experiment(shown, EXPERIMENT)
    assert record, f"{EXPERIMENT} not in dvc exp show:\n{json.dumps(shown)[:3000]}"
    params = record["data"]["params"]["params.yaml"]["data"]
    assert params["train"]["epochs"] == epochs
    metrics = record["data"]["metrics"]["metrics/eval.json"]["data"]
    assert metrics["char_accuracy"] == expected_metrics["char_accuracy"]

    run(["dvc", "exp", "apply", EXPERIMENT], carol)
    run(["dvc", "pull"], carol)
    assert yaml.safe_load((carol / "params.yaml").read_text())["train"]["epochs"] == epochs
    assert translate(carol, team["sentences"]) == expected


def test_the_model_artifact_is_fetched_by_name_and_translates_without_a_clone(team):
    """A version of the ``charmt-translator`` artifact is registered with a git tag in DVC's
    model-registry form (``<name>@v<semver>``, as ``gto register`` writes it) and pushed; then
    ``dvc artifacts get <repo> charmt-translator`` brings that model from the DVC remote into a
    directory that is no project at all, and it translates."""
    alice = team["project"]
    baseline = run(["git", "rev-parse", "HEAD"], alice).strip()
    tag = "charmt-translator@v1.0.0"
    run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "tag",
            "-a",
            tag,
            baseline,
            "-m",
            "Registering artifact charmt-translator version 1.0.0",
        ],
        alice,
    )
    run(["git", "push", "-q", "origin", tag], alice)

    service = team["root"] / "service"
    service.mkdir()
    run(
        ["dvc", "artifacts", "get", str(team["origin"]), "charmt-translator", "-o", "model"],
        service,
    )
    assert sorted(p.name for p in (service / "model").iterdir()) == [
        "mlflow_run.json",
        "model.json",
        "model.keras",
        "vocabularies.json",
    ]
    assert not (service / ".git").exists() and not (service / ".dvc").exists()
    translated = stdout_lines(
        ["charmt", "translate", "--model", "model", *team["sentences"]], service
    )
    assert translated == team["baseline"]
