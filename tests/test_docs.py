"""The README and the guides in docs/ cannot drift from the code.

Every command in a fenced or indented code block, and every command, params key and path in
inline code, is checked without running it: a ``-S key=value`` (and a ``section.key: value``)
names a key of ``params.yaml`` and passes its validation; a ``charmt`` subcommand and its flags
exist (``charmt ... --help``); a ``dvc.yaml`` stage, plot, metric or output file named exists;
a script or repository path named exists; a relative link and its anchor resolve
(tests/doc_reading.py reads them). tests/test_readme_tour.py runs the README's tour for real.
"""

from __future__ import annotations

import copy
import itertools
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from commands import subprocess_env
from doc_reading import Doc, read_doc, slug
from projects import PROJECT

from charmt.errors import CharmtError
from charmt.params import read

DOCS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
README_MAX_LINES = 150
# The guides the README hands each subject to (the issue that split the README names them).
GUIDES = ("pipeline", "experiments", "models", "translating", "team", "ci", "benchmarks")
# Paths in inline code that name pipeline outputs (must be in dvc.yaml) or repository files.
OUTPUT_DIRS = ("data", "metrics", "models", "checkpoints")
FILE_TYPES = {"keras", "json", "yaml", "csv", "tsv", "txt", "db", "md", "py", "zip", "lock"}
REPO_DIRS = ("bench", "stages", "tests", "docs", ".ci", ".github", "src")


@dataclass
class Context:
    """What the docs are checked against: the params file, the pipeline, the command line."""

    params: dict
    stages: set[str]
    plots: set[str]
    dvc_paths: set[str]  # every path dvc.yaml names: deps, outs, metrics, plots, cmd arguments
    charmt: dict[str, set[str]]  # subcommand -> its flags
    root: Path = PROJECT
    params_problem: str | None = None  # params.yaml's own validation message ("" once it passes)
    # Headings of each document, for anchors: path -> slugs (filled lazily).
    slugs: dict[Path, set[str]] = field(default_factory=dict)


