"""End to end: the real DVC pipeline on a tiny zip, in a throwaway copy of the project.

Runs `dvc repro` (all four stages), checks what each stage wrote and the MLflow run, that a second
`dvc repro` runs nothing, and that `dvc exp run --temp -S train.epochs=...` re-runs only train and
evaluate and logs a second MLflow run into the project's own store, not the temporary copy.
"""

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import PROJECT, reversal_pairs, subprocess_env

pytestmark = pytest.mark.e2e

STAGES = ("download", "preprocess", "train", "evaluate")


def run(command: list[str], cwd: Path) -> str:
    env = subprocess_env()
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's default store, as a user has it
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-5000:]}"
    return output


def ran(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC copy of the project whose data.url is a tiny zip with tiny params."""
    root = tmp_path_factory.mktemp("pipeline")
    lines = [f"{p.source}\t{p.target}\tCC-BY 2.0 (France) test" for p in reversal_pairs(300, 4)]
    lines += ["abc\tCBA\tsecond translation", "abc\tc-b-a\tthird translation"]
    with zipfile.ZipFile(root / "fra-eng.zip", "w") as archive:
        archive.writestr("fra.txt", "\n".join(lines) + "\n")
        archive.writestr("_about.txt", "test data")

    copy = root / "project"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(PROJECT / name, copy / name)
    for name in ("stages", "src", ".dvc"):
        shutil.copytree(PROJECT / name, copy / name, ignore=ignore)
    shutil.rmtree(copy / ".dvc" / "tmp", ignore_errors=True)
    shutil.rmtree(copy / ".dvc" / "cache", ignore_errors=True)

    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["data"].update(url=str(root / "fra-eng.zip"), num_samples=1000)
    params["train"].update(latent_dim=32, batch_size=32, epochs=3)
    params["evaluate"].update(batch_size=64)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"],
    ):
        run(command, copy)
    return copy


def test_repro_runs_every_stage_and_writes_every_output(project):
    output = run(["dvc", "repro"], project)
    assert ran(output) == set(STAGES)

    data = json.loads((project / "metrics/data.json").read_text())
    assert data["pairs_read"] == 302
    assert sum(data[s]["pairs"] for s in ("train", "validation", "test")) == 302

    history = (project / "metrics/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,val_loss,accuracy,val_accuracy,seconds,train_seconds"
    assert len(history) == 1 + 3

    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert set(evaluation) >= {
        "exact_match",
        "char_accuracy",
        "bleu",
        "chrf",
        "test_loss",
        "test_accuracy",
        "sentences_per_second",
        "test_sentences",
    }
    samples = (project / "metrics/samples.tsv").read_text().splitlines()
    assert samples[0].split("\t") == ["source", "output", "references", "exact", "char_accuracy"]
    assert len(samples) == 1 + evaluation["test_sentences"]

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    logged = mlflow.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == "3"
    assert logged.data.params["train.rho"] == "0.9"
    assert logged.data.metrics["exact_match"] == pytest.approx(evaluation["exact_match"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert "samples.tsv" in artifacts
    assert (project / "mlartifacts").is_dir()


def test_second_repro_runs_nothing(project):
    assert ran(run(["dvc", "repro"], project)) == set()


def test_exp_run_reruns_train_and_evaluate_and_logs_to_the_project_store(project):
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], project)
    output = run(["dvc", "exp", "run", "--temp", "-S", "train.epochs=2"], project)
    assert ran(output) == {"train", "evaluate"}

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["charmt"], output_format="list")
    assert sorted(r.data.params["train.epochs"] for r in runs) == ["2", "3"]
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags.get("dvc_experiment")
    assert "exact_match" in newest.data.metrics
