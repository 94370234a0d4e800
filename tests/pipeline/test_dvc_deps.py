"""dvc.yaml cannot drift from the code: each stage lists every project module its script runs.

The modules are found from the code itself (``charmt.pipeline.codedeps``: the script's ``charmt``
imports, followed transitively, imports inside functions included), so a new module, or a new
import of an old one, fails here until ``dvc.yaml`` lists it; otherwise editing it would leave
``dvc status`` clean and the stage's results stale.
"""

import re
from pathlib import Path

import pytest
import yaml
from projects import PROJECT

from charmt.pipeline import codedeps

STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _script(command: str) -> Path:
    match = re.search(r"python (stages/\S+\.py)", command)
    assert match, f"no stage script in {command!r}"
    return PROJECT / match.group(1)


def _covered(path: Path, deps: list[str]) -> bool:
    """``path`` is a dep itself, or lies in a directory that is one."""
    relative = path.relative_to(PROJECT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


def missing_deps(stage: dict) -> list[str]:
    """The script and project modules a stage runs that its deps do not list."""
    script = _script(stage["cmd"])
    needed = [script, *codedeps.module_files(script)]
    return [str(p.relative_to(PROJECT)) for p in needed if not _covered(p, stage["deps"])]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_lists_every_module_its_script_runs(name):
    assert missing_deps(STAGES[name]) == [], f"add these to the deps of stage {name} in dvc.yaml"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_no_stage_lists_a_module_it_does_not_run(name):
    """A listed module the stage never imports re-runs it for nothing (or names a file gone)."""
    stage = STAGES[name]
    script = _script(stage["cmd"])
    ran = [script, *codedeps.module_files(script)]
    code_deps = [dep for dep in stage["deps"] if dep.startswith(("src/", "stages/"))]
    unused = [dep for dep in code_deps if not any(_covered(path, [dep]) for path in ran)]
    assert unused == []


def test_the_check_sees_imports_inside_functions_and_across_modules(tmp_path):
    """A stage that imports charmt.inference.translator only inside main() still needs the model
    code."""
    script = tmp_path / "stage.py"
    script.write_text("def main():\n    from charmt.inference.translator import Translator\n")
    modules = {p.name for p in codedeps.module_files(script)}
    model_code = {
        "translator.py",
        "modeldir.py",
        "architectures.py",
        "vocabulary.py",
        "__init__.py",
    }
    assert model_code <= modules
    stage = {"cmd": f"python {script}", "deps": ["src/charmt/inference/translator.py"]}
    assert "src/charmt/models/architectures.py" in [
        str(p.relative_to(PROJECT))
        for p in codedeps.module_files(script)
        if not _covered(p, stage["deps"])
    ]
