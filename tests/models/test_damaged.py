"""Damaged files: refused in one line that names the file and what to do, never a traceback and
never a wrong translation.

The table damages a copy of a trained ``models/`` directory one way at a time and checks the
library (``Translator.load``) and the ``charmt translate`` command; the evaluate stage is run as a
script on a damaged model and on a prepared split edited by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from commands import subprocess_env
from projects import PROJECT

from charmt.cli import main as cli
from charmt.data.vocabulary import VOCABULARIES_FILE
from charmt.errors import CharmtError
from charmt.inference.translator import Translator
from charmt.models.modeldir import INFO_FILE, MODEL_FILE


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_info(directory, **changes):
    info = json.loads((directory / INFO_FILE).read_text())
    info.update(changes)
    (directory / INFO_FILE).write_text(json.dumps(info))


def truncate_model(d):
    data = (d / MODEL_FILE).read_bytes()
    (d / MODEL_FILE).write_bytes(data[: len(data) // 2])


def corrupt_model(d):
    data = bytearray((d / MODEL_FILE).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    (d / MODEL_FILE).write_bytes(bytes(data))


def replace_model_with_garbage_and_matching_digest(d):
    # Someone replaced the file and "fixed" model.json: the digest passes, Keras must fail cleanly.
    (d / MODEL_FILE).write_bytes(b"PK\x03\x04 not really a zip")
    _rewrite_info(d, sha256={MODEL_FILE: _sha256(d / MODEL_FILE), VOCABULARIES_FILE: "0" * 64})
    info = json.loads((d / INFO_FILE).read_text())
    info["sha256"][VOCABULARIES_FILE] = _sha256(d / VOCABULARIES_FILE)
    (d / INFO_FILE).write_text(json.dumps(info))


def remove_vocabularies(d):
    (d / VOCABULARIES_FILE).unlink()


def swap_two_target_characters(d):
    # Same size, so nothing else would notice: every translation would silently come out wrong.
    data = json.loads((d / VOCABULARIES_FILE).read_text())
    chars = data["target"]["chars"]
    chars[0], chars[1] = chars[1], chars[0]
    (d / VOCABULARIES_FILE).write_text(json.dumps(data))


def vocabularies_of_another_model(d):
    data = json.loads((d / VOCABULARIES_FILE).read_text())
    data["source"]["chars"].append("#")
    (d / VOCABULARIES_FILE).write_text(json.dumps(data))
    info = json.loads((d / INFO_FILE).read_text())
    info["sha256"][VOCABULARIES_FILE] = _sha256(d / VOCABULARIES_FILE)
    (d / INFO_FILE).write_text(json.dumps(info))


def remove_info(d):
    (d / INFO_FILE).unlink()


def info_not_json(d):
    (d / INFO_FILE).write_text('{"format_version": 1, ')


def directory_of_the_previous_release(d):
    # Before format versions, model.json held only the two lengths.
    info = json.loads((d / INFO_FILE).read_text())
    (d / INFO_FILE).write_text(json.dumps({k: info[k] for k in info if k.startswith("max_")}))


def directory_of_a_newer_release(d):
    _rewrite_info(d, format_version=2)


# (damage, the file the message must name, words that say what to do)
DAMAGE = [
    (truncate_model, MODEL_FILE, "train stage"),
    (corrupt_model, MODEL_FILE, "train stage"),
    (replace_model_with_garbage_and_matching_digest, MODEL_FILE, "train stage"),
    (remove_vocabularies, VOCABULARIES_FILE, "train stage"),
    (swap_two_target_characters, VOCABULARIES_FILE, "train stage"),
    (vocabularies_of_another_model, VOCABULARIES_FILE, "train stage"),
    (remove_info, INFO_FILE, "train stage"),
    (info_not_json, INFO_FILE, "train stage"),
    (directory_of_the_previous_release, INFO_FILE, "format version None"),
    (directory_of_a_newer_release, INFO_FILE, "format version 2"),
]


@pytest.fixture
def damaged(trained, tmp_path, request):
    damage = request.param
    directory = tmp_path / "models"
    shutil.copytree(trained.model_dir, directory)
    damage(directory)
    return directory


@pytest.mark.parametrize(
    ("damaged", "file", "advice"), DAMAGE, indirect=["damaged"], ids=[d[0].__name__ for d in DAMAGE]
)
def test_damaged_model_directory_is_refused_in_one_line(damaged, file, advice, capsys):
    with pytest.raises(CharmtError) as error:
        Translator.load(damaged)
    message = str(error.value)
    assert "\n" not in message
    assert str(damaged / file) in message
    assert advice in message

    with pytest.raises(SystemExit) as exit_status:
        cli.main(["translate", "--model", str(damaged), "abc"])
    assert exit_status.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no translation at all, rather than a wrong one
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {message}"]
    assert "Traceback" not in captured.err


def test_an_intact_copy_still_loads_and_translates_the_same(trained, tmp_path):
    directory = tmp_path / "models"
    shutil.copytree(trained.model_dir, directory)
    sources = [p.source for p in trained.held_out[:5]]
    assert Translator.load(directory).translate(sources) == trained.translator.translate(sources)


def _evaluate(tmp_path, model_dir, prepared):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT / "stages" / "evaluate.py"),
            "--prepared",
            str(prepared),
            "--model",
            str(model_dir),
            "--metrics",
            "eval.json",
            "--samples",
            "samples.tsv",
            "--promotion",
            "promotion.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=180,
    )


def _errors(stderr):
    """The error lines; the rest of stderr is TensorFlow's start-up chatter; the error is last."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors and lines[-1] == errors[-1], stderr[-3000:]
    return errors


def _prepared(trained, directory):
    directory.mkdir()
    lines = "".join(f"{p.source}\t{p.target}\n" for p in trained.held_out)
    (directory / "test.tsv").write_text(lines)
    return directory


@pytest.mark.e2e
def test_evaluate_refuses_a_truncated_model(trained, tmp_path):
    model_dir = tmp_path / "models"
    shutil.copytree(trained.model_dir, model_dir)
    truncate_model(model_dir)
    done = _evaluate(tmp_path, model_dir, _prepared(trained, tmp_path / "prepared"))
    assert done.returncode == 1
    [error] = _errors(done.stderr)
    assert error.startswith(f"error: {model_dir / MODEL_FILE}: ")
    assert "train stage" in error and "Traceback" not in done.stderr
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "samples.tsv").exists()


@pytest.mark.e2e
def test_evaluate_refuses_a_prepared_split_edited_by_hand(trained, tmp_path):
    prepared = _prepared(trained, tmp_path / "prepared")
    lines = (prepared / "test.tsv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("\t", " ")  # a tab lost while editing
    (prepared / "test.tsv").write_text("".join(lines))
    done = _evaluate(tmp_path, trained.model_dir, prepared)
    assert done.returncode == 1
    [error] = _errors(done.stderr)
    assert error.startswith(f"error: {prepared / 'test.tsv'}:3: malformed line")
    assert "preprocess stage" in error and "Traceback" not in done.stderr
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "samples.tsv").exists()