def charmt_help(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "charmt.cli.main", *args, "--help"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def charmt_commands() -> dict[str, set[str]]:
    """Each ``charmt`` subcommand with the flags its ``--help`` lists."""
    choices = re.findall(r"\{([\w,-]+)\}", charmt_help())[0]
    return {
        name: set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", charmt_help(name)))
        for name in choices.split(",")
    }


def dvc_names(root: Path) -> tuple[set[str], set[str], set[str]]:
    """dvc.yaml's stages, plot ids and every path it names."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    paths: set[str] = set()

    def entries(items) -> Iterator[str]:
        for item in items or []:
            yield from item if isinstance(item, dict) else [item]

    for stage in pipeline["stages"].values():
        for key in ("deps", "outs", "metrics", "plots"):
            paths.update(entries(stage.get(key)))
        paths.update(word for word in stage["cmd"].split() if "/" in word)
    plots = set()
    for plot in pipeline.get("plots", []):
        for plot_id, spec in plot.items():
            plots.add(plot_id)
            paths.update(spec.get("y", {}))
    return set(pipeline["stages"]), plots, {p.rstrip("/") for p in paths}


@pytest.fixture(scope="module")
def context() -> Context:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    stages, plots, paths = dvc_names(PROJECT)
    return Context(params, stages, plots, paths, charmt_commands())


# --- the checks ------------------------------------------------------------------------------


def is_placeholder(key: str, value: str | None) -> bool:
    """``-S key=value``, ``evaluate.beam_width: N``: words standing for any value."""
    return key == "key" or (value is not None and bool(re.fullmatch(r"[A-Z]|value|<.*>", value)))


def validate(values: dict) -> str | None:
    """The params validation's message for a whole params file, or None when it passes."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "params.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
        try:
            read(path, *values)
        except CharmtError as error:
            return str(error).removeprefix(f"{path}: ")
    return None


def params_valid(context: Context) -> bool:
    if context.params_problem is None:
        context.params_problem = validate(context.params) or ""
    return not context.params_problem


def check_setting(
    context: Context, key: str, value: str | None, together: dict | None = None
) -> str | None:
    """What is wrong with ``key`` (and ``value``, YAML as DVC reads it) in params.yaml.

    ``together``: the settings made with this one (one command's ``-S``, one paragraph's
    values), applied first, since some values need others (bidirectional needs attention); a
    valid setting joins them.
    """
    if is_placeholder(key, value):
        return None
    section, _, name = key.partition(".")
    if section not in context.params or name not in (context.params[section] or {}):
        return f"{key} is not a key of params.yaml"
    if value is None or not params_valid(context):
        return None  # values are checked against a valid file only: its own test says what is wrong
    values = copy.deepcopy(context.params)
    for (other_section, other_name), other in (together or {}).items():
        values[other_section][other_name] = other
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        return f"{key}={value}: not YAML ({error})"
    values[section][name] = parsed
    if problem := validate(values):
        return f"{key}={value}: {problem}"
    if together is not None:
        together[section, name] = parsed
    return None


def check_set_params(
    context: Context, words: list[str], grid: bool = False, together: dict | None = None
) -> list[str]:
    """``-S key=value`` / ``--set-param``, applied together; a grid's ``a,b,c`` (queued, or
    quoted in prose) value by value."""
    problems = []
    grid = grid or "--queue" in words
    together = {} if together is None else together
    for flag, setting in itertools.pairwise(words):
        if flag not in ("-S", "--set-param"):
            continue
        key, equals, value = setting.partition("=")
        if not equals:
            problems.append(f"-S {setting}: not key=value")
            continue
        for one in value.split(",") if grid else [value]:
            if problem := check_setting(context, key, one, together):
                problems.append(f"-S {problem}")
    return problems


def check_path(context: Context, path: str) -> str | None:
    """A pipeline output must be in dvc.yaml; a repository path must exist."""
    path = path.rstrip("/")
    first = path.split("/")[0]
    if first in OUTPUT_DIRS:
        # data/prepared/{train,validation,test}.tsv: each of the files.
        if match := re.search(r"\{([^}]*)\}", path):
            expanded = [path.replace(match.group(0), part) for part in match.group(1).split(",")]
            return next(filter(None, (check_path(context, one) for one in expanded)), None)
        named = context.dvc_paths
        if any(path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in named):
            return None
        return f"{path} is not named in dvc.yaml"
    if first in REPO_DIRS:
        existing = path.split("<")[0].rsplit("/", 1)[0] if "<" in path else path
        if not (context.root / existing).exists():
            return f"{path} does not exist"
    return None


def check_command(context: Context, words: list[str]) -> list[str]:
    program, args = words[0], words[1:]
    problems: list[str] = []
    if program == "charmt":
        if not args:
            return []
        command, *rest = args
        if command not in context.charmt:
            return [f"charmt {command}: no such subcommand (charmt --help)"]
        for word in rest:
            if word.startswith("-") and word.split("=")[0] not in context.charmt[command]:
                problems.append(f"charmt {command} {word}: no such flag (charmt {command} --help)")
    elif program == "python" and args and args[0].endswith(".py"):
        if not (context.root / args[0]).is_file():
            problems.append(f"python {args[0]}: no such script")
    elif program == "dvc" and args:
        problems += check_set_params(context, args)
        if args[:2] == ["exp", "show"]:
            for flag, value in itertools.pairwise(args):
                if flag in ("--keep", "--drop", "--sort-by"):
                    for name in re.findall(r"[a-z_]+\\?\.[a-z_0-9]+", value):
                        if problem := check_setting(context, name.replace("\\", ""), None):
                            problems.append(f"dvc exp show {flag}: {problem}")
        targets: list[str] = []
        if args[0] in ("repro", "commit", "status"):
            targets = [a for a in args[1:] if not a.startswith("-")]
        elif args[:2] == ["plots", "show"]:
            targets = [a for a in args[2:] if not a.startswith("-")]
        for target in targets:
            a_path = "/" in target or "." in target
            if target not in context.stages | context.plots and (
                not a_path or check_path(context, target)
            ):
                problems.append(f"dvc {args[0]} {target}: no such stage or plot in dvc.yaml")
    return problems


def check_inline(context: Context, span: str, together: dict) -> list[str]:
    """Inline code in prose: a command, ``-S`` settings, a params key (with a value), a path;
    ``together``: the settings of the same paragraph so far."""
    if span.split(" ")[0] in ("dvc", "charmt", "python"):
        return check_command(context, shlex.split(span))
    if "-S " in span:
        return check_set_params(context, span.replace("'", "").split(), True, together)
    sections = "|".join(map(re.escape, context.params))
    key = re.fullmatch(rf"((?:{sections})\.\w+)(?:\s*[:=]\s*(.+))?", span)
    if key and key.group(1).rsplit(".", 1)[1] not in FILE_TYPES:  # model.keras is a file
        name, value = key.groups()
        # `train.latent_dim: 256 -> 128`: a change, both sides must be valid.
        values = [v.strip() for v in value.split("->")] if value else [None]
        return list(filter(None, (check_setting(context, name, v, together) for v in values)))
    if re.fullmatch(r"[\w.{},<>-]+(/[\w.{},<>-]*)+", span):
        return list(filter(None, [check_path(context, span)]))
    return []


def check_links(context: Context, doc: Doc) -> list[tuple[int, str]]:
    problems = []
    for number, target in doc.links:
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.path.parent / path_part).resolve() if path_part else doc.path
        if not path.exists():
            problems.append((number, f"link {target}: {path_part} does not exist"))
        elif anchor and path.suffix == ".md":
            if path not in context.slugs:
                context.slugs[path] = {slug(h) for h in read_doc(path).headings}
            if anchor not in context.slugs[path]:
                problems.append((number, f"link {target}: no heading #{anchor} in {path.name}"))
    return problems


