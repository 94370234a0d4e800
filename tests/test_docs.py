"""The README and the guides in docs/ cannot drift from the code.

Every command in a fenced or indented code block, and every command, params key and path in
inline code, is checked without running it: a ``-S key=value`` (and a ``section.key: value``)
names a key of ``params.yaml`` and passes its validation; a ``charmt`` subcommand and its flags
exist (``charmt ... --help``); a ``dvc.yaml`` stage, plot, metric or output file named exists;
a script or repository path named exists; a relative link and its anchor resolve. The README's
tour is then run for real, on a small profile of the shared data (marked e2e).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, make_project, subprocess_env

from charmt.errors import CharmtError
from charmt.io.processes import answers
from charmt.params import read

DOCS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
README_MAX_LINES = 150
# The guides the README hands each subject to (the issue that split the README names them).
GUIDES = ("pipeline", "experiments", "models", "translating", "team", "ci", "benchmarks")
# Languages of fenced blocks that hold shell commands; others (text, python) are not commands.
SHELL = {"", "sh", "bash", "shell", "console"}
PROGRAMS = {"dvc", "charmt", "python", "mlflow", "pip", "git", "curl", "pytest", "export", "ssh"}
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


# --- reading Markdown ------------------------------------------------------------------------


@dataclass
class Command:
    line: int
    words: list[str]


@dataclass
class Doc:
    path: Path
    commands: list[Command]  # from code blocks
    inline: list[tuple[int, str, int]]  # inline code spans in prose: line, text, paragraph
    links: list[tuple[int, str]]
    headings: list[str]


def split_commands(line_number: int, text: str) -> list[Command]:
    """The simple commands of one shell line, comments and redirections dropped."""
    text = re.sub(r"(^|\s)#.*$", "", text.strip().removeprefix("$ "))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    redirect = False
    for word in lexer:
        if word in {"&&", "||", "|", ";", "&"}:
            commands.append([])
        elif word in {"<", ">", ">>"}:
            redirect = True
        elif redirect:
            redirect = False
        else:
            commands[-1].append(word)
    found = []
    for words in commands:
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value command
            words = words[1:]
        if words and words[0] in PROGRAMS:
            found.append(Command(line_number, words))
    return found


def read_doc(path: Path) -> Doc:
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: list[Command] = []
    prose: list[tuple[int, str]] = []
    headings: list[str] = []
    fence: str | None = None  # the open fence's language
    pending = ""  # a command continued with a backslash
    previous_blank = True
    in_indented = False
    for number, line in enumerate(lines, 1):
        if fence is not None:
            if line.strip().startswith("```"):
                fence = None
            elif fence in SHELL:
                pending += line
                if pending.endswith("\\"):
                    pending = pending[:-1] + " "
                    continue
                commands += split_commands(number, pending)
                pending = ""
            continue
        if line.strip().startswith("```"):
            fence = line.strip()[3:].strip()
            continue
        indented = line.startswith("    ") and (previous_blank or in_indented)
        if indented:
            in_indented = True
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
            else:
                commands += split_commands(number, pending)
                pending = ""
        else:
            in_indented = in_indented and not line.strip()
            if line.startswith("#"):
                headings.append(line.lstrip("#").strip())
            prose.append((number, line))
        previous_blank = not line.strip()
    # Inline code and links in prose; a span may run over a line break.
    text = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    inline, links = [], []
    for match in re.finditer(r"`([^`]+)`", text):
        number = numbers[text.count("\n", 0, match.start())]
        paragraph = text.count("\n\n", 0, match.start())
        inline.append((number, " ".join(match.group(1).split()), paragraph))
    without_code = re.sub(r"`[^`]+`", "", text)
    for match in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", without_code):
        number = numbers[without_code.count("\n", 0, match.start())]
        links.append((number, match.group(1)))
    return Doc(path, commands, inline, links, headings)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


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
    from bench.quality import PROFILES

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


# --- the tour, for real -----------------------------------------------------------------------

SHARED_DATA = PROJECT.parent / "shared" / "data" / "fra-eng.zip"
# The smallest profile of the shared data that runs every step (the README's example sentences
# use only characters of its first 500 pairs); far too short to translate well.
# .ci/pipeline-check trains on 2,000 of its pairs and checks the scores.
TOUR_PARAMS = {
    "data": {"num_samples": 500},
    "train": {"epochs": 1, "latent_dim": 32},
    "evaluate": {"batch_size": 256},
}
# Commands that keep running: started in the background, and stopped once the tour is done.
SERVERS = (["charmt", "ui"], ["mlflow", "models", "serve"])


def tour_lines() -> list[str]:
    """The README's tour: the shell lines of its code blocks, in order, continuations joined."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    lines, pending = [], ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending)
        pending = ""
    return lines


