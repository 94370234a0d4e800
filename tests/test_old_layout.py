"""A translator logged to MLflow before src/charmt moved into layers still loads: in a fresh
process, and in a process that has already imported today's charmt, as the evaluate stage has
when it re-scores an older champion (charmt.pipeline.registry).

Such a model carries the flat charmt package it was logged with (``code_paths``) and that
package's pyfunc.py. The flat package is rebuilt here from today's files (``flat_copy``): each
module back at its old name, its imports written back. The move changed where code lives, not
what it does, so this is the package a model logged then carries.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import PROJECT, python_json

pytestmark = pytest.mark.e2e  # child processes that load TensorFlow

# Each module of the flat layout and where it is now, under charmt.
MOVED = {
    "atomic": "io.atomic",
    "paths": "io.paths",
    "processes": "io.processes",
    "data": "data.pairs",
    "vocab": "data.vocabulary",
    "download": "data.download",
    "batches": "data.batches",
    "model": "models.model",
    "transformer": "models.transformer",
    "optimization": "models.optimization",
    "modeldir": "models.modeldir",
    "decoding": "inference.decoding",
    "translator": "inference.translator",
    "metrics": "evaluation.metrics",
    "evaluation": "evaluation.scoring",
    "training": "training.fit",
    "selection": "training.selection",
    "checkpoint": "training.checkpoint",
    "pyfunc": "serving.pyfunc",
    "registry": "pipeline.registry",
    "train_stage": "pipeline.train",
    "codedeps": "pipeline.codedeps",
    "cli": "cli.main",
    "ui": "cli.ui",
    "console": "cli.console",
}


def flat_copy(directory: Path) -> Path:
    """src/charmt as it was laid out before the move, in ``directory/charmt``; ``directory``."""
    root = directory / "charmt"
    shutil.copytree(PROJECT / "src/charmt", root, ignore=shutil.ignore_patterns("__pycache__"))
    for old, new in MOVED.items():
        (root / f"{new.replace('.', '/')}.py").rename(root / f"{old}.moved")
    for package in {new.split(".")[0] for new in MOVED.values()}:
        shutil.rmtree(root / package)
    for moved in root.glob("*.moved"):
        moved.replace(moved.with_suffix(".py"))
    by_length = sorted(MOVED.items(), key=lambda item: -len(item[1]))
    module_import = re.compile(
        r"from charmt\.(\w+) import (\w+)\b"
    )  # ``from charmt.evaluation import metrics``: a moved module imported from its package
    dotted = re.compile(r"\bcharmt\.(" + "|".join(re.escape(n) for _, n in by_length) + r")\b")
    flat = {new: old for old, new in MOVED.items()}

    def module_back(match: re.Match[str]) -> str:
        new = f"{match.group(1)}.{match.group(2)}"
        return f"from charmt import {flat[new]}" if new in flat else match.group(0)

    for file in root.rglob("*.py"):
        text = module_import.sub(module_back, file.read_text())
        file.write_text(dotted.sub(lambda m: f"charmt.{flat[m.group(1)]}", text))
    return directory


# Logs the session's trained translator with the flat package, as the train stage did then.
LOG_WITH_THE_FLAT_LAYOUT = """
import json
import sys
from pathlib import Path
import mlflow
import charmt
from charmt import tracking
from charmt.translator import Translator

assert Path(charmt.__file__).parent == Path(sys.argv[2]), charmt.__file__
with mlflow.start_run() as run:
    tracking.log_trained_model(Translator.load(sys.argv[1]), Path(sys.argv[1]), skip=["model"])
print(json.dumps(run.info.run_id))
"""

# Loads the logged translator and translates; first imports today's charmt when asked to.
LOAD_AND_TRANSLATE = """
import json, sys
if sys.argv[2] == "after-charmt":
    import charmt.inference.translator, charmt.pipeline.registry
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps({"translations": list(model.predict(json.loads(sys.argv[3]))),
                  "translator": sys.modules["charmt.translator"].__file__}))
"""


def test_a_translator_logged_before_the_move_loads_fresh_and_beside_todays_charmt(
    trained, mlflow_store, tmp_path
):
    flat = flat_copy(tmp_path / "flat")
    run_id = python_json(
        LOG_WITH_THE_FLAT_LAYOUT,
        str(trained.model_dir),
        str(flat / "charmt"),
        store=mlflow_store,
        PYTHONPATH=str(flat),
    )
    uri = f"runs:/{run_id}/translator"
    sources = [pair.source for pair in trained.held_out[:5]]
    expected = trained.translator.translate(sources)

    fresh = python_json(LOAD_AND_TRANSLATE, uri, "fresh", json.dumps(sources), store=mlflow_store)
    assert fresh["translations"] == expected
    # The model's own flat copy: its charmt/translator.py holds the Translator itself.
    assert "inference" not in Path(fresh["translator"]).read_text()

    beside = python_json(
        LOAD_AND_TRANSLATE, uri, "after-charmt", json.dumps(sources), store=mlflow_store
    )
    assert beside["translations"] == expected
    # Today's charmt answered the old import path: src/charmt/translator.py.
    assert Path(beside["translator"]) == PROJECT / "src/charmt/translator.py"
