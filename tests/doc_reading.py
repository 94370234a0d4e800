"""The README and the guides as the doc tests read them: the commands of their code blocks (a
line split into its simple commands, continuations joined), the inline code and links of their
prose, their headings and GitHub's anchors for them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

# Languages of fenced blocks that hold shell commands; others (text, python) are not commands.
SHELL = {"", "sh", "bash", "shell", "console"}
PROGRAMS = {"dvc", "charmt", "python", "mlflow", "pip", "git", "curl", "pytest", "export", "ssh"}


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
