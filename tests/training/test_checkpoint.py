"""Checkpoints on disk and their key: only the newest complete one is kept, a partial or a stale
one is never resumed, and the key changes with the params, the data and the code, saying which.

The fit loop's side (what a checkpoint holds, and that a resumed run ends as if it had never
stopped) is tests/training/test_resume.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from projects import PROJECT

from charmt.training.checkpoint import Checkpoints
from charmt.training.fingerprint import changed_inputs, fingerprint


def test_the_key_is_a_digest_of_the_inputs_and_the_change_is_said_in_words():
    code = {"charmt/a.py": "1", "charmt/b.py": "2"}
    inputs = {"train": {"epochs": 3}, "data": "ab12", "code": code}
    assert fingerprint(inputs) == fingerprint(dict(reversed(inputs.items())))
    assert len(fingerprint(inputs)) == 16
    edited = {**inputs, "train": {"epochs": 4}, "code": {**code, "charmt/b.py": "3"}}
    assert fingerprint(edited) != fingerprint(inputs)
    assert changed_inputs(inputs, edited) == ["code (charmt/b.py)", "train"]
    assert changed_inputs(inputs, inputs) == []


def test_only_the_newest_complete_checkpoint_is_kept_and_partial_ones_are_ignored(tmp_path):
    store = Checkpoints(tmp_path, "key")

    def write(directory):
        (directory / "weights").write_text("w")

    store.save(1, {"rows": [1]}, write)
    store.save(2, {"rows": [1, 2]}, write)
    assert sorted(p.name for p in store.directory.iterdir()) == ["epoch-0002"]

    # What a SIGKILL while writing epoch 3 leaves: a temporary directory, never an epoch-0003.
    partial = store.directory / ".epoch-0003.x.tmp"
    partial.mkdir()
    (partial / "weights").write_text("half")
    assert store.latest().epoch == 2
    assert store.latest().state["rows"] == [1, 2]

    store.discard_stale()
    assert not partial.exists()

    def fail(directory):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.save(3, {}, fail)
    assert sorted(p.name for p in store.directory.iterdir()) == ["epoch-0002"]


def test_another_configuration_never_resumes_and_its_checkpoints_are_discarded(tmp_path):
    Checkpoints(tmp_path, "old").save(4, {}, lambda d: None)
    new = Checkpoints(tmp_path, "new")
    assert new.latest() is None
    new.discard_stale()
    assert not (tmp_path / "old").exists()
    new.clear()
    assert not tmp_path.exists()


_STAGE_KEY = """
import json, sys
from pathlib import Path
from charmt.training.checkpoint import Checkpoints
from charmt.params import read
from charmt.pipeline.train import SECTIONS, checkpoint_inputs
params = read(sys.argv[1], *SECTIONS)
store = Checkpoints.of(sys.argv[3], checkpoint_inputs(params, Path(sys.argv[2])))
reasons = store.discard_stale()
if store.latest() is None:
    store.save(1, {"rows": []}, lambda directory: None)
print(json.dumps({"key": store.key, "reasons": reasons}))
"""


@pytest.mark.e2e
def test_the_train_stages_key_changes_with_params_data_and_code_and_says_which(tmp_path):
    """The train stage's own checkpoint key (``charmt.pipeline.train.checkpoint_inputs``),
    computed in a fresh process over a copy of the package: a changed param, changed data or an
    edited module each give a new key, and the stale checkpoint is discarded with the reason
    named."""
    source = tmp_path / "src"
    shutil.copytree(
        PROJECT / "src" / "charmt", source / "charmt", ignore=shutil.ignore_patterns("__pycache__")
    )
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT / "params.yaml", params)
    data = tmp_path / "prepared"
    data.mkdir()
    (data / "train.tsv").write_text("ab\tba\n")
    checkpoints = tmp_path / "checkpoints"

    def key() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", _STAGE_KEY, str(params), str(data), str(checkpoints)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(source)},
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)

    first = key()
    assert key() == {"key": first["key"], "reasons": []}, "the same inputs keep the key"

    text = params.read_text()
    params.write_text(text.replace("epochs: 100", "epochs: 101"))
    changed = key()
    assert changed["key"] != first["key"]
    assert changed["reasons"] and "another train" in changed["reasons"][0]
    params.write_text(text)

    (data / "train.tsv").write_text("ab\tbb\n")
    changed = key()
    assert changed["key"] != first["key"] and "another data" in changed["reasons"][0]

    for module in ("models/keras_example.py", "data/batches.py"):
        path = source / "charmt" / module
        path.write_text(path.read_text() + "\n# an edit\n")
        edited = key()
        assert edited["key"] != changed["key"], f"editing {module} must change the key"
        assert f"code (charmt/{module})" in edited["reasons"][0]
        assert "training starts from epoch 1" in edited["reasons"][0]
        changed = edited