def is_server(line: str) -> bool:
    words = [c.words for c in split_commands(0, line)]
    return any(w[: len(s)] == s for w in words for s in SERVERS)


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by a tour line, with everything it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 300):
    """Poll ``condition`` until it returns something true; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        tail = log.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"{what}: exited with {process.returncode}:\n{tail}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s:\n{tail}"
        time.sleep(0.5)
    return result


def start_server(line: str, project: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a tour line that keeps running, in its own process group; return once it answers."""
    if line.startswith("charmt ui"):
        line += " --no-browser --port 0"  # no browser here, and any free port
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", line],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if line.startswith("charmt ui"):

        def printed_link():
            found = re.search(r"http://127\.0\.0\.1:\d+/#/\S+", log.read_text(errors="replace"))
            return found and found.group(0)

        link = wait_until(printed_link, "charmt ui's link", server, log)
        assert link.endswith("/runs?workflowType=machine_learning"), link
        assert answers(link.split("/#/")[0] + "/health")
    else:
        port = line.split("--port ")[1].split()[0]
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/ping"), "serving", server, log)
    return server


@pytest.mark.e2e
def test_the_readme_tour_runs(tmp_path):
    if not SHARED_DATA.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} not found (CI puts shared/ beside the checkout)")
        pytest.skip(f"{SHARED_DATA} not found")
    from charmt.io.processes import free_port

    lines = tour_lines()
    assert lines[0] == "dvc repro"
    exp_run = next(line for line in lines if line.startswith("dvc exp run -S"))
    assert any(line.startswith("charmt ui") for line in lines)
    project = make_project(tmp_path / "project", SHARED_DATA, TOUR_PARAMS)
    env = {k: v for k, v in subprocess_env().items() if k != "MLFLOW_TRACKING_URI"}
    servers: list[subprocess.Popen] = []
    outputs: dict[str, str] = {}
    # A shared machine: the README's fixed ports may be taken, so the served model gets a free one.
    port = str(free_port())
    try:
        for line in lines:
            line = line.replace("--port 5001", f"--port {port}")
            line = line.replace("localhost:5001/", f"localhost:{port}/")
            if is_server(line):
                log = tmp_path / f"server-{len(servers)}.log"
                servers.append(start_server(line, project, env, log))
                continue
            done = subprocess.run(
                ["bash", "-c", line],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{line} failed:\n{output[-5000:]}"
            outputs[line.split(" -")[0]] = output
    finally:
        for server in servers:
            stop(server)

    assert "Running stage 'train'" in outputs["dvc repro"]
    # The changed param re-ran train and evaluate only.
    rerun = outputs[exp_run.split(" -")[0]]
    assert "Running stage 'train'" in rerun and "Running stage 'evaluate'" in rerun
    assert "Running stage 'preprocess'" not in rerun
    assert "128" in outputs["dvc exp show"]
    translate = next(line for line in lines if line.startswith("charmt translate"))
    assert len(outputs[translate].strip().splitlines()) >= 2
    assert '"predictions"' in outputs["curl"]