def problems_in(context: Context, doc: Doc) -> list[str]:
    found: list[tuple[int, str]] = []
    for command in doc.commands:
        found += [(command.line, p) for p in check_command(context, command.words)]
    paragraphs: dict[int, dict] = {}
    for number, span, paragraph in doc.inline:
        together = paragraphs.setdefault(paragraph, {})
        found += [(number, p) for p in check_inline(context, span, together)]
    found += check_links(context, doc)
    name = doc.path.relative_to(context.root) if doc.path.is_relative_to(context.root) else doc.path
    return [f"{name}:{number}: {problem}" for number, problem in sorted(found)]


# --- the tests -------------------------------------------------------------------------------


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    commands = [line.strip() for line in lines[:12] if line.startswith("    ")]
    assert commands == [
        "python3.11 -m venv .venv && . .venv/bin/activate && pip install -e . && dvc repro",
        'python3.11 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest',
    ]
    readme = read_doc(PROJECT / "README.md")
    for guide in GUIDES:
        assert f"docs/{guide}.md" in [link for _, link in readme.links], guide


def settings_of(words: list[str]) -> dict[str, object]:
    """The ``-S key=value`` settings of one command, values read as YAML (as DVC reads them)."""
    return {
        setting.partition("=")[0]: yaml.safe_load(setting.partition("=")[2])
        for flag, setting in itertools.pairwise(words)
        if flag in ("-S", "--set-param")
    }


def effective(params: dict, settings: dict[str, object]) -> dict:
    values = copy.deepcopy(params)
    for key, value in settings.items():
        section, _, name = key.partition(".")
        values[section][name] = value
    return values


@pytest.mark.parametrize("name", ["quick", "quality"])
def test_the_readmes_profile_lines_are_the_benchmarked_profiles(context, name):
    """The README's `dvc exp run` line of each Transformer profile sets, over params.yaml, exactly
    what bench/quality.py measured as that profile: the figures beside it are of that line."""
    from bench.profiles import PROFILES

    readme = read_doc(PROJECT / "README.md")
    lines = [c.words for c in readme.commands if c.words[:3] == ["dvc", "exp", "run"]]
    expected = effective(context.params, PROFILES[name])
    assert [effective(context.params, settings_of(w)) for w in lines].count(expected) == 1, (
        f"no README line sets the {name} profile {PROFILES[name]}"
    )


def test_params_yaml_passes_its_validation(context):
    assert params_valid(context), f"params.yaml: {context.params_problem}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_what_the_docs_name_exists(context, path):
    doc = read_doc(path)
    assert doc.commands or doc.inline, f"no code found in {path.name}: is the parser right?"
    problems = problems_in(context, doc)
    assert not problems, "the docs name what does not exist:\n" + "\n".join(problems)


def test_the_checks_see_a_renamed_param_flag_stage_file_and_heading(context):
    """Each kind of rename the docs test is there to catch makes it fail."""
    readme = read_doc(PROJECT / "README.md")
    experiments = read_doc(PROJECT / "docs/experiments.md")
    translating = read_doc(PROJECT / "docs/translating.md")
    team = read_doc(PROJECT / "docs/team.md")
    assert not problems_in(context, readme)

    params = copy.deepcopy(context.params)
    params["train"]["num_epochs"] = params["train"].pop("epochs")
    renamed = Context(params, context.stages, context.plots, context.dvc_paths, context.charmt)
    assert "-S train.epochs is not a key of params.yaml" in "\n".join(
        problems_in(renamed, experiments)
    )

    charmt = {**context.charmt, "translate": context.charmt["translate"] - {"--beam-width"}}
    renamed = Context(context.params, context.stages, context.plots, context.dvc_paths, charmt)
    assert "charmt translate --beam-width: no such flag" in "\n".join(
        problems_in(renamed, translating)
    )
    charmt = {k: v for k, v in context.charmt.items() if k != "ui"}
    renamed = Context(context.params, context.stages, context.plots, context.dvc_paths, charmt)
    assert "charmt ui: no such subcommand" in "\n".join(problems_in(renamed, readme))

    stages = context.stages - {"train"}
    renamed = Context(context.params, stages, context.plots, context.dvc_paths, context.charmt)
    assert "dvc commit train: no such stage" in "\n".join(problems_in(renamed, team))

    paths = {p for p in context.dvc_paths if p != "metrics/promotion.json"}
    renamed = Context(context.params, context.stages, context.plots, paths, context.charmt)
    found = "\n".join(problems_in(renamed, read_doc(PROJECT / "docs/pipeline.md")))
    assert "metrics/promotion.json is not named in dvc.yaml" in found

    # A value the params' validation refuses, and a link to a heading that was renamed.
    bad = Doc(readme.path, [], [(1, "-S train.batch_size=0", 0)], [(2, "docs/models.md#res")], [])
    found = "\n".join(problems_in(context, bad))
    assert "train.batch_size=0: train.batch_size = 0; must be an integer >= 1" in found
    assert "link docs/models.md#res: no heading #res in models.md" in found
