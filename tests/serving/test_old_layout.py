"""A translator logged to MLflow before src/charmt moved into layers still loads: in a fresh
process, and in a process that has already imported today's charmt, as the evaluate stage has
when it re-scores an older champion (charmt.pipeline.promotion).

Such a model carries the flat charmt package it was logged with (``code_paths``) and that
package's pyfunc.py. ``tests/serving/charmt-flat-layout.tar.gz`` is that package, frozen: src/charmt
at commit dfec453, the last of the flat layout, made with
``git archive --format=tar dfec453 src/charmt | gzip -9n``.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from commands import python_json
from projects import PROJECT

pytestmark = pytest.mark.e2e  # child processes that load TensorFlow

FROZEN = Path(__file__).parent / "charmt-flat-layout.tar.gz"


def written_before_the_rename(model_dir: Path, directory: Path) -> Path:
    """A copy of ``model_dir`` as charmt wrote it then: model.json named the Keras example's
    model ``seed`` (the flat layout knows no ``keras_example``). The digests in model.json cover
    the other files only, so they still match."""
    copy = directory / "models"
    shutil.copytree(model_dir, copy)
    info = json.loads((copy / "model.json").read_text())
    assert info["architecture"]["architecture"] == "keras_example"
    info["architecture"]["architecture"] = "seed"
    (copy / "model.json").write_text(json.dumps(info))
    return copy


def flat_copy(directory: Path) -> Path:
    """The frozen flat-layout charmt, unpacked: ``directory`` holds its ``charmt`` package."""
    with tarfile.open(FROZEN) as archive:
        archive.extractall(directory / "unpacked", filter="data")
    shutil.move(directory / "unpacked" / "src" / "charmt", directory / "charmt")
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
    import charmt.inference.translator, charmt.pipeline.promotion
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps({"translations": list(model.predict(json.loads(sys.argv[3]))),
                  "translator": sys.modules["charmt.translator"].__file__}))
"""


def test_a_translator_logged_before_the_move_loads_fresh_and_beside_todays_charmt(
    trained, mlflow_store, tmp_path
):
    flat = flat_copy(tmp_path / "flat")
    model_dir = written_before_the_rename(trained.model_dir, tmp_path)
    run_id = python_json(
        LOG_WITH_THE_FLAT_LAYOUT,
        str(model_dir),
        str(flat / "charmt"),
        store=mlflow_store,
        PYTHONPATH=str(flat),
    )
    uri = f"runs:/{run_id}/translator"
    sources = [pair.source for pair in trained.held_out[:5]]
    expected = trained.translator.translate(sources)

    fresh = python_json(LOAD_AND_TRANSLATE, uri, "fresh", json.dumps(sources), store=mlflow_store)
    assert fresh["translations"] == expected
    # The model's own flat copy answered, from the code it carries: not today's charmt.
    loaded = Path(fresh["translator"])
    assert loaded.parts[-3:] == ("code", "charmt", "translator.py"), loaded
    assert not loaded.is_relative_to(PROJECT)

    beside = python_json(
        LOAD_AND_TRANSLATE, uri, "after-charmt", json.dumps(sources), store=mlflow_store
    )
    assert beside["translations"] == expected
    # Today's charmt answered the old import path: src/charmt/translator.py.
    assert Path(beside["translator"]) == PROJECT / "src/charmt/translator.py"
